// Warm pools: per GitspaceInfra pool entry (machine type, zone), keep `minReady` booted, unclaimed
// VMs and never more than `max`. A pooled VM boots with boot facts like any other (no Gitspace, no
// secret: the hash of its own one-time enrolment token) and is labelled with the pool; the runner
// claims one for a new Gitspace instead of creating a VM (reserve → status intent → relabel →
// POST /v1/claim with that VM's token), and the infra controller calls reconcile() to refill in
// the background.
//
// What counts as claimed is derived, not remembered: a VM named in any Gitspace's
// status.instance.name, or carrying a Gitspace UID label, is not the pool's any more. The only
// in-memory state is the short-lived reservation between reserve() and the status write.
import { randomBytes } from 'node:crypto';
import { LABELS, MANAGED_BY, type Gitspace, type GitspaceInfra, type GitspaceInfraStatus } from '../../api/index.ts';
import type { Instance, VmProvider } from '../../providers/types.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { Logger } from '../../runtime/log.ts';
import type { AgentProbe } from '../runner/agent-probe.ts';
import type { InstanceObserver } from '../runner/observer.ts';
import type { Enrolment } from '../enrolment.ts';
import { schedulePlan } from './schedule.ts';

export type PoolStatus = NonNullable<GitspaceInfraStatus['pool']>;

export interface PoolResult {
  status: PoolStatus;
  /** Pool VMs deleted (retire() counts them until none are left). */
  deleted: number;
  /** Something is booting or was just changed: look again soon. */
  settling: boolean;
  /** Entries whose schedules cannot be read (they keep their own minReady meanwhile). */
  scheduleErrors: string[];
  /** Until a scheduled minReady next changes (ms), when one will. */
  nextChangeInMs?: number;
}

export interface WarmPoolDeps {
  gitspaces: Informer<Gitspace>;
  enrolment: Enrolment;
  observer: InstanceObserver;
  probe: AgentProbe;
  log: Logger;
  now?: () => number;
  /** Called when a background create finishes (the infra is reconciled again). */
  onSettled?: (infra: string) => void;
}

const RESERVATION_MS = 60_000;

export class WarmPool {
  private readonly d: WarmPoolDeps;
  /** Pooled VMs whose agent answered "unclaimed", by infra → name. */
  private readonly ready = new Map<string, Map<string, Instance>>();
  /** name → when it was reserved (until the claimant's status names it). */
  private readonly reserved = new Map<string, number>();
  /** Creates under way, by infra → name → pool entry (counted as provisioning members). */
  private readonly creating = new Map<string, Map<string, { machineType: string; zone: string }>>();
  /** The last background create failure per infra, for the PoolReady condition. */
  readonly lastError = new Map<string, string>();

  constructor(d: WarmPoolDeps) {
    this.d = d;
  }

  private now(): number {
    return (this.d.now ?? Date.now)();
  }

  /** VM names some Gitspace's status points at, plus live reservations. */
  private claimed(): Set<string> {
    const names = new Set<string>();
    for (const g of this.d.gitspaces.list()) if (g.status?.instance?.name) names.add(g.status.instance.name);
    const now = this.now();
    for (const [n, at] of this.reserved) {
      if (now - at > RESERVATION_MS || names.has(n)) this.reserved.delete(n);
      else names.add(n);
    }
    return names;
  }

  /**
   * Takes a ready pooled VM of this machine type (and zone, if the Gitspace asks for one) for a
   * Gitspace, or undefined. The caller records the name in the Gitspace's status next.
   */
  reserve(infra: string, machineType: string, zone: string | undefined): Instance | undefined {
    const ready = this.ready.get(infra);
    if (!ready) return undefined;
    const claimed = this.claimed();
    for (const [name, inst] of ready) {
      if (claimed.has(name) || inst.labels[LABELS.pool] !== machineType) continue;
      if (zone && inst.zone !== zone) continue;
      ready.delete(name);
      this.reserved.set(name, this.now());
      return inst;
    }
    return undefined;
  }

