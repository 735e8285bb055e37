// GCE's long-running operations: every mutating call returns one, and the change is made only when
// it is DONE. One place waits for them (zone or global), classifies their errors, and derives the
// requestId that makes a retried call the same operation.
import { createHash } from 'node:crypto';
import type { GlobalOperationsClient, ZoneOperationsClient } from '@google-cloud/compute';
import { ProviderError } from '../types.ts';
import { callError, operationError } from './errors.ts';

export interface GceOperation {
  name?: string | null;
  status?: string | number | null;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
}

/** A UUID derived from its inputs, so a retried call carries the same GCE requestId. */
export function requestId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The operation behind a mutating call (the REST client resolves to an operation wrapper). */
export function operationOf(r: unknown): GceOperation {
  const first = (Array.isArray(r) ? r[0] : r) as { latestResponse?: GceOperation; name?: string } | undefined;
  return first?.latestResponse ?? first ?? {};
}

export class GceOperations {
  private readonly zoneOps: ZoneOperationsClient;
  private readonly globalOps: GlobalOperationsClient;
  private readonly project: string;
  /** How long to wait for one operation before giving up (it keeps running in GCE). */
  private readonly timeoutMs: number;

  constructor(zoneOps: ZoneOperationsClient, globalOps: GlobalOperationsClient, project: string, timeoutMs = 10 * 60_000) {
    this.zoneOps = zoneOps;
    this.globalOps = globalOps;
    this.project = project;
    this.timeoutMs = timeoutMs;
  }

  /** Waits for a zone operation (or a global one, zone undefined) to finish; throws its error, classified. */
  async wait(zone: string | undefined, op: GceOperation, what: string): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    let cur = op;
    while (cur.status !== 'DONE' && cur.status !== 2) {
      if (Date.now() > deadline) throw new ProviderError('Transient', `${what}: operation ${op.name ?? ''} still running`);
      try {
        const params = { project: this.project, operation: op.name ?? '' };
        [cur] = (zone ? await this.zoneOps.wait({ ...params, zone }) : await this.globalOps.wait(params)) as [GceOperation, ...unknown[]];
      } catch (e) {
        throw callError(e, `${what}: waiting for operation ${op.name ?? ''}`);
      }
    }
    const errors = cur.error?.errors ?? [];
    if (errors.length) throw operationError(errors);
  }

  /** One mutating call, then its operation: either failing is an error that says `what`. */
  async run(zone: string | undefined, what: string, call: () => Promise<unknown>): Promise<void> {
    let op: GceOperation;
    try {
      op = operationOf(await call());
    } catch (e) {
      throw callError(e, what);
    }
    await this.wait(zone, op, what);
  }
}
