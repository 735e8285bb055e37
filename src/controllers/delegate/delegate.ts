// The delegate controller: syncs a control plane with Gitspace resources (docs/delegate-protocol.md).
// It registers, heartbeats and long-polls for tasks; materialises each as a Gitspace in its
// namespace (labelled with the control plane's id, annotated with the task and revision it
// carries); acknowledges; and reports the result when the Gitspace reaches what was asked or
// fails. Status changes of the Gitspaces it manages are pushed, coalesced per second. After any
// outage (and at start) it resyncs what the control plane believes against the cluster.
// Gitspaces without its label — applied with kubectl or Argo CD — are never touched.
import {
  API_VERSION, DELEGATE_ANNOTATIONS, DELEGATE_FIELD_MANAGER, GITSPACE, GITSPACE_ANNOTATIONS, GITSPACES, isRequester, LABELS, MANAGED_BY,
  type Gitspace, type GitspaceInfra, type Phase,
} from '../../api/index.ts';
import { backoffDelay } from '../../runtime/backoff.ts';
import { EVENTS } from '../../runtime/events.ts';
import { Informer, keyOf, sleep } from '../../runtime/informer.ts';
import { isAlreadyExists, isNotFound, KubeError, type KubeClient, type KubeObject } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';
import { providerKind } from '../resources.ts';
import { namespaceRefusal } from '../tenancy.ts';
import { ControlPlaneClient, ControlPlaneError, type Believed, type ReportedEvent, type StatusReport, type Task, type TaskSpec } from './client.ts';

export const ANNOTATIONS = DELEGATE_ANNOTATIONS;
/** Our writes carry a field manager of their own, so the runner can tell who changed spec.state. */
const WRITE = { fieldManager: DELEGATE_FIELD_MANAGER } as const;

/**
 * The control-plane user a task was asked by: its owner, since the reference control plane lets
 * only the owner start, stop or delete. Input from the control plane: dropped if not a fit name.
 */
function requestedBy(owner: string | undefined): string | null {
  return isRequester(owner) ? owner : null;
}

export interface DelegateOptions {
  url: string;
  token: string;
  /** Where managed Gitspaces live. */
  namespace: string;
  name: string;
  version: string;
  client: KubeClient;
  gitspaces: Informer<Gitspace>;
  infras: Informer<GitspaceInfra>;
  /** Namespaces, for the infras' spec.allowedNamespaces. */
  namespaces: Informer<KubeObject>;
  log: Logger;
  pollSeconds?: number;
  statusFlushMs?: number;
}

type Want = 'Running' | 'Stopped' | 'Deleted';

/** The part of an events.k8s.io/v1 Event the control plane is told about. */
interface KubeEvent extends KubeObject {
  regarding?: { kind?: string; name?: string; namespace?: string };
  reason?: string;
  note?: string;
  type?: string;
  eventTime?: string;
  series?: { count?: number; lastObservedTime?: string };
}

const MAX_EVENTS_PER_REPORT = 20;

interface Pending {
  taskId: string;
  want: Want;
}

/** The fields of `o` that are set, of those named. */
function pick<T extends object, K extends keyof T>(o: T | undefined, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o?.[k] !== undefined) out[k] = o[k];
  return out;
}

export class Delegate {
  readonly cp: ControlPlaneClient;
  private readonly o: DelegateOptions;
  private readonly abort = new AbortController();
  private readonly pending = new Map<string, Pending>();
  private readonly dirty = new Set<string>();
  private loops: Promise<unknown>[] = [];
  private needResync = true;
  /** Tasks applied (not counting redeliveries of an applied revision), for tests and the benchmark. */
  applied = 0;
  /** Events of managed Gitspaces not yet reported, by Gitspace key. */
  private readonly events = new Map<string, ReportedEvent[]>();
  private readonly eventInformer: Informer<KubeEvent>;

