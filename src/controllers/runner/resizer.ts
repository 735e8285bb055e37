// The runner's resize step (decisions in resize.ts): resizes a stopped instance through the
// provider, backs off after the cloud refuses, and puts pendingChanges, the boot disk size and
// the MachineUpToDate condition on the status about to be written, with Events for what is new.
import type { Gitspace, GitspaceInfra, GitspaceStatus } from '../../api/index.ts';
import { ProviderError, type Instance, type VmProvider } from '../../providers/types.ts';
import { setCondition } from '../../runtime/conditions.ts';
import { keyOf } from '../../runtime/informer.ts';
import { RESIZE_CONDITION, resizeBackoffMs, resizeCondition, type ResizeOutcome, type ResizePlan } from './resize.ts';

export interface ResizerDeps {
  now: () => number;
  event: (gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string) => void;
}

/** A refused change: tried again after notBefore (in memory: a restarted operator tries once more). */
interface Refusal {
  /** The change refused; another change starts over. */
  target: string;
  attempts: number;
  notBefore: number;
  failure: string;
}

export class Resizer {
  private readonly d: ResizerDeps;
  private readonly refusals = new Map<string, Refusal>();

  constructor(d: ResizerDeps) {
    this.d = d;
  }

  forget(key: string): void {
    this.refusals.delete(key);
  }

  /**
   * Resizes the stopped instance as planned, unless the cloud refused this very change a moment
   * ago (then it waits out the backoff). The cloud's refusal is the outcome's failure; throttling,
   * credentials and a vanished instance go to the reconciler's usual handling.
   */
  async apply(gs: Gitspace, infra: GitspaceInfra, provider: VmProvider, inst: Instance, plan: ResizePlan): Promise<ResizeOutcome & { retryMs?: number }> {
    if (!plan.resize) return {};
    const key = keyOf(gs);
    const target = JSON.stringify(plan.resize);
    const now = this.d.now();
    let r = this.refusals.get(key);
    if (r && r.target !== target) r = undefined;
    if (r && now < r.notBefore) return { failure: r.failure, retryMs: r.notBefore - now };
    const attempts = r?.attempts ?? 0;
    try {
      // A new wish (either generation) or a new attempt is a new cloud request; a retry of one is not.
      const requestKey = `${String(gs.metadata.generation ?? 0)}.${String(infra.metadata.generation ?? 0)}.${String(attempts)}`;
      await provider.resize(inst, { ...plan.resize, requestKey });
    } catch (e) {
      if (!(e instanceof ProviderError) || e.code === 'Throttled' || e.code === 'Unauthenticated' || e.code === 'NotFound') throw e;
      const n = attempts + 1;
      const wait = resizeBackoffMs(n);
      const failure = `${e.message} (attempt ${String(n)}; tried again in ${String(Math.round(wait / 1000))} s)`;
      this.refusals.set(key, { target, attempts: n, notBefore: now + wait, failure });
      this.d.event(gs, 'Warning', 'ResizeFailed', failure);
      return { failure, retryMs: wait };
    }
    this.refusals.delete(key);
    this.d.event(gs, 'Normal', 'Resized', plan.summary);
    return { resized: plan.summary };
  }

  /** Sets pendingChanges, instance.diskSizeGB and the MachineUpToDate condition on `status`. */
  annotate(gs: Gitspace, status: GitspaceStatus, plan: ResizePlan, inst: Instance | undefined, outcome: ResizeOutcome = {}): GitspaceStatus {
    if (status.instance && inst?.diskSizeGB !== undefined) status.instance.diskSizeGB = inst.diskSizeGB;
    if (plan.pending.length) status.pendingChanges = plan.pending;
    else delete status.pendingChanges;
    const old = gs.status?.conditions?.find((c) => c.type === RESIZE_CONDITION);
    const c = resizeCondition(plan, outcome, old);
    if (c) {
      status.conditions = setCondition(status.conditions, { type: RESIZE_CONDITION, ...c }, gs.metadata.generation, new Date(this.d.now()));
      const news = old?.reason !== c.reason || old.message !== c.message;
      if (news && c.reason === 'ResizePending') this.d.event(gs, 'Normal', 'ResizePending', c.message);
      if (news && c.reason === 'ResizeRefused') this.d.event(gs, 'Warning', 'ResizeRefused', c.message);
    }
    if (outcome.failure) status.message = `resize failed: ${outcome.failure}`.slice(0, 4096);
    return status;
  }
}
