// The runner's decisions as one pure function: from the desired state, what the provider says of
// the instance and what its agent says, to the one action to take now, the phase and conditions
// to report, and when to look again. Table-tested in test/unit/runner-decide.test.ts.
import type { Phase } from '../../api/index.ts';
import type { InstanceState } from '../../providers/types.ts';

/** What the agent's /healthz said, reduced to what the decision needs. */
export type AgentView =
  | { reachable: false; error: string }
  | { reachable: true; state: 'setting-up' | 'ready' | 'failed'; step?: { name: string; message?: string }; lastActivityTime?: string };

export type Action = 'none' | 'create' | 'start' | 'stop' | 'autoStop';

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
}

export interface DecideInput {
  desired: 'Running' | 'Stopped';
  instance?: { state: InstanceState; address?: string };
  agent?: AgentView;
  idleTimeoutMs: number;
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

export function decide(i: DecideInput): Decision {
  const state = i.instance?.state === 'terminated' ? undefined : i.instance?.state;
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
    return { action: 'none', phase: 'Failed', message: `set-up step ${stepText}`, conditions: conds(T('Provisioned'), T('AgentConnected'), F('StepFailed', `set-up step ${stepText}`), F('StepFailed', `set-up step ${stepText}`)), requeueAfterMs: STEADY_POLL_MS };
  }
  if (agent.state === 'setting-up') {
    return { action: 'none', phase: 'Starting', message: `setting up: ${stepText}`, conditions: conds(T('Provisioned'), T('AgentConnected'), F('SettingUp', stepText), F('SettingUp', `setting up: ${stepText}`)), requeueAfterMs: FAST_POLL_MS };
  }
  // ready: check idleness
  const last = agent.lastActivityTime ? Date.parse(agent.lastActivityTime) : i.now;
  if (i.idleTimeoutMs > 0) {
    const idleFor = i.now - last;
    if (idleFor >= i.idleTimeoutMs) {
      return { action: 'autoStop', phase: 'Stopping', message: `no activity for ${Math.round(idleFor / 1000)} s; stopping`, conditions: conds(T('Provisioned'), F('Stopping'), F('Stopping'), F('AutoStopped', 'stopped after the idle timeout')), requeueAfterMs: FAST_POLL_MS };
    }
    return { action: 'none', phase: 'Running', message: '', conditions: conds(T('Provisioned'), T('AgentConnected'), T('IDEReady'), T('Ready')), requeueAfterMs: Math.min(STEADY_POLL_MS, i.idleTimeoutMs - idleFor + 50) };
  }
  return { action: 'none', phase: 'Running', message: '', conditions: conds(T('Provisioned'), T('AgentConnected'), T('IDEReady'), T('Ready')), requeueAfterMs: STEADY_POLL_MS };
}
