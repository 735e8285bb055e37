// A small JSON client for the Kubernetes API.
//
// Why not @kubernetes/client-node: its models serialise from differently named properties
// (`_enum`, `xKubernetesValidations`, …) and turn timestamps into Dates, so plain objects lose
// fields on the way out and change shape on the way in; and importing it costs ~90 MB of RSS.
// Our objects stay plain JSON.
import { Agent, request } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { ObjectMeta } from '../api/meta.ts';
import { loadDefault, type ClusterAccess } from './kubeconfig.ts';

/** Which resource: group ('' for core), version, plural, and whether it is namespaced. */
export interface Resource {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface KubeList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** A failed API call, carrying the Kubernetes Status fields. */
export class KubeError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly body: unknown;
  constructor(status: number, reason: string, message: string, body: unknown) {
    super(message);
    this.name = 'KubeError';
    this.status = status;
    this.reason = reason;
    this.body = body;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeError && e.status === 409;
export const isAlreadyExists = (e: unknown): boolean => e instanceof KubeError && e.status === 409 && e.reason === 'AlreadyExists';

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';
const PATCH_CONTENT: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestInit {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

export function resourcePath(r: Resource, namespace?: string, name?: string, subresource?: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const n = name ? `/${encodeURIComponent(name)}` : '';
  return `${base}${ns}/${r.plural}${n}${subresource && name ? `/${subresource}` : ''}`;
}

function queryString(q: RequestInit['query']): string {
  if (!q) return '';
  const parts = Object.entries(q)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export class KubeClient {
  private readonly access: ClusterAccess;
  private readonly server: URL;
  private readonly agent: Agent | HttpAgent;
  /** Counts requests by verb (status writes as `PATCH/status`), for benchmarks and metrics. */
  readonly calls = new Map<string, number>();
  /**
   * Sent on every request. The API server names a write's field manager after it (the part before
   * the first "/"), so managedFields tell this program's writes from a GitOps tool's.
   */
  private readonly userAgent: string | undefined;

  constructor(access: ClusterAccess, opts: { userAgent?: string } = {}) {
    this.access = access;
    this.userAgent = opts.userAgent;
    this.server = new URL(access.server);
    const agentOpts = { keepAlive: true, maxSockets: 64 };
    this.agent =
      this.server.protocol === 'http:'
        ? new HttpAgent(agentOpts)
        : new Agent({ ...agentOpts, ca: access.ca, cert: access.cert, key: access.key, rejectUnauthorized: !access.insecureSkipTLSVerify });
  }

  /** From $KUBECONFIG / ~/.kube/config, or the in-cluster service account. */
  static fromDefault(opts: { userAgent?: string } = {}): KubeClient {
    return new KubeClient(loadDefault(), opts);
  }

  private open(method: string, path: string, init: RequestInit = {}): Promise<IncomingMessage> {
    const token = this.access.token?.();
    const payload =
      init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    const url = new URL(path + queryString(init.query), this.server);
    const verb = init.query?.watch ? 'WATCH' : path.endsWith('/status') ? `${method}/status` : method;
    this.calls.set(verb, (this.calls.get(verb) ?? 0) + 1);
    const send = this.server.protocol === 'http:' ? httpRequest : request;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          agent: this.agent,
          signal: init.signal,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            accept: 'application/json',
            ...(this.userAgent ? { 'user-agent': this.userAgent } : {}),
            // Content-Length always: Node does not chunk a DELETE body, so without it the body would
            // be read as the next request on the kept-alive connection.
            ...(payload !== undefined ? { 'content-type': init.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          },
        },
        resolve,
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** One request; JSON in, JSON out; a non-2xx answer throws KubeError. */
  async request<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.open(method, path, init);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const s = json as { reason?: string; message?: string } | undefined;
      throw new KubeError(status, s?.reason ?? 'Unknown', s?.message ?? `${method} ${path}: HTTP ${status} ${text.slice(0, 200)}`, json);
    }
    return json as T;
  }

  get<T extends KubeObject>(r: Resource, namespace: string | undefined, name: string): Promise<T> {
    return this.request('GET', resourcePath(r, namespace, name));
  }

  list<T extends KubeObject>(r: Resource, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number; continue?: string; resourceVersion?: string } = {}): Promise<KubeList<T>> {
    const { namespace, ...query } = opts;
    return this.request('GET', resourcePath(r, namespace), { query });
  }

  create<T extends KubeObject>(r: Resource, obj: T, opts: { dryRun?: boolean; fieldManager?: string } = {}): Promise<T> {
    return this.request('POST', resourcePath(r, obj.metadata.namespace), {
      body: obj,
      query: { dryRun: opts.dryRun ? 'All' : undefined, fieldManager: opts.fieldManager },
    });
  }

  replace<T extends KubeObject>(r: Resource, obj: T): Promise<T> {
    return this.request('PUT', resourcePath(r, obj.metadata.namespace, obj.metadata.name), { body: obj });
  }

  patch<T extends KubeObject>(
    r: Resource,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    opts: { type?: PatchType; subresource?: 'status'; fieldManager?: string; force?: boolean } = {},
  ): Promise<T> {
    const type = opts.type ?? 'merge';
    return this.request('PATCH', resourcePath(r, namespace, name, opts.subresource), {
      body: patch,
      contentType: PATCH_CONTENT[type],
      query: { fieldManager: opts.fieldManager, force: opts.force },
    });
  }

  delete(r: Resource, namespace: string | undefined, name: string, opts: { propagationPolicy?: 'Foreground' | 'Background' | 'Orphan'; uid?: string } = {}): Promise<unknown> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.uid) body.preconditions = { uid: opts.uid };
    return this.request('DELETE', resourcePath(r, namespace, name), { body });
  }

  /**
   * Streams watch events until the server closes the watch, the signal aborts, or an error occurs.
   * Resolves normally when the stream ends (the caller re-watches from the last resourceVersion).
   */
  async watch<T>(
    r: Resource,
    opts: { namespace?: string; resourceVersion?: string; labelSelector?: string; fieldSelector?: string; timeoutSeconds?: number; signal?: AbortSignal },
    onEvent: (e: WatchEvent<T>) => void,
  ): Promise<void> {
    const res = await this.open('GET', resourcePath(r, opts.namespace), {
      signal: opts.signal,
      query: {
        watch: 1,
        allowWatchBookmarks: true,
        resourceVersion: opts.resourceVersion,
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        timeoutSeconds: opts.timeoutSeconds,
      },
    });
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      let text = '';
      for await (const c of res) text += (c as Buffer).toString('utf8');
      let s: { reason?: string; message?: string } = {};
      try {
        s = JSON.parse(text) as typeof s;
      } catch {
        /* not JSON */
      }
      throw new KubeError(status, s.reason ?? 'Unknown', s.message ?? `watch ${r.plural}: HTTP ${status}`, s);
    }
    let buf = '';
    res.setEncoding('utf8');
    for await (const chunk of res) {
      buf += chunk as string;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    }
  }

  close(): void {
    this.agent.destroy();
  }
}