  constructor(o: DelegateOptions) {
    this.o = o;
    this.cp = new ControlPlaneClient(o.url, o.token);
    // The Events the operator records for managed Gitspaces travel with their status reports.
    this.eventInformer = new Informer<KubeEvent>(o.client, EVENTS, { namespace: o.namespace, onError: () => undefined });
    const seen = (e: KubeEvent) => {
      const r = e.regarding;
      if (r?.kind !== GITSPACE.kind || !r.name) return;
      const key = `${this.o.namespace}/${r.name}`;
      const g = this.o.gitspaces.get(key);
      if (!g || !this.idOf(g)) return;
      const list = this.events.get(key) ?? [];
      list.push({ type: e.type ?? 'Normal', reason: e.reason ?? '', note: e.note ?? '', at: e.series?.lastObservedTime ?? e.eventTime ?? new Date().toISOString() });
      this.events.set(key, list.slice(-MAX_EVENTS_PER_REPORT));
      this.dirty.add(key);
    };
    this.eventInformer.on({ add: seen, update: (_, e) => { seen(e); } });
    o.gitspaces.on({
      add: (g) => {
        this.observe(g);
      },
      update: (_, g) => {
        this.observe(g);
      },
      delete: (g) => {
        this.observe(g, true);
      },
    });
  }

  private idOf(g: Gitspace): string | undefined {
    return g.metadata.namespace === this.o.namespace ? g.metadata.labels?.[LABELS.controlPlaneId] : undefined;
  }

  // --- the loops -------------------------------------------------------------------------------

  start(): void {
    this.eventInformer.start();
    this.loops = [this.run(), this.flushLoop()];
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.eventInformer.stop();
    await Promise.allSettled(this.loops);
  }

