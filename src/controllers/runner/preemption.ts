// Spot VMs the cloud stopped. A Gitspace whose VM was preempted while it should run shows as
// Stopped with reason Preempted (an Event, a metric) and stays stopped until someone asks for it:
// the preemption is held in status like an idle stop (status.autoStopped, reason Preempted), which
// the wake annotation or a spec change lifts. The runner never restarts a preempted VM by itself —
// capacity is short just then, and the user may not want it any more.
import type { Counter } from 'prom-client';
import { GITSPACE_ANNOTATIONS, type Gitspace, type GitspaceStatus, type Phase } from '../../api/index.ts';
import { ProviderError, type Instance, type VmProvider } from '../../providers/types.ts';
import type { Decision } from './decide.ts';
import { isoSeconds } from './deadlines.ts';
import type { RequestLog } from './requests.ts';
import { Wait } from './wait.ts';

/** Phases in which the VM was meant to be up: a preemption then is news. */
const UP_PHASES: ReadonlySet<Phase> = new Set<Phase>(['Provisioning', 'Starting', 'Running', 'Stopping']);

/** How often a start the cloud refused for want of spot capacity is tried again. */
export const SPOT_RETRY_MS = 30_000;
/** How often a held preempted VM is looked at: EC2 restarts an interrupted one by itself when capacity returns, and it is stopped again. */
export const PREEMPTED_POLL_MS = 30_000;

export interface PreemptionInput {
  /** What the runner works towards (a hold that still stands counts as Stopped). */
  desired: 'Running' | 'Stopped';
  instance?: Pick<Instance, 'state' | 'stopReason' | 'preemptedAt'>;
  phase?: Phase;
  /** The wake annotation, and the last start request's time: a start asked after a preemption is not undone by it. */
  wake?: string;
  lastStart?: string;
  now: number;
}

/**
 * When the preemption happened, if the instance shows one that status has not recorded yet
 * (pure). Only while the VM was meant to be up: once recorded the phase is Stopped, and a start
 * asked later (a wake, spec.state) resumes it instead of recording the same preemption again.
 */
export function newPreemption(i: PreemptionInput): string | undefined {
  const inst = i.instance;
  if (i.desired !== 'Running' || inst?.state !== 'stopped' || inst.stopReason !== 'preempted') return undefined;
  if (!i.phase || !UP_PHASES.has(i.phase)) return undefined;
  const at = Date.parse(inst.preemptedAt ?? '');
  if (Number.isNaN(at)) return isoSeconds(i.now); // the cloud did not say when: now, when it was seen
  if ([i.wake, i.lastStart].some((t) => Date.parse(t ?? '') >= at)) return undefined;
  return isoSeconds(at);
}

/** The message and Ready reason of a Gitspace held stopped by a preemption. */
export function preemptedMessage(at: string | undefined): string {
  return `the cloud reclaimed the spot VM at ${at ?? 'an unknown time'}; start it again to resume (the disk is kept)`;
}

/** decide()'s answer while a preemption holds and the VM is stopped (pure). */
export function preemptedDecision(at: string | undefined): Decision {
  const why = preemptedMessage(at);
  const f = (reason: string, message = '') => ({ status: 'False' as const, reason, message });
  return {
    action: 'none',
    phase: 'Stopped',
    message: why,
    conditions: { InstanceProvisioned: { status: 'True', reason: 'Provisioned', message: '' }, InstanceReady: f('Preempted', 'the cloud stopped the spot VM'), IDEReady: f('Stopped'), Ready: f('Preempted', why) },
    requeueAfterMs: PREEMPTED_POLL_MS,
  };
}

/** decide()'s input for a held preemption: when it happened. */
export function preemptionInput(gs: Gitspace): { preemptedAt?: string } {
  const a = gs.status?.autoStopped;
  return a?.reason === 'Preempted' ? { preemptedAt: a.at } : {};
}

/**
 * Starts the VM. A preempted spot VM the cloud will not start yet (no spot capacity; EC2 restarts
 * an interrupted one only by itself) stays Stopped with a reason, and is tried again.
 */
export async function startVm(provider: VmProvider, inst: Instance): Promise<void> {
  try {
    await provider.start(inst);
  } catch (e) {
    if (inst.stopReason !== 'preempted' || !(e instanceof ProviderError) || e.code !== 'QuotaExceeded') throw e;
    throw new Wait('SpotCapacityUnavailable', `the preempted spot VM cannot start yet: ${e.message}; trying again every ${String(SPOT_RETRY_MS / 1000)} s (the disk is kept)`, 'Stopped', SPOT_RETRY_MS);
  }
}

export interface PreemptionDeps {
  now: () => number;
  requests: Pick<RequestLog, 'operatorStop' | 'current'>;
  /** gitspaces_preemptions_total. */
  counter?: Counter<'infra' | 'machine_type'>;
}

export class Preemptions {
  private readonly d: PreemptionDeps;

  constructor(d: PreemptionDeps) {
    this.d = d;
  }

  /**
   * The status that records a new preemption (autoStopped, lastRequest, the Event), and a function
   * to call once it is written; undefined when the instance shows none.
   */
  record(gs: Gitspace, machineType: string, inst: Instance | undefined, desired: 'Running' | 'Stopped', compose: (d: Decision) => GitspaceStatus): { status: GitspaceStatus; written: () => void } | undefined {
    const last = this.d.requests.current(gs);
    const wake = gs.metadata.annotations?.[GITSPACE_ANNOTATIONS.wake];
    const at = newPreemption({
      desired, instance: inst, phase: gs.status?.phase, now: this.d.now(),
      ...(wake ? { wake } : {}), ...(last?.action === 'start' ? { lastStart: last.at } : {}),
    });
    if (!at) return undefined;
    const status = compose(preemptedDecision(at));
    status.autoStopped = { at, generation: gs.metadata.generation ?? 0, reason: 'Preempted' };
    status.lastRequest = this.d.requests.operatorStop(gs, undefined, '', { via: 'spot-preemption', reason: 'Preempted', message: preemptedMessage(at) });
    const labels = { infra: gs.spec.infraRef.name, machine_type: machineType };
    return { status, written: () => this.d.counter?.inc(labels) };
  }
}
