// The delegate's side of the wire (docs/delegate-protocol.md): typed calls, bearer token, clear
// errors. Every call goes out from the cluster; nothing calls in.

export type TaskKind = 'apply' | 'start' | 'stop' | 'delete';

export interface TaskSpec {
  infra: string;
  repository: { url: string; ref?: string };
  ide?: { type: string; product?: string };
  machineType: string;
  sshPublicKeys?: string[];
  ports?: { port: number; name?: string; visibility?: string; protocol?: string }[];
  state: string;
}

export interface Task {
  id: string;
  gitspaceId: string;
  kind: TaskKind;
  revision: number;
  owner: string;
  spec: TaskSpec;
  deleted: boolean;
}

export interface Believed {
  gitspaceId: string;
  owner: string;
  spec: TaskSpec;
  deleted: boolean;
  revision: number;
  openTask?: { id: string; kind: TaskKind; revision: number };
}

export interface StatusReport {
  gitspaceId: string;
  phase: string;
  message?: string;
  conditions?: unknown[];
  urls?: unknown;
  instance?: unknown;
  /** Why it runs and when it stops (a portal shows "stops at 11:42"), and the operator's own stop. */
  lastActivity?: unknown;
  startedAt?: string;
  stopsAt?: string;
  stoppedAt?: string;
  autoStopped?: unknown;
  /** Events recorded for the Gitspace since the last report. */
  events?: ReportedEvent[];
  observedAt: string;
}

/** An Event of a Gitspace, forwarded with its status. */
export interface ReportedEvent {
  type: string;
  reason: string;
  note: string;
  at: string;
}

export class ControlPlaneError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** The most of one answer the delegate reads (a poll of many tasks is well under it). */
const MAX_ANSWER_BYTES = 8 << 20;

/** The body as text, refusing (and cancelling) one larger than `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new Error(`the answer exceeds ${String(max >> 20)} MiB`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class ControlPlaneClient {
  private readonly base: string;
  private readonly token: string;
  /** Calls made, by path (for the benchmark and metrics). */
  readonly calls = new Map<string, number>();

  private readonly timeoutMs: number;

  constructor(url: string, token: string, o: { timeoutMs?: number } = {}) {
    this.base = `${url.replace(/\/$/, '')}/api/delegate/v1`;
    this.token = token;
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  /**
   * One call, bounded: a deadline for the whole exchange (a long poll gets its wait on top) and a
   * cap on the answer, so a slow or hostile control plane cannot hold the delegate or grow its memory.
   */
  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, waitSeconds = 0): Promise<T> {
    const key = path.split('?')[0]?.replace(/\/t-[^/]+/, '/{id}') ?? path;
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
    const deadline = AbortSignal.timeout(this.timeoutMs + waitSeconds * 1000);
    const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let text: string;
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: both,
      });
      text = await boundedText(res, MAX_ANSWER_BYTES);
    } catch (e) {
      if (signal?.aborted) throw e;
      const why = deadline.aborted ? `no answer within ${String(this.timeoutMs / 1000 + waitSeconds)} s` : (e as Error).message;
      throw new ControlPlaneError(0, `control plane unreachable: ${why}`);
    }
    if (!res.ok) {
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        /* keep the text */
      }
      throw new ControlPlaneError(res.status, `${method} ${path}: ${res.status} ${message}`);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  register(name: string, version: string, infras: unknown[]): Promise<{ heartbeatSeconds: number; pollSeconds: number }> {
    return this.call('POST', '/register', { name, version, infras });
  }

  heartbeat(name: string): Promise<{ resync: boolean }> {
    return this.call('POST', '/heartbeat', { name, at: new Date().toISOString() });
  }

  async poll(waitSeconds: number, signal?: AbortSignal): Promise<Task[]> {
    return (await this.call<{ tasks: Task[] }>('GET', `/tasks?wait=${waitSeconds}`, undefined, signal, waitSeconds)).tasks;
  }

  ack(id: string): Promise<void> {
    return this.call('POST', `/tasks/${encodeURIComponent(id)}/ack`, {});
  }

  result(id: string, outcome: 'succeeded' | 'failed', reason?: string, message?: string): Promise<void> {
    return this.call('POST', `/tasks/${encodeURIComponent(id)}/result`, { outcome, ...(reason ? { reason } : {}), ...(message ? { message } : {}) });
  }

  status(reports: StatusReport[]): Promise<void> {
    return this.call('POST', '/status', { reports });
  }

  async believed(): Promise<Believed[]> {
    return (await this.call<{ gitspaces: Believed[] }>('GET', '/gitspaces')).gitspaces;
  }
}
