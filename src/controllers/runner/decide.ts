// The runner's decisions as one pure function: from the desired state, what the provider says of
// the instance and what its agent says, to the one action to take now, the phase and conditions
// to report, and when to look again. Table-tested in test/unit/runner-decide.test.ts.
import type { ActivitySource, AutoStopReason, Phase } from '../../api/index.ts';
import type { InstanceState } from '../../providers/types.ts';
import { clock, deadlines, human, runningSentence, type Deadlines } from './deadlines.ts';
import { preemptedDecision } from './preemption.ts';

/** What the agent's /healthz said, reduced to what the decision needs. */
export type AgentView =
  | { reachable: false; error: string }
  | { reachable: true; state: 'setting-up' | 'ready' | 'failed'; step?: { name: string; message?: string }; lastActivityTime?: string; lastActivitySource?: ActivitySource };

export type Action = 'none' | 'create' | 'start' | 'stop' | 'autoStop' | 'archive';

export interface CondOut {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export interface Decision {
  action: Action;
  phase: Phase;
  message: string;
  conditions: { InstanceProvisioned: CondOut; InstanceReady: CondOut; IDEReady: CondOut; Ready: CondOut };
  requeueAfterMs?: number;
  /** With action autoStop: why (recorded in status.autoStopped). */
  stopReason?: AutoStopReason;
  /** While Running: when it will be stopped, and when to warn of the run-time limit. */
  deadlines?: Deadlines;
  /** While Stopped with a retention: when its VM and disk go, and when to warn of it. */
  archiveAt?: number;
  archiveWarnAt?: number;
}

/** How long before archiving the warning Event comes: a day, or a tenth of a shorter retention. */
export function archiveLeadMs(deleteAfterStoppedMs: number): number {
  return Math.min(24 * 3_600_000, Math.floor(deleteAfterStoppedMs / 10));
}

/** setTimeout's limit is 24.8 days: retention deadlines are looked at again at least this often. */
const FAR_POLL_MS = 6 * 3_600_000;

export interface DecideInput {
  desired: 'Running' | 'Stopped';
  instance?: { state: InstanceState; address?: string };
  agent?: AgentView;
  idleTimeoutMs: number;
  /** The run-time limit (0: none) and when the Gitspace last started running. */
  maxRunTimeMs?: number;
  startedAt?: number;
  /** The operator's own stop that still stands (desired is then Stopped): its reason. */
  hold?: AutoStopReason;
  /** How long a Failed Gitspace's VM keeps running (0: for ever), and since when it has failed. */
  failedStopAfterMs?: number;
  failedSince?: number;
  /** Retention: how long a stopped VM and disk are kept (0: for ever), since when it is stopped, and whether that already ran out. */
  deleteAfterStoppedMs?: number;
  stoppedSince?: number;
  archived?: boolean;
  /** With hold Preempted: when the cloud reclaimed the spot VM. */
  preemptedAt?: string;
  now: number;
}

/** How often to look while something is changing, and while all is steady. */
export const FAST_POLL_MS = 1_000;
export const STEADY_POLL_MS = 30_000;

const T = (reason: string, message = ''): CondOut => ({ status: 'True', reason, message });
const F = (reason: string, message = ''): CondOut => ({ status: 'False', reason, message });

function conds(ip: CondOut, ir: CondOut, ide: CondOut, ready: CondOut): Decision['conditions'] {
  return { InstanceProvisioned: ip, InstanceReady: ir, IDEReady: ide, Ready: ready };
}

/**
 * A VM the operator stopped, and that stays stopped, reads by why it was stopped; an idle stop
 * reads as any stopped Gitspace.
 */
const HELD: Partial<Record<AutoStopReason, (i: DecideInput) => Decision>> = {
  Failed: (i) => {
    const why = `set-up failed; its VM was stopped after ${human(i.failedStopAfterMs ?? 0)} and its disk is kept for inspection: change the spec or wake it to try again`;
    return { action: 'none', phase: 'Failed', message: why, conditions: conds(T('Provisioned'), F('Stopped'), F('StepFailed'), F('StepFailed', why)) };
  },
  Preempted: (i) => preemptedDecision(i.preemptedAt),
  MaxRunTime: (i) => {
    const why = `stopped at its run-time limit (${human(i.maxRunTimeMs ?? 0)}); start it again to resume (the disk is kept)`;
    return { action: 'none', phase: 'Stopped', message: why, conditions: conds(T('Provisioned'), F('Stopped'), F('Stopped'), F('MaxRunTime', why)) };
  },
};

export function decide(i: DecideInput): Decision {
  const state = i.instance?.state === 'terminated' ? undefined : i.instance?.state;
  const keep = i.deleteAfterStoppedMs ?? 0;
  // Archived: the VM is gone, or still going (a cloud's delete takes a while).
  if (i.desired === 'Stopped' && i.archived && (state === undefined || state === 'stopping')) {
    const why = `archived: its VM and disk were deleted after ${human(keep)} stopped; start it again to get a new VM from the repository`;
    return { action: 'none', phase: 'Archived', message: why, conditions: conds(F('Archived', 'no instance'), F('Archived'), F('Archived'), F('Archived', why)) };
  }
  if (i.desired === 'Stopped' && state === 'stopped' && (i.archived || (keep > 0 && i.stoppedSince !== undefined))) {
    const archiveAt = (i.stoppedSince ?? i.now) + keep;
    if (i.archived || i.now >= archiveAt) {
      return { action: 'archive', phase: 'Archived', message: `archiving: deleting its VM and disk after ${human(keep)} stopped`, conditions: conds(F('Archived', 'deleting the instance'), F('Archived'), F('Archived'), F('Archived', 'archiving')), requeueAfterMs: FAST_POLL_MS };
    }
    const stopped = decide({ ...i, deleteAfterStoppedMs: 0 });
    const warnAt = archiveAt - archiveLeadMs(keep);
    const next = Math.min(FAR_POLL_MS, (i.now < warnAt ? warnAt : archiveAt) - i.now + 50);
    const message = `${stopped.message}; deleted at ${clock(archiveAt, i.now)} (deleteAfterStopped ${human(keep)}) unless started before then`;
    return { ...stopped, message, archiveAt, archiveWarnAt: warnAt, requeueAfterMs: Math.min(stopped.requeueAfterMs ?? next, next) };
  }
  const held = i.desired === 'Stopped' && state === 'stopped' && i.hold ? HELD[i.hold]?.(i) : undefined;
  if (held) return held;
  if (i.desired === 'Stopped') {
    if (state === undefined) {
      return { action: 'none', phase: 'Stopped', message: 'stopped; no instance was created', conditions: conds(F('Stopped', 'no instance'), F('Stopped'), F('Stopped'), F('Stopped', 'the Gitspace is stopped')) };
    }
    if (state === 'stopped') {
      return { action: 'none', phase: 'Stopped', message: 'stopped; the instance and its disk are kept', conditions: conds(T('Provisioned'), F('Stopped'), F('Stopped'), F('Stopped', 'the Gitspace is stopped')) };
    }
    const stopping = state === 'stopping';
    return {
      action: stopping ? 'none' : 'stop',
      phase: 'Stopping',
      message: 'stopping the instance',
      conditions: conds(T('Provisioned'), F('Stopping'), F('Stopping'), F('Stopping', 'the Gitspace is stopping')),
      requeueAfterMs: FAST_POLL_MS,
    };
  }

  // desired Running
  switch (state) {
    case undefined:
      return { action: 'create', phase: 'Provisioning', message: 'creating the instance', conditions: conds(F('Creating', 'creating the instance'), F('Provisioning'), F('Provisioning'), F('Provisioning', 'the instance is being created')), requeueAfterMs: FAST_POLL_MS };
    case 'pending':
      return { action: 'none', phase: 'Provisioning', message: 'the instance is booting', conditions: conds(T('Provisioned'), F('Booting', 'the instance is booting'), F('Provisioning'), F('Provisioning', 'the instance is booting')), requeueAfterMs: FAST_POLL_MS };
    case 'stopping':
      return { action: 'none', phase: 'Stopping', message: 'waiting for the instance to stop before starting it again', conditions: conds(T('Provisioned'), F('Stopping'), F('Stopping'), F('Stopping', 'the instance is still stopping')), requeueAfterMs: FAST_POLL_MS };
    case 'stopped':
      return { action: 'start', phase: 'Starting', message: 'starting the instance', conditions: conds(T('Provisioned'), F('Starting', 'starting the instance'), F('Starting'), F('Starting', 'the instance is starting')), requeueAfterMs: FAST_POLL_MS };
    case 'running':
      break;
  }

  const agent = i.agent;
  if (!agent || !agent.reachable) {
    const why = agent && !agent.reachable ? agent.error : 'not probed yet';
    return { action: 'none', phase: 'Starting', message: 'waiting for the agent', conditions: conds(T('Provisioned'), F('AgentNotConnected', `waiting for the agent${i.instance?.address ? ` at ${i.instance.address}` : ''}: ${why}`), F('AgentNotConnected'), F('Starting', 'waiting for the agent')), requeueAfterMs: FAST_POLL_MS };
  }
  const stepText = agent.step ? `${agent.step.name}${agent.step.message ? `: ${agent.step.message}` : ''}` : '';
  if (agent.state === 'failed') {
    const failed = conds(T('Provisioned'), T('AgentConnected'), F('StepFailed', `set-up step ${stepText}`), F('StepFailed', `set-up step ${stepText}`));
    // The VM of a failed Gitspace is kept running a while for a look, then stopped (disk kept).
    const after = i.failedStopAfterMs ?? 0;
    if (after > 0) {
      const stopAt = (i.failedSince ?? i.now) + after;
      if (i.now >= stopAt) return { action: 'autoStop', stopReason: 'Failed', phase: 'Failed', message: `set-up step ${stepText}; stopping its VM after ${human(after)} (the disk is kept)`, conditions: failed, requeueAfterMs: FAST_POLL_MS };
      return { action: 'none', phase: 'Failed', message: `set-up step ${stepText}`, conditions: failed, requeueAfterMs: Math.min(STEADY_POLL_MS, stopAt - i.now + 50) };
    }
    return { action: 'none', phase: 'Failed', message: `set-up step ${stepText}`, conditions: failed, requeueAfterMs: STEADY_POLL_MS };
  }
  if (agent.state === 'setting-up') {
    return { action: 'none', phase: 'Starting', message: `setting up: ${stepText}`, conditions: conds(T('Provisioned'), T('AgentConnected'), F('SettingUp', stepText), F('SettingUp', `setting up: ${stepText}`)), requeueAfterMs: FAST_POLL_MS };
  }
  // ready: the idle timeout and the run-time limit
  const input = {
    now: i.now, idleTimeoutMs: i.idleTimeoutMs, maxRunTimeMs: i.maxRunTimeMs ?? 0,
    ...(agent.lastActivityTime ? { lastActivity: { at: Date.parse(agent.lastActivityTime), ...(agent.lastActivitySource ? { source: agent.lastActivitySource } : {}) } } : {}),
    ...(i.startedAt !== undefined ? { startedAt: i.startedAt } : {}),
  };
  const d = deadlines(input);
  const running = conds(T('Provisioned'), T('AgentConnected'), T('IDEReady'), T('Ready'));
  if (d.stopsAt !== undefined && i.now >= d.stopsAt) {
    const why = d.reason === 'MaxRunTime' ? `its run-time limit (${human(input.maxRunTimeMs)}) is reached; stopping` : `no activity for ${String(Math.round((i.now - (input.lastActivity?.at ?? i.now)) / 1000))} s; stopping`;
    return { action: 'autoStop', stopReason: d.reason, phase: 'Stopping', message: why, conditions: conds(T('Provisioned'), F('Stopping'), F('Stopping'), F(d.reason === 'MaxRunTime' ? 'MaxRunTime' : 'AutoStopped', d.reason === 'MaxRunTime' ? 'stopped at the run-time limit' : 'stopped after the idle timeout')), requeueAfterMs: FAST_POLL_MS };
  }
  // Look again at the next deadline (or the run-time warning), at least every STEADY_POLL_MS.
  const next = [d.stopsAt, d.warnAt].filter((t): t is number => t !== undefined && t > i.now).map((t) => t - i.now + 50);
  return { action: 'none', phase: 'Running', message: runningSentence(input, d), conditions: running, requeueAfterMs: Math.min(STEADY_POLL_MS, ...next), deadlines: d };
}
