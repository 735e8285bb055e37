// Batched observation: the instances of one infra come from one list call (our labels), shared by
// every Gitspace of that infra and refreshed at most once per interval — never one describe per
// Gitspace per reconcile. Concurrent readers wait for the same list (single flight). Calls made
// after an action (create, start, stop, delete) still look at the one instance they changed.
import { LABELS, MANAGED_BY } from '../../api/index.ts';
import type { Instance, VmProvider } from '../../providers/types.ts';

interface Snapshot {
  byName: Map<string, Instance>;
  at: number;
}

export class InstanceObserver {
  private readonly snapshots = new Map<string, Snapshot>();
  /** What calls told us since, by infra → name: a list that started before a put must not undo it. */
  private readonly recent = new Map<string, Map<string, { inst: Instance | undefined; at: number }>>();
  private readonly inflight = new Map<string, Promise<Snapshot>>();
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(maxAgeMs = 1_000, now: () => number = Date.now) {
    this.maxAgeMs = maxAgeMs;
    this.now = now;
  }

  private async refresh(infra: string, provider: VmProvider): Promise<Snapshot> {
    let p = this.inflight.get(infra);
    if (!p) {
      const started = this.now();
      p = provider
        .listOwned({ [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: infra })
        .then((list) => {
          const snap = { byName: new Map(list.map((i) => [i.name, i])), at: started };
          const recent = this.recent.get(infra);
          for (const [name, r] of recent ?? []) {
            if (r.at < started) recent?.delete(name);
            else if (r.inst) snap.byName.set(name, r.inst);
            else snap.byName.delete(name);
          }
          this.snapshots.set(infra, snap);
          return snap;
        })
        .finally(() => this.inflight.delete(infra));
      this.inflight.set(infra, p);
    }
    return p;
  }

  /** A snapshot no older than the interval. */
  private async fresh(infra: string, provider: VmProvider): Promise<Snapshot> {
    const snap = this.snapshots.get(infra);
    return snap && this.now() - snap.at <= this.maxAgeMs ? snap : this.refresh(infra, provider);
  }

  /** The instance as of a list no older than the interval. */
  async get(infra: string, provider: VmProvider, name: string): Promise<Instance | undefined> {
    return (await this.fresh(infra, provider)).byName.get(name);
  }

  /** Every instance of the infra, as of a list no older than the interval. */
  async all(infra: string, provider: VmProvider): Promise<Instance[]> {
    return [...(await this.fresh(infra, provider)).byName.values()];
  }

  /** Records what a call just told us about one instance (or that it is gone). */
  put(infra: string, name: string, inst: Instance | undefined): void {
    const live = inst && inst.state !== 'terminated' ? inst : undefined;
    let recent = this.recent.get(infra);
    if (!recent) this.recent.set(infra, (recent = new Map<string, { inst: Instance | undefined; at: number }>()));
    recent.set(name, { inst: live, at: this.now() });
    const snap = this.snapshots.get(infra);
    if (!snap) return;
    if (live) snap.byName.set(name, live);
    else snap.byName.delete(name);
  }

  forget(infra: string): void {
    this.snapshots.delete(infra);
    this.recent.delete(infra);
  }
}
