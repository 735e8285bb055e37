// The manager runs informers, controllers, leader election and the health server, and shuts them
// down in order: stop taking work, drain in-flight reconciles, release the lease.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Controller } from './controller.ts';
import { HealthServer } from './health.ts';
import type { Informer } from './informer.ts';
import type { KubeClient, KubeObject } from './kube.ts';
import { LeaderElector } from './leader.ts';
import type { Logger } from './log.ts';
import { RuntimeMetrics } from './metrics.ts';

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  metrics?: RuntimeMetrics;
  /** Lease for leader election; without it this manager always leads (single replica, tests). */
  leaderElection?: { namespace: string; name: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  identity?: string;
  healthPort?: number;
  /** Called when leadership is lost; the default exits the process so it restarts clean. */
  onLostLeadership?: () => void;
}

export class Manager {
  readonly metrics: RuntimeMetrics;
  readonly identity: string;
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly controllers: Controller[] = [];
  private readonly startHooks: (() => void)[] = [];
  private readonly stopHooks: (() => Promise<void>)[] = [];
  private elector: LeaderElector | undefined;
  private health: HealthServer | undefined;
  private leading = false;
  private stopping: Promise<void> | undefined;
  healthPort: number | undefined;

  private readonly o: ManagerOptions;

  constructor(o: ManagerOptions) {
    this.o = o;
    this.metrics = o.metrics ?? new RuntimeMetrics({ defaultMetrics: true });
    this.identity = o.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
  }

  addInformer<T extends KubeObject>(i: Informer<T>): Informer<T> {
    this.informers.push(i);
    return i;
  }

  addController(c: Controller): Controller {
    this.controllers.push(c);
    return c;
  }

  /** Work to start when this replica becomes leader (periodic sweeps and the like). */
  onLeading(fn: () => void): void {
    this.startHooks.push(fn);
  }

  /** Work to finish on shutdown, before the lease is released. */
  onStop(fn: () => Promise<void>): void {
    this.stopHooks.push(fn);
  }

  isLeader(): boolean {
    return this.leading;
  }

  synced(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  async start(): Promise<void> {
    if (this.o.healthPort !== undefined) {
      this.health = new HealthServer({ healthy: () => !this.stopping, ready: () => this.synced() && !this.stopping }, this.metrics.registry);
      this.healthPort = await this.health.listen(this.o.healthPort);
    }
    // Caches warm up on every replica, so a standby is ready to lead at once.
    for (const i of this.informers) i.start();
    const lead = () => {
      void Promise.all(this.informers.map((i) => i.waitForSync())).then(() => {
        if (this.stopping) return;
        this.leading = true;
        for (const c of this.controllers) c.start();
        for (const h of this.startHooks) h();
      });
    };
    if (!this.o.leaderElection) {
      lead();
      return;
    }
    this.elector = new LeaderElector(this.o.client, {
      ...this.o.leaderElection,
      identity: this.identity,
      log: this.o.log,
      metrics: this.metrics,
      onStartedLeading: lead,
      onStoppedLeading: () => {
        this.leading = false;
        (this.o.onLostLeadership ?? (() => process.exit(1)))();
      },
    });
    this.elector.start();
  }

  /** Graceful stop: controllers drain, informers stop, the lease is released. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.controllers.map((c) => c.stop()), ...this.stopHooks.map((h) => h())]);
      for (const i of this.informers) i.stop();
      await this.elector?.stop();
      this.leading = false;
      await this.health?.close();
      this.o.client.close();
    })();
    return this.stopping;
  }
}
