// A Gitspace's status from one decision and what was observed: phase and conditions, the instance,
// routes, links, activity. Pure: the reconciler writes what this returns, once.
import { GITSPACE_ANNOTATIONS, type Gitspace, type GitspaceInfra, type GitspaceStatus } from '../../api/index.ts';
import type { Instance } from '../../providers/types.ts';
import { setCondition, type Condition } from '../../runtime/conditions.ts';
import { providerKind } from '../resources.ts';
import type { Decision } from './decide.ts';
import { isoSeconds } from './deadlines.ts';
import { checkoutPath, publishedPorts, route, userURLs } from './naming.ts';
import type { AgentObservation } from './vm-agent.ts';

/** status.message's maxLength in the schema (a longer one would make the status write fail). */
export const MAX_MESSAGE = 4096;

export interface StatusContext {
  now: number;
  /** The VM user's home on cloud images. */
  vmHome: string;
  /** The last start/stop/delete request (requests.ts); else status keeps what it had. */
  lastRequest?: GitspaceStatus['lastRequest'];
}

/**
 * Whether an idle stop still stands: the spec has not changed since (a new generation is a new
 * wish) and nobody asked to wake it (the wake annotation names a later time).
 */
export function autoStopHolds(gs: Gitspace): boolean {
  const a = gs.status?.autoStopped;
  if (!a || a.generation !== (gs.metadata.generation ?? 0)) return false;
  const wake = Date.parse(gs.metadata.annotations?.[GITSPACE_ANNOTATIONS.wake] ?? '');
  return !(wake > Date.parse(a.at));
}

/** To the minute, as lastActivity and stopsAt show times (they move with every keystroke). */
const isoMinute = (ms: number) => isoSeconds(ms - (ms % 60_000));

function toMinute(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : isoMinute(t);
}

export function composeStatus(
  gs: Gitspace,
  infra: GitspaceInfra,
  d: Decision,
  inst: Instance | undefined,
  agent: AgentObservation | undefined,
  ctx: StatusContext,
): GitspaceStatus {
  const now = new Date(ctx.now);
  const gen = gs.metadata.generation;
  const old = gs.status ?? {};
  let conditions: Condition[] = (old.conditions ?? []);
  for (const [type, c] of Object.entries(d.conditions)) conditions = setCondition(conditions, { type, ...c }, gen, now);
  const status: GitspaceStatus = { phase: d.phase, observedGeneration: gen, conditions };
  if (d.message) status.message = d.message.slice(0, MAX_MESSAGE);
  if (inst) {
    status.instance = {
      provider: providerKind(infra),
      id: inst.id,
      name: inst.name,
      zone: inst.zone,
      ...(inst.privateIP ? { privateIP: inst.privateIP } : {}),
      machineType: inst.machineType,
      createdAt: inst.createdAt,
      ...(old.instance?.pooled ? { pooled: true } : {}),
    };
  } else if (old.instance?.name && d.phase !== 'Archived') {
    status.instance = { ...old.instance };
  }
  const upstream = inst?.privateIP ? `http://${inst.privateIP}:${inst.agentPort}` : undefined;
  // The agent knows the devcontainer's forwardPorts and the workspace folder; while it cannot be
  // asked (stopped), keep what we had.
  const ports = publishedPorts(gs, infra, agent?.forwardPorts ?? old.route?.ports?.map((p) => p.port) ?? []);
  if (status.instance) status.route = route(gs, infra, d.phase === 'Running' ? upstream : undefined, ports);
  status.urls = agent?.workspace ? userURLs(gs, infra, agent.workspace, ports) : (old.urls ?? userURLs(gs, infra, checkoutPath(gs, ctx.vmHome), ports));
  // Extensions the browser IDE could not install are shown, not dropped.
  const failed = agent?.extensionsFailed;
  if (failed?.length) {
    status.conditions = setCondition(status.conditions, { type: 'ExtensionsInstalled', status: 'False', reason: 'InstallFailed', message: `not installed: ${failed.map((f) => `${f.id} (${f.error})`).join('; ')}`.slice(0, 1024) }, gen, now);
  } else if (failed && old.conditions?.some((c) => c.type === 'ExtensionsInstalled')) {
    status.conditions = setCondition(status.conditions, { type: 'ExtensionsInstalled', status: 'True', reason: 'Installed', message: '' }, gen, now);
  }
  // The dev container, while the agent can say (a stopped VM keeps what was last known).
  const container = agent?.container;
  if (container) status.conditions = setCondition(status.conditions, { type: 'ContainerReady', ...container }, gen, now);
  // To the minute: an active user must not turn every reconcile into a status write (each write
  // is an event that brings the next reconcile). Idle timeouts are 5 minutes or more.
  const activity = agent?.lastActivity ? toMinute(agent.lastActivity) : old.lastActivityTime;
  if (activity) {
    status.lastActivityTime = activity;
    const source = agent?.lastActivitySource ?? old.lastActivity?.source;
    status.lastActivity = { at: activity, source: source ?? 'api' };
  }
  // What maxRunTime counts from, and when the operator will stop it (shown as the Stops column).
  if (d.phase === 'Running') status.startedAt = old.phase === 'Running' && old.startedAt ? old.startedAt : isoSeconds(ctx.now);
  // To the minute, like lastActivity: the idle deadline moves with every keystroke.
  if (d.phase === 'Running' && d.deadlines?.stopsAt !== undefined) status.stopsAt = isoMinute(d.deadlines.stopsAt);
  if (d.phase === 'Failed') status.failedAt = old.phase === 'Failed' && old.failedAt ? old.failedAt : isoSeconds(ctx.now);
  // What deleteAfterStopped counts from (a Failed Gitspace whose VM was stopped counts too), and when it ran out.
  const stoppedNow = d.phase === 'Stopped' || d.phase === 'Archived' || (d.phase === 'Failed' && inst?.state === 'stopped');
  if (stoppedNow) status.stoppedAt = old.stoppedAt && (old.phase === d.phase || old.phase === 'Stopped' || old.phase === 'Failed') ? old.stoppedAt : isoSeconds(ctx.now);
  // Archived until it is started again (a start's Provisioning is what clears it).
  if (d.phase === 'Archived' || (old.archivedAt && d.phase === 'Stopping')) status.archivedAt = old.archivedAt ?? isoSeconds(ctx.now);
  // The host key is on the VM's disk: what the agent said last holds while it cannot be asked.
  const hostKey = agent?.sshHostKey ?? old.sshHostKey;
  if (hostKey) status.sshHostKey = hostKey;
  if (old.autoStopped && autoStopHolds(gs)) status.autoStopped = old.autoStopped;
  const lastRequest = ctx.lastRequest ?? old.lastRequest;
  if (lastRequest) status.lastRequest = lastRequest;
  return status;
}

