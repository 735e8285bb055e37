// The orphan sweep: periodically deletes VMs labelled as ours whose Gitspace (by UID) no longer
// exists and that are older than a grace period. A Gitspace's finalizer normally deletes its VM;
// this catches what escaped it (a finalizer removed by hand, an infra deleted first, a create that
// landed after its Gitspace was gone). VMs without our labels are never listed, so never touched.
import type { Counter } from 'prom-client';
import { API_VERSION, GITSPACE_INFRA, LABELS, MANAGED_BY, type Gitspace, type GitspaceInfra } from '../../api/index.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { Logger } from '../../runtime/log.ts';
import type { ProviderFor } from '../runner/reconciler.ts';

export interface SweepOptions {
  intervalMs: number;
  graceMs: number;
}

export interface OrphanSweeperDeps {
  infras: Informer<GitspaceInfra>;
  gitspaces: Informer<Gitspace>;
  providerFor: ProviderFor;
  events: EventRecorder;
  log: Logger;
  deleted: Counter<'provider'>;
  now?: () => number;
}

export class OrphanSweeper {
  private readonly d: OrphanSweeperDeps;
  private readonly o: SweepOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(d: OrphanSweeperDeps, o: SweepOptions) {
    this.d = d;
    this.o = o;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweepOnce()
        .catch((e: unknown) => {
          this.d.log.warn('orphan sweep failed', { error: e });
        })
        .finally(() => (this.running = undefined));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass over every infra; returns the number of VMs deleted. */
  async sweepOnce(): Promise<number> {
    const now = (this.d.now ?? Date.now)();
    const live = new Set(this.d.gitspaces.list().map((g) => g.metadata.uid));
    let deleted = 0;
    for (const infra of this.d.infras.list()) {
      const provider = await this.d.providerFor(infra);
      const owned = await provider.listOwned({ [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: infra.metadata.name ?? '' });
      for (const inst of owned) {
        const uid = inst.labels[LABELS.gitspaceUID];
        if (!uid || live.has(uid)) continue;
        const age = now - Date.parse(inst.createdAt);
        if (!(age >= this.o.graceMs)) continue;
        await provider.delete(inst);
        deleted++;
        this.d.deleted.inc({ provider: provider.kind });
        const who = `${inst.labels[LABELS.gitspaceNamespace] ?? '?'}/${inst.labels[LABELS.gitspaceName] ?? '?'}`;
        this.d.log.info('deleted orphaned instance', { instance: inst.name, zone: inst.zone, gitspace: who, uid });
        void this.d.events.emit({ ...infra, apiVersion: API_VERSION, kind: GITSPACE_INFRA.kind }, 'Normal', 'OrphanDeleted', `deleted instance ${inst.name} (${inst.zone}): its Gitspace ${who} (uid ${uid}) no longer exists`);
      }
    }
    return deleted;
  }
}
