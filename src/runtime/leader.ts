// Lease-based leader election (coordination.k8s.io/v1), as client-go does it: a candidate takes
// the Lease when it is free or its holder has not renewed within leaseDuration *as observed
// locally* (no clock comparison across machines); the leader renews every retryPeriod and steps
// down when it cannot renew within renewDeadline; on shutdown it releases the Lease so a standby
// takes over at once. Every write is guarded by resourceVersion, so two candidates never both win.
import { isConflict, isNotFound, type KubeClient, type KubeObject, type Resource } from './kube.ts';
import { sleep } from './informer.ts';
import type { Logger } from './log.ts';
import type { RuntimeMetrics } from './metrics.ts';

const LEASES: Resource = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true };

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading(): void;
  /** Called when leadership is lost (not on a clean release). */
  onStoppedLeading(): void;
  log: Logger;
  metrics?: RuntimeMetrics;
}

const microTime = (d = new Date()) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private observed: { record: string; at: number } | undefined;
  private lease: Lease | undefined;
  private loopDone: Promise<void> | undefined;
  readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;

  private readonly client: KubeClient;
  private readonly o: LeaderElectionOptions;

  constructor(client: KubeClient, o: LeaderElectionOptions) {
    this.client = client;
    this.o = o;
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loopDone = this.run();
  }

  private async run(): Promise<void> {
    // Acquire.
    while (!this.stopped && !this.leading) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.o.metrics?.leaderStatus.set({ name: this.o.name }, 1);
        this.o.log.info('became leader', { lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity });
        this.o.onStartedLeading();
        break;
      }
      await sleep(this.jittered(this.retryPeriodMs), this.abort.signal);
    }
    // Renew.
    let lastRenew = Date.now();
    while (!this.stopped && this.leading) {
      await sleep(this.retryPeriodMs, this.abort.signal);
      if (this.stopped) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
        continue;
      }
      if (Date.now() - lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        this.o.metrics?.leaderStatus.set({ name: this.o.name }, 0);
        this.o.log.warn('lost leadership', { lease: `${this.o.namespace}/${this.o.name}` });
        this.o.onStoppedLeading();
      }
    }
  }

  private jittered(ms: number): number {
    return Math.round(ms * (1 + Math.random() * 0.2));
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationSeconds = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(LEASES, this.o.namespace, this.o.name);
    } catch (e) {
      if (!isNotFound(e)) {
        this.o.log.debug('lease read failed', { error: e });
        return false;
      }
      try {
        this.lease = await this.client.create<Lease>(LEASES, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: { holderIdentity: this.o.identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch {
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (!this.observed || this.observed.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity ?? '';
    const held = holder !== '' && holder !== this.o.identity;
    const expired = Date.now() > this.observed.at + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (held && !expired) return false;
    const mine = holder === this.o.identity;
    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: mine ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      this.lease = await this.client.replace<Lease>(LEASES, next);
      this.observed = undefined;
      return true;
    } catch (e) {
      if (!isConflict(e)) this.o.log.debug('lease update failed', { error: e });
      return false;
    }
  }

  /** Stops campaigning; if leading, releases the Lease so a standby can take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loopDone;
    if (!this.leading) return;
    this.leading = false;
    this.o.metrics?.leaderStatus.set({ name: this.o.name }, 0);
    try {
      const lease = await this.client.get<Lease>(LEASES, this.o.namespace, this.o.name);
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      await this.client.replace<Lease>(LEASES, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(), acquireTime: null },
      });
      this.o.log.info('released leadership', { lease: `${this.o.namespace}/${this.o.name}` });
    } catch (e) {
      this.o.log.warn('could not release lease', { error: e });
    }
  }
}