  /** Gives a reservation back (the status write failed). */
  release(name: string): void {
    this.reserved.delete(name);
  }

  /** One pass: observe the pool VMs, create what is missing, delete what is surplus or broken. */
  async reconcile(infra: GitspaceInfra, provider: VmProvider): Promise<PoolResult> {
    const infraName = infra.metadata.name ?? '';
    const entries = infra.spec.pool ?? [];
    const claimed = this.claimed();
    const creating = this.creating.get(infraName) ?? new Map<string, { machineType: string; zone: string }>();
    this.creating.set(infraName, creating);
    // Creates under way when the list is taken: one that ends while this pass awaits is in neither
    // that list nor `creating` any more, and counting from `creating` then made one VM too many.
    const underwayAtList = [...creating];
    const all = await this.d.observer.all(infraName, provider);
    const pooled = all.filter((i) => i.labels[LABELS.pool] && !i.labels[LABELS.gitspaceUID] && !claimed.has(i.name));
    const ready = new Map<string, Instance>();
    const broken: Instance[] = [];
    // Without entries every pool VM goes (an infra being retired): no need to ask them first.
    await Promise.all(
      (entries.length ? pooled : []).map(async (i) => {
        if (i.state === 'stopped' || i.state === 'stopping') return void broken.push(i); // pool VMs are kept booted
        if (i.state !== 'running' || !i.privateIP) return;
        // An unclaimed agent answers anyone: there is no secret to send it.
        const r = await this.d.probe(i.privateIP, i.agentPort, '');
        if (r.ok && r.health.state === 'unclaimed' && r.health.instance === i.name) ready.set(i.name, i);
        else if (r.ok) broken.push(i); // failed, or claimed without a Gitspace to show for it
      }),
    );
    this.ready.set(infraName, ready);

    const status: PoolStatus = [];
    const toCreate: { machineType: string; zone: string }[] = [];
    const toDelete: Instance[] = [...broken];
    const kept = new Set<string>();
    const scheduleErrors: string[] = [];
    const now = this.now();
    let nextChange: number | undefined;
    for (const e of entries) {
      const plan = schedulePlan(e, now);
      if (plan.error) scheduleErrors.push(`pool entry ${e.machineType}/${e.zone}: ${plan.error}`);
      if (plan.nextChange !== undefined) nextChange = Math.min(nextChange ?? Infinity, plan.nextChange);
      const members = pooled.filter((i) => i.labels[LABELS.pool] === e.machineType && i.labels[LABELS.poolZone] === e.zone && !broken.includes(i));
      members.forEach((m) => kept.add(m.name));
      const listed = new Set(members.map((m) => m.name));
      const underway = underwayAtList.filter(([n, c]) => !listed.has(n) && c.machineType === e.machineType && c.zone === e.zone).length;
      const count = members.length + underway;
      const minReady = Math.min(plan.minReady, e.max);
      const room = Math.max(0, e.max - count);
      for (let k = 0; k < Math.min(room, Math.max(0, minReady - count)); k++) toCreate.push({ machineType: e.machineType, zone: e.zone });
      // Over max (the entry shrank): the ones not ready go first.
      const surplus = members.length - e.max;
      if (surplus > 0) toDelete.push(...[...members].sort((a, b) => Number(ready.has(a.name)) - Number(ready.has(b.name))).slice(0, surplus));
      // More ready than minReady (a scheduled window closed): the newest ready ones go, down to minReady.
      const readyKept = members.filter((m) => ready.has(m.name) && !toDelete.includes(m)).sort((a, b) => (Date.parse(a.createdAt) || 0) - (Date.parse(b.createdAt) || 0));
      if (readyKept.length > minReady) toDelete.push(...readyKept.slice(minReady));
      const isReady = members.filter((m) => ready.has(m.name)).length;
      status.push({
        machineType: e.machineType, zone: e.zone, ready: isReady, provisioning: count - isReady, minReady,
        ...(plan.nextChange !== undefined ? { nextChange: new Date(plan.nextChange).toISOString() } : {}),
      });
    }
    // Pool VMs of entries that were removed from the spec.
    for (const i of pooled) if (!kept.has(i.name) && !toDelete.includes(i)) toDelete.push(i);

    for (const c of toCreate) this.createInBackground(infra, provider, c, creating);
    // A Gitspace may have reserved one while this pass awaited the cloud: it is not the pool's to delete.
    const claimedNow = this.claimed();
    const deleting = toDelete.filter((i) => !claimedNow.has(i.name));
    await Promise.all([
      ...deleting.map(async (i) => {
        ready.delete(i.name);
        await provider.delete(i);
        this.d.observer.put(infraName, i.name, undefined);
        this.d.log.info('deleted pool VM', { infra: infraName, instance: i.name, state: i.state });
      }),
    ]);
    const settling = creating.size > 0 || deleting.length > 0 || status.some((s) => (s.provisioning ?? 0) > 0);
    return { status, deleted: deleting.length, settling, scheduleErrors, ...(nextChange !== undefined ? { nextChangeInMs: Math.max(0, nextChange - now) } : {}) };
  }

