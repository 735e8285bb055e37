// The GCE fake's operations: every change answers with one, which the client polls (get) or waits
// on (wait) until DONE. A repeated requestId returns the operation it made, as in GCE, so a retried
// call changes nothing twice.
import type { ServerResponse } from 'node:http';
import { BASE, json, notFound, error } from './responses.ts';
import { operationFilter } from './spot.ts';

export interface Op {
  id: string;
  name: string;
  /** Empty for a global operation. */
  zone: string;
  operationType: string;
  targetLink: string;
  targetId?: string;
  /** Who made it: the system, for a preemption. */
  user?: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  insertTime: string;
  doneAt: number;
  error?: { errors: { code: string; message: string }[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
}

export class Operations {
  private readonly ops = new Map<string, Op>();
  private readonly requestIds = new Map<string, Op>();
  private readonly project: string;
  private readonly nextId: () => string;

  /** `nextId` is the fake's one id source: instances and operations draw from the same sequence. */
  constructor(project: string, nextId: () => string) {
    this.project = project;
    this.nextId = nextId;
  }

  /** The operation an earlier call with this requestId made. */
  byRequest(requestId: string | null): Op | undefined {
    return requestId ? this.requestIds.get(requestId) : undefined;
  }

  /** An operation DONE at once when `ms` is 0; otherwise its maker marks it DONE (reads show it DONE after `ms` anyway). */
  create(zone: string, type: string, targetLink: string, requestId: string | null, ms: number): Op {
    const op: Op = {
      id: this.nextId(),
      name: `operation-${Date.now()}-${Math.random().toString(16).slice(2, 10)}`,
      zone,
      operationType: type,
      targetLink,
      status: ms > 0 ? 'RUNNING' : 'DONE',
      insertTime: new Date().toISOString(),
      doneAt: Date.now() + ms,
    };
    this.ops.set(op.name, op);
    if (requestId) this.requestIds.set(requestId, op);
    return op;
  }

  /** An operation that is DONE after `ms` and then runs `after` (at once when `ms` is 0). */
  run(zone: string, type: string, targetLink: string, requestId: string | null, ms: number, after?: () => void): Op {
    const op = this.create(zone, type, targetLink, requestId, ms);
    if (ms <= 0) after?.();
    else setTimeout(() => {
      op.status = 'DONE';
      after?.();
    }, ms);
    return op;
  }

  /** Answers with the operation. */
  send(res: ServerResponse, op: Op): void {
    json(res, 200, this.view(op));
  }

  /** Zone and global operations: get, and wait (returns when done or after at most 2 s, as GCE does). */
  get(method: string, name: string, action: string | undefined, res: ServerResponse): void {
    const op = this.ops.get(name);
    if (!op) return notFound(res, `operations/${name}`);
    if (action === 'wait' && method === 'POST') {
      const until = Math.min(op.doneAt, Date.now() + 2_000);
      setTimeout(() => { this.send(res, op); }, Math.max(0, until - Date.now()));
      return;
    }
    this.send(res, op);
  }

  /** zoneOperations.list with the filter terms spot.ts understands. */
  list(zone: string, filter: string | null, res: ServerResponse): void {
    const match = operationFilter(filter);
    if (typeof match === 'string') return error(res, 400, 'invalid', match);
    const items = [...this.ops.values()].filter((op) => op.zone === zone).map((op) => this.view(op)).filter(match);
    json(res, 200, { kind: 'compute#operationList', id: `projects/${this.project}/zones/${zone}/operations`, items });
  }

  private view(op: Op): Record<string, unknown> {
    const done = op.status === 'DONE' || Date.now() >= op.doneAt;
    return {
      kind: 'compute#operation',
      id: op.id,
      name: op.name,
      ...(op.zone ? { zone: `${BASE}/projects/${this.project}/zones/${op.zone}` } : {}),
      operationType: op.operationType,
      targetLink: op.targetLink,
      ...(op.targetId ? { targetId: op.targetId } : {}),
      ...(op.user ? { user: op.user } : {}),
      status: done ? 'DONE' : op.status,
      progress: done ? 100 : 50,
      insertTime: op.insertTime,
      selfLink: `${BASE}/projects/${this.project}/${op.zone ? `zones/${op.zone}` : 'global'}/operations/${op.name}`,
      ...(op.error ? { error: op.error, httpErrorStatusCode: op.httpErrorStatusCode, httpErrorMessage: op.httpErrorMessage } : {}),
    };
  }
}
