// An informer: list, then watch from the list's resourceVersion, keeping a cache that reconcilers
// read. Relists on 410 Gone (the watch window expired), reconnects with backoff after errors, and
// replays every cached object to the handlers on a periodic resync.
import { KubeError, type KubeClient, type KubeObject, type Resource, type WatchEvent } from './kube.ts';
import { Backoff } from './backoff.ts';

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  /** e.g. `metadata.name=x`: with it, RBAC may limit list/watch to that name (resourceNames). */
  fieldSelector?: string;
  /** Replay all cached objects to `update` this often (0: never). */
  resyncMs?: number;
  /** Server-side watch timeout; the watch is reopened afterwards. */
  watchTimeoutSeconds?: number;
  pageSize?: number;
  onError?(e: unknown): void;
}

/**
 * Drops metadata.managedFields before caching: controllers never read it and it is often the
 * largest part of an object (controller-runtime offers the same as a cache transform).
 */
function slim<T extends KubeObject>(o: T): T {
  if ('managedFields' in o.metadata) delete (o.metadata as { managedFields?: unknown }).managedFields;
  return o;
}

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones. */
export function keyOf(obj: KubeObject): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name ?? ''}` : (name ?? '');
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private abort = new AbortController();
  private running = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Counts relists (initial list included), for tests and metrics. */
  relists = 0;

  private readonly client: KubeClient;
  readonly resource: Resource;
  private readonly opts: InformerOptions;

  constructor(client: KubeClient, resource: Resource, opts: InformerOptions = {}) {
    this.client = client;
    this.resource = resource;
    this.opts = opts;
  }

  on(h: InformerHandlers<T>): void {
    this.handlers.push(h);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /**
   * Puts an object we just wrote into the cache if it is newer than the cached copy, so the next
   * reconcile does not act on (and conflict with) the version before our own write. The watch
   * event for the write still arrives and is handled as usual.
   */
  writeThrough(obj: T | undefined): void {
    if (!obj) return;
    slim(obj);
    const k = keyOf(obj);
    const old = this.cache.get(k);
    if (!old || newer(obj.metadata.resourceVersion, old.metadata.resourceVersion)) this.cache.set(k, obj);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    void this.loop();
    if (this.opts.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const o of this.cache.values()) for (const h of this.handlers) h.update?.(o, o);
      }, this.opts.resyncMs);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff({ baseMs: 200, maxMs: 30_000 });
    let needList = true;
    while (this.running) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.client.watch<T>(
          this.resource,
          {
            namespace: this.opts.namespace,
            labelSelector: this.opts.labelSelector,
            fieldSelector: this.opts.fieldSelector,
            resourceVersion: this.resourceVersion,
            timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300,
            signal: this.abort.signal,
          },
          (e) => {
            this.apply(e);
            backoff.reset();
          },
        );
        // A clean end of the watch (timeout): reopen from where we are.
      } catch (e) {
        if (!this.running) return;
        if (e instanceof GoneError || (e instanceof KubeError && e.status === 410)) {
          needList = true;
          continue;
        }
        this.opts.onError?.(e);
        // After an outage the resourceVersion may be compacted away; relisting is always safe.
        needList = true;
        await sleep(backoff.next(), this.abort.signal);
      }
    }
  }

  private async relist(): Promise<void> {
    this.relists++;
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.list<T>(this.resource, {
        namespace: this.opts.namespace,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        limit: this.opts.pageSize ?? 500,
        continue: cont,
      });
      for (const o of page.items) fresh.set(keyOf(o), slim(o));
      cont = page.metadata.continue;
      rv = page.metadata.resourceVersion ?? rv;
    } while (cont);
    // Reconcile the cache with the fresh list: deletes we missed, then adds and updates.
    for (const [k, old] of this.cache) {
      if (!fresh.has(k)) {
        this.cache.delete(k);
        for (const h of this.handlers) h.delete?.(old);
      }
    }
    for (const [k, o] of fresh) {
      const old = this.cache.get(k);
      this.cache.set(k, o);
      for (const h of this.handlers) {
        if (!old) h.add?.(o);
        else if (old.metadata.resourceVersion !== o.metadata.resourceVersion) h.update?.(old, o);
      }
    }
    this.resourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private apply(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) throw new GoneError();
      throw new KubeError(status.code ?? 500, 'WatchError', status.message ?? 'watch error', status);
    }
    slim(e.object);
    const rv = e.object.metadata.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (e.type === 'BOOKMARK') return;
    const k = keyOf(e.object);
    const old = this.cache.get(k);
    if (e.type === 'DELETED') {
      this.cache.delete(k);
      for (const h of this.handlers) h.delete?.(e.object);
      return;
    }
    this.cache.set(k, e.object);
    for (const h of this.handlers) {
      if (old) h.update?.(old, e.object);
      else h.add?.(e.object);
    }
  }
}

class GoneError extends Error {}

/** resourceVersions are etcd revisions: compare them as integers (as client-go's mutation cache does). */
function newer(a: string | undefined, b: string | undefined): boolean {
  try {
    return BigInt(a ?? '0') > BigInt(b ?? '0');
  } catch {
    return false;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