  /**
   * Before the infra goes: deletes its pool VMs. Returns how many pool VMs
   * were still there (the caller comes back until none are).
   */
  async retire(infra: GitspaceInfra, provider: VmProvider): Promise<number> {
    await this.drain();
    const r = await this.reconcile({ ...infra, spec: { ...infra.spec, pool: [] } }, provider);
    if (r.deleted === 0) {
      const name = infra.metadata.name ?? '';
      this.ready.delete(name);
      this.creating.delete(name);
    }
    return r.deleted;
  }

  /** Boots one pool VM without holding up the infra's reconcile (a cloud boot takes tens of seconds). */
  private createInBackground(infra: GitspaceInfra, provider: VmProvider, c: { machineType: string; zone: string }, creating: Map<string, { machineType: string; zone: string }>): void {
    const infraName = infra.metadata.name ?? '';
    const name = `gsp-${randomBytes(6).toString('hex')}`;
    creating.set(name, c);
    const done = this.createOne(infra, provider, c, name).then(
      () => {
        this.lastError.delete(infraName);
      },
      (e: unknown) => {
        const msg = e instanceof Error ? e.message : String(e);
        this.lastError.set(infraName, msg);
        // The VM may exist although the call failed (a timeout after the insert): count from a
        // fresh list next time rather than from a snapshot that predates it.
        this.d.observer.forget(infraName);
        this.d.log.warn('pool VM create failed', { infra: infraName, instance: name, error: msg });
      },
    );
    void done.finally(() => {
      creating.delete(name);
      this.d.onSettled?.(infraName);
    });
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  private readonly pending = new Set<Promise<void>>();

  /** Waits for background creates (operator shutdown, tests). */
  async drain(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async createOne(infra: GitspaceInfra, provider: VmProvider, c: { machineType: string; zone: string }, name: string): Promise<void> {
    const infraName = infra.metadata.name ?? '';
    const mt = infra.spec.machineTypes.find((m) => m.name === c.machineType);
    if (!mt) return;
    const images = infra.spec.pool?.find((e) => e.machineType === c.machineType && e.zone === c.zone)?.prePullImages;
    const boot = await this.d.enrolment.boot(infra, name, { infra: infraName, machineType: c.machineType, ...(images?.length ? { images } : {}) });
    const inst = await provider.create({
      name,
      zone: c.zone,
      machineType: mt,
      image: infra.spec.image,
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: infraName, [LABELS.pool]: c.machineType, [LABELS.poolZone]: c.zone, ...boot.labels },
      agent: boot.facts,
    });
    this.d.observer.put(infraName, name, inst);
    this.d.log.info('created pool VM', { infra: infraName, instance: name, zone: inst.zone, machineType: c.machineType });
  }
}