  /** Register, resync, then poll; on any control-plane failure back off and resync after. */
  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    let lastBeat = 0;
    let beatEveryMs = 10_000;
    let registered = false;
    while (!signal.aborted) {
      try {
        if (!registered) {
          const r = await this.cp.register(this.o.name, this.o.version, this.offered());
          beatEveryMs = r.heartbeatSeconds * 1000;
          registered = true;
        }
        if (Date.now() - lastBeat > beatEveryMs) {
          if ((await this.cp.heartbeat(this.o.name)).resync) {
            this.needResync = true;
            registered = false;
          }
          lastBeat = Date.now();
        }
        if (this.needResync) await this.resync();
        const tasks = await this.cp.poll(this.o.pollSeconds ?? 25, signal);
        // One open task per Gitspace (the control plane supersedes older ones), so tasks of a batch
        // are independent: handle them side by side, a few at a time.
        let next = 0;
        await Promise.all(Array.from({ length: Math.min(64, tasks.length) }, async () => {
          while (next < tasks.length) {
            const t = tasks[next++];
            if (t) await this.handle(t);
          }
        }));
        failures = 0;
      } catch (e) {
        if (signal.aborted) break;
        failures++;
        this.needResync = true;
        registered = registered && !(e instanceof ControlPlaneError && e.status === 401);
        const wait = backoffDelay(failures - 1, { baseMs: 500, maxMs: 60_000 });
        this.o.log.warn('control plane call failed; backing off', { error: e, retryInMs: wait });
        await sleep(wait, signal);
      }
    }
  }

  /** What this cluster offers: its infras, machine types and zones. */
  private offered(): unknown[] {
    const ns = this.o.namespaces.get(this.o.namespace);
    return this.o.infras.list().filter((i) => !namespaceRefusal(i, this.o.namespace, ns)).map((i) => ({
      name: i.metadata.name,
      provider: providerKind(i),
      zones: i.spec.provider.gcp?.zones ?? i.spec.provider.aws?.subnets.map((s) => s.zone) ?? ['local'],
      machineTypes: i.spec.machineTypes.map((m) => ({ name: m.name, providerType: m.providerType })),
    }));
  }

  // --- tasks -----------------------------------------------------------------------------------

  private key(id: string): string {
    return `${this.o.namespace}/${id}`;
  }

  private wantOf(t: { kind: Task['kind']; deleted: boolean; spec: TaskSpec }): Want {
    return t.deleted || t.kind === 'delete' ? 'Deleted' : t.spec.state === 'Stopped' ? 'Stopped' : 'Running';
  }

  /** Why the task cannot become a Gitspace here, if it cannot. */
  private invalid(t: Task): string | undefined {
    if (!/^[a-z][a-z0-9]{2,39}$/.test(t.gitspaceId)) return `gitspaceId "${t.gitspaceId}" is not a valid Gitspace name`;
    if (this.wantOf(t) === 'Deleted') return undefined;
    const infra = this.o.infras.get(t.spec.infra);
    if (!infra) return `spec.infra: GitspaceInfra "${t.spec.infra}" does not exist in this cluster`;
    const refused = namespaceRefusal(infra, this.o.namespace, this.o.namespaces.get(this.o.namespace));
    if (refused) return `spec.infra: ${refused}`;
    if (!infra.spec.machineTypes.some((m) => m.name === t.spec.machineType)) return `spec.machineType: "${t.spec.machineType}" is not offered by GitspaceInfra "${t.spec.infra}"`;
    return undefined;
  }

  private async handle(t: Task): Promise<void> {
    const problem = this.invalid(t);
    if (problem) {
      await this.cp.ack(t.id);
      await this.cp.result(t.id, 'failed', 'Invalid', problem);
      return;
    }
    const want = this.wantOf(t);
    const existing = this.o.gitspaces.get(this.key(t.gitspaceId));
    const appliedRevision = Number(existing?.metadata.annotations?.[ANNOTATIONS.revision] ?? 0);
    if (want === 'Deleted') {
      if (existing) await this.deleteGitspace(t.gitspaceId, t.owner);
    } else if (!existing || appliedRevision < t.revision) {
      try {
        await this.apply(t, existing, want);
      } catch (e) {
        if (e instanceof KubeError && (e.status === 422 || e.status === 400)) {
          // The API server refused the spec: nothing was created; say why.
          await this.cp.ack(t.id);
          await this.cp.result(t.id, 'failed', 'Invalid', e.message);
          return;
        }
        throw e;
      }
      this.applied++;
    }
    await this.cp.ack(t.id);
    this.pending.set(this.key(t.gitspaceId), { taskId: t.id, want });
    // It may already be there (a redelivered task, a stop of a stopped Gitspace).
    const now = this.o.gitspaces.get(this.key(t.gitspaceId));
    if (now) this.observe(now);
    else if (want === 'Deleted') await this.finish(this.key(t.gitspaceId), 'succeeded');
  }

  private manifest(t: { gitspaceId: string; owner: string; spec: TaskSpec; revision: number; id: string }, want: Want): Gitspace {
    const by = requestedBy(t.owner);
    return {
      apiVersion: API_VERSION,
      kind: GITSPACE.kind,
      metadata: {
        name: t.gitspaceId,
        namespace: this.o.namespace,
        labels: { [LABELS.controlPlaneId]: t.gitspaceId, [LABELS.managedBy]: MANAGED_BY },
        annotations: {
          [ANNOTATIONS.task]: t.id,
          [ANNOTATIONS.revision]: String(t.revision),
          [ANNOTATIONS.want]: want,
          // In the same write as spec.state, so that managedFields tie the two together.
          ...(by ? { [GITSPACE_ANNOTATIONS.requestedBy]: by } : {}),
          // A user's start (or any change they make) also wakes a Gitspace the idle timeout stopped.
          ...(want === 'Running' ? { [GITSPACE_ANNOTATIONS.wake]: new Date().toISOString() } : {}),
        },
      },
      spec: {
        infraRef: { name: t.spec.infra },
        owner: t.owner,
        repository: { url: t.spec.repository.url, ...(t.spec.repository.ref ? { ref: t.spec.repository.ref } : {}) },
        machineType: t.spec.machineType,
        ...(t.spec.ide ? { ide: t.spec.ide as Gitspace['spec']['ide'] } : {}),
        ...(t.spec.sshPublicKeys ? { sshPublicKeys: t.spec.sshPublicKeys } : {}),
        // The API server validates them (visibility, protocol, bounds) and refuses the task if not.
        ...(t.spec.ports ? { ports: t.spec.ports as Gitspace['spec']['ports'] } : {}),
        state: want === 'Stopped' ? 'Stopped' : 'Running',
      },
    };
  }

  private async apply(t: { gitspaceId: string; owner: string; spec: TaskSpec; revision: number; id: string }, existing: Gitspace | undefined, want: Want): Promise<void> {
    const m = this.manifest(t, want);
    if (!existing) {
      try {
        this.o.gitspaces.writeThrough(await this.o.client.create(GITSPACES, m, WRITE));
        return;
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
      }
    }
    // Only what the control plane owns: the spec fields it sets, our label and annotations.
    const annotations = { [GITSPACE_ANNOTATIONS.requestedBy]: null, ...m.metadata.annotations };
    const patched = await this.o.client.patch<Gitspace>(GITSPACES, this.o.namespace, t.gitspaceId, { metadata: { labels: m.metadata.labels, annotations }, spec: { ...m.spec, infraRef: undefined } }, WRITE);
    this.o.gitspaces.writeThrough(patched);
  }

  /** Says who asked (owner: the control-plane user; none when we delete what it does not know), then deletes. */
  private async deleteGitspace(id: string, owner?: string): Promise<void> {
    const notFound = (e: unknown) => { if (!isNotFound(e)) throw e; };
    const annotations = { [GITSPACE_ANNOTATIONS.requestedBy]: requestedBy(owner), [ANNOTATIONS.want]: 'Deleted' };
    const g = await this.o.client.patch<Gitspace>(GITSPACES, this.o.namespace, id, { metadata: { annotations } }, WRITE).catch(notFound);
    if (g && !g.metadata.deletionTimestamp) await this.o.client.delete(GITSPACES, this.o.namespace, id).catch(notFound);
  }

  // --- results and status ----------------------------------------------------------------------

  private observe(g: Gitspace, deleted = false): void {
    const id = this.idOf(g);
    if (!id) return;
    const key = keyOf(g);
    this.dirty.add(key);
    const p = this.pending.get(key);
    if (!p) return;
    const phase: Phase | undefined = g.status?.phase;
    if (p.want === 'Deleted' ? deleted : phase === p.want) void this.finish(key, 'succeeded');
    else if (!deleted && phase === 'Failed') void this.finish(key, 'failed', g.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? 'Failed', g.status?.message);
  }

  private async finish(key: string, outcome: 'succeeded' | 'failed', reason?: string, message?: string): Promise<void> {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    try {
      await this.cp.result(p.taskId, outcome, reason, message);
    } catch (e) {
      // Kept: the next resync (after the control plane is back) finds the task open and retries.
      this.needResync = true;
      this.o.log.warn('could not report a task result', { task: p.taskId, error: e });
    }
  }

  private report(g: Gitspace): StatusReport {
    const events = this.events.get(keyOf(g));
    return {
      ...(events?.length ? { events } : {}),
      gitspaceId: this.idOf(g) ?? '',
      phase: g.status?.phase ?? 'Pending',
      ...(g.status?.message ? { message: g.status.message } : {}),
      conditions: g.status?.conditions ?? [],
      ...(g.status?.urls ? { urls: g.status.urls } : {}),
      ...(g.status?.instance ? { instance: g.status.instance } : {}),
      ...pick(g.status, ['lastActivity', 'startedAt', 'stopsAt', 'stoppedAt', 'autoStopped']),
      observedAt: new Date().toISOString(),
    };
  }

  /** Status changes, at most one report per Gitspace per interval, many per call. */
  private async flushLoop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      await sleep(this.o.statusFlushMs ?? 1_000, signal);
      if (this.dirty.size === 0) continue;
      const keys = [...this.dirty];
      this.dirty.clear();
      const reports = keys.map((k) => this.o.gitspaces.get(k)).filter((g): g is Gitspace => g !== undefined).map((g) => this.report(g));
      if (reports.length === 0) continue;
      try {
        await this.cp.status(reports);
        for (const k of keys) this.events.delete(k);
      } catch {
        for (const k of keys) this.dirty.add(k); // sent with the next batch
      }
    }
  }

  // --- resync ----------------------------------------------------------------------------------

  /**
   * What the control plane believes against what the cluster has: create what is missing, update
   * what is behind, delete what it deleted or does not know, and pick up open tasks (a result
   * lost in a crash or an outage is sent again — the control plane keeps the first).
   */
  async resync(): Promise<void> {
    const believed = await this.cp.believed();
    const known = new Map<string, Believed>(believed.map((b) => [b.gitspaceId, b]));
    for (const b of believed) {
      const key = this.key(b.gitspaceId);
      const g = this.o.gitspaces.get(key);
      const want = this.wantOf({ kind: 'apply', deleted: b.deleted, spec: b.spec });
      if (b.openTask) this.pending.set(key, { taskId: b.openTask.id, want });
      if (want === 'Deleted') {
        if (g) await this.deleteGitspace(b.gitspaceId, b.owner);
        else await this.finish(key, 'succeeded');
        continue;
      }
      if (!g || Number(g.metadata.annotations?.[ANNOTATIONS.revision] ?? 0) < b.revision) {
        const t = { gitspaceId: b.gitspaceId, owner: b.owner, spec: b.spec, revision: b.revision, id: b.openTask?.id ?? `resync-${b.revision}` };
        if (this.invalid({ ...t, kind: 'apply', deleted: false })) continue;
        await this.apply(t, g, want);
        this.applied++;
      } else if (g) {
        this.observe(g);
      }
    }
    for (const g of this.o.gitspaces.list()) {
      const id = this.idOf(g);
      if (id && !known.has(id)) await this.deleteGitspace(id);
    }
    this.needResync = false;
  }
}
