// Who asked for a start, stop or delete, as far as the cluster honestly records it.
//
// Kubernetes keeps no user in an object, only managedFields: which field manager (kubectl-edit,
// argocd-controller, …) last set which fields, when. So a change of spec.state is attributed to
// the manager that owns `spec.state` — or to the control-plane user named in the requested-by
// annotation, when the delegate's own manager set it in the same write. The user behind a
// Kubernetes change is in the API server's audit log, which the Event points to. The informer
// drops managedFields, so the object is read once when a request is first seen, not on every
// reconcile; each request is recorded once (an Event, then status.lastRequest), keyed on the
// action status last recorded.
import {
  DELEGATE_ANNOTATIONS, DELEGATE_FIELD_MANAGER, GITSPACE_ANNOTATIONS, isRequester, MANAGED_BY, MAX_FIELD_MANAGER,
  type Gitspace, type GitspaceStatus, type Phase, type RequestAction,
} from '../../api/index.ts';
import { keyOf } from '../../runtime/informer.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import { isDeleting, jsonEqual } from '../../runtime/objects.ts';
import { GITSPACES } from '../resources.ts';

export type LastRequest = NonNullable<GitspaceStatus['lastRequest']>;

/** One entry of metadata.managedFields, as the API server returns it. */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

export const REQUEST_REASONS: Record<RequestAction, string> = { start: 'StartRequested', stop: 'StopRequested', delete: 'DeleteRequested' };
const AUDIT = 'see the API server audit log';
const STATE = ['f:spec', 'f:state'];
const WAKE = ['f:metadata', 'f:annotations', `f:${GITSPACE_ANNOTATIONS.wake}`];
const REQUESTED_BY = ['f:metadata', 'f:annotations', `f:${GITSPACE_ANNOTATIONS.requestedBy}`];

/** What a phase says the Gitspace was last asked to do, for Gitspaces with no lastRequest yet. */
function fromPhase(phase: Phase | undefined): RequestAction | undefined {
  switch (phase) {
    case 'Provisioning': case 'Starting': case 'Running': case 'Failed': return 'start';
    case 'Stopping': case 'Stopped': return 'stop';
    default: return undefined; // new (its creation is not a request here), or Pending
  }
}

/**
 * The request the object shows that status has not recorded yet, if any. `desired` is what the
 * runner works towards (an idle stop that still holds counts as Stopped).
 */
export function unrecordedRequest(i: { deleting: boolean; desired: 'Running' | 'Stopped'; last?: RequestAction; phase?: Phase }): RequestAction | undefined {
  if (i.deleting) return i.last === 'delete' ? undefined : 'delete';
  const want = i.desired === 'Running' ? 'start' : 'stop';
  const had = i.last ?? fromPhase(i.phase);
  return had === undefined || had === want ? undefined : want;
}

function owns(e: ManagedFieldsEntry, path: string[]): boolean {
  let node: unknown = e.fieldsV1;
  for (const p of path) {
    if (typeof node !== 'object' || node === null || !(p in node)) return false;
    node = (node as Record<string, unknown>)[p];
  }
  return true;
}

/** A field manager name as shown: printable, bounded. */
function managerName(m: string | undefined): string {
  return (m ?? '').replace(/\p{Cc}/gu, '').slice(0, MAX_FIELD_MANAGER);
}

/** The latest entry (by time; later in the list on a tie) that owns one of the paths. */
function latest(entries: ManagedFieldsEntry[], paths: string[][] | 'any'): ManagedFieldsEntry | undefined {
  let best: ManagedFieldsEntry | undefined;
  for (const e of entries) {
    // Status writes are the operator's own reports, never a request.
    if (e.subresource) continue;
    if (paths !== 'any' && !paths.some((p) => owns(e, p))) continue;
    if (!best || Date.parse(e.time ?? '') >= Date.parse(best.time ?? '')) best = e;
  }
  return best;
}

export interface Attribution {
  request: LastRequest;
  /** The Event's note. */
  message: string;
}

/**
 * Who asked for `action`, from the object's managedFields and annotations (pure). A start after an
 * idle stop may have been asked by the wake annotation or by any spec change, so those count too.
 */
export function attribute(
  action: RequestAction,
  meta: { managedFields?: ManagedFieldsEntry[]; annotations?: Record<string, string>; deletionTimestamp?: string },
  o: { now: number; afterOperatorStop?: boolean },
): Attribution {
  const entries = meta.managedFields ?? [];
  const annotations = meta.annotations ?? {};
  const paths = action === 'delete' ? 'any' : action === 'start' ? (o.afterOperatorStop ? [STATE, WAKE, ['f:spec']] : [STATE, WAKE]) : [STATE];
  const e = latest(entries, paths);
  const via = managerName(e?.manager);
  const at = (action === 'delete' ? meta.deletionTimestamp : e?.time) ?? new Date(o.now).toISOString();
  // The delegate's change; for a delete, only if its last write was the one just before a delete.
  const delegate = e !== undefined && via === DELEGATE_FIELD_MANAGER && (action !== 'delete' || annotations[DELEGATE_ANNOTATIONS.want] === 'Deleted');
  if (delegate) {
    // A name counts only if the delegate set it (in that same write), and only if it is a name.
    const by = owns(e, REQUESTED_BY) ? annotations[GITSPACE_ANNOTATIONS.requestedBy] : undefined;
    const who = isRequester(by) ? by : 'the control plane';
    return {
      request: { action, source: 'control-plane', ...(isRequester(by) ? { by } : {}), via, at },
      message: `${action} requested by ${who} (control plane, via ${via})`,
    };
  }
  const client = via ? via : 'a client that names no field manager';
  if (action === 'delete') {
    const last = e ? `; the last change before it was via ${client} at ${e.time ?? 'an unknown time'}` : '';
    return {
      request: { action, source: 'kubernetes', at },
      message: `delete requested at ${at} (Kubernetes records neither the user nor a field manager for a delete — ${AUDIT}${last})`,
    };
  }
  return {
    request: { action, source: 'kubernetes', ...(via ? { via } : {}), at },
    message: `${action} requested via ${client} at ${at} (field manager; Kubernetes does not record the user — ${AUDIT})`,
  };
}

/** The operator's own idle stop, as a request (pure). */
export function operatorStop(now: number, idleSince: string | undefined, idleTimeout: string, why?: { via: string; message: string }): Attribution {
  return {
    request: { action: 'stop', source: 'operator', by: MANAGED_BY, via: why?.via ?? 'idle-timeout', at: new Date(now).toISOString() },
    message: why?.message ?? `stopped by the operator: idle since ${idleSince ?? 'an unknown time'} (idleTimeout ${idleTimeout})`,
  };
}

/**
 * The runner's memory of requests seen but not yet in status: the Event is recorded when a request
 * is first seen, status.lastRequest with the next status write; a failed write does not make a
 * second Event or a second read.
 */
export class RequestLog {
  private readonly unwritten = new Map<string, { uid: string; request: LastRequest }>();
  private readonly client: KubeClient;
  private readonly now: () => number;
  private readonly event: (gs: Gitspace, reason: string, note: string) => void;

  constructor(d: { client: KubeClient; now: () => number; event: (gs: Gitspace, reason: string, note: string) => void }) {
    this.client = d.client;
    this.now = d.now;
    this.event = d.event;
  }

  /** What status.lastRequest should say: a request seen but not yet written, else what it says. */
  current(gs: Gitspace): LastRequest | undefined {
    const u = this.unwritten.get(keyOf(gs));
    return u && u.uid === gs.metadata.uid ? u.request : gs.status?.lastRequest;
  }

  /** Records a request the Gitspace shows and status does not (one GET, one Event). */
  async note(gs: Gitspace, desired: 'Running' | 'Stopped'): Promise<void> {
    const key = keyOf(gs);
    const u = this.unwritten.get(key);
    if (u && (u.uid !== gs.metadata.uid || jsonEqual(u.request, gs.status?.lastRequest))) this.unwritten.delete(key);
    const last = this.current(gs);
    const action = unrecordedRequest({ deleting: isDeleting(gs), desired, last: last?.action, phase: gs.status?.phase });
    if (!action) return;
    let fresh: Gitspace;
    try {
      fresh = await this.client.get<Gitspace>(GITSPACES, gs.metadata.namespace, gs.metadata.name ?? '');
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    if (fresh.metadata.uid !== gs.metadata.uid) return;
    // The API server's object carries managedFields (the informer's copy does not).
    const a = attribute(action, fresh.metadata, { now: this.now(), afterOperatorStop: last?.source === 'operator' });
    this.unwritten.set(key, { uid: gs.metadata.uid ?? '', request: a.request });
    this.event(gs, REQUEST_REASONS[action], a.message);
  }

  /**
   * The operator's idle stop, for the status write that records it (with autoStopped: kept only
   * with it, so a failed write leaves nothing behind to mistake for a request).
   */
  operatorStop(gs: Gitspace, idleSince: string | undefined, idleTimeout: string, why?: { via: string; reason: string; message: string }): LastRequest {
    const a = operatorStop(this.now(), idleSince, idleTimeout, why);
    this.unwritten.delete(keyOf(gs));
    this.event(gs, why?.reason ?? 'AutoStopped', a.message);
    return a.request;
  }

  forget(key: string): void {
    this.unwritten.delete(key);
  }

}
