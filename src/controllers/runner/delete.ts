// Deleting a Gitspace: its VM goes first (only one whose cloud labels name this Gitspace; an
// unclaimed pool VM stays the pool's), then the finalizer, so the object outlives its VM.
import { GITSPACES, LABELS, FINALIZERS, type Gitspace, type GitspaceInfra } from '../../api/index.ts';
import { ProviderError, type VmProvider } from '../../providers/types.ts';
import type { Result } from '../../runtime/controller.ts';
import { keyOf, type Informer } from '../../runtime/informer.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { hasFinalizer, patchStatusIfChanged, removeFinalizer } from '../../runtime/objects.ts';
import { FAST_POLL_MS } from './decide.ts';
import { instanceName } from './naming.ts';
import type { InstanceObserver } from './observer.ts';
import type { RequestLog } from './requests.ts';
import { labelledFor } from './vm-agent.ts';

/** An EC2 delete is asynchronous: it is not asked again for this long. */
const DELETE_REISSUE_MS = 30_000;

export interface DeleterDeps {
  client: KubeClient;
  gitspaces: Informer<Gitspace>;
  infras: Informer<GitspaceInfra>;
  observer: InstanceObserver;
  providerFor: (infra: GitspaceInfra) => VmProvider | Promise<VmProvider>;
  requests: RequestLog;
  now: () => number;
  event: (gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string) => void;
  providerFailure: (key: string, gs: Gitspace, e: ProviderError) => Promise<Result | undefined>;
}

export class Deleter {
  private readonly d: DeleterDeps;
  /** When a delete that completes asynchronously (EC2) was last asked for, by Gitspace key. */
  private readonly deleteAsked = new Map<string, number>();

  constructor(d: DeleterDeps) {
    this.d = d;
  }

  async reconcile(gs: Gitspace): Promise<Result | undefined> {
    if (!hasFinalizer(gs, FINALIZERS.gitspace)) return undefined;
    const infra = this.d.infras.get(gs.spec.infraRef.name);
    if (!infra) {
      // Without its infra there is no provider to ask; the orphan sweep cleans such VMs up.
      this.d.event(gs, 'Warning', 'InstanceOrphaned', `GitspaceInfra "${gs.spec.infraRef.name}" is gone; instance ${gs.status?.instance?.name ?? instanceName(gs)} is left to the orphan sweep`);
      await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
      return undefined;
    }
    if (gs.status?.phase !== 'Deleting') {
      const lastRequest = this.d.requests.current(gs);
      this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, { ...(gs.status ?? {}), phase: 'Deleting', message: 'deleting the instance', ...(lastRequest ? { lastRequest } : {}) }));
      this.d.event(gs, 'Normal', 'Deleting', `deleting instance ${gs.status?.instance?.name ?? instanceName(gs)}`);
      return undefined;
    }
    let provider: VmProvider;
    try {
      provider = await this.d.providerFor(infra);
    } catch (e) {
      if (e instanceof ProviderError) return this.d.providerFailure(keyOf(gs), gs, e);
      throw e;
    }
    const name = gs.status.instance?.name ?? instanceName(gs);
    const infraName = infra.metadata.name ?? '';
    const key = keyOf(gs);
    // The shared list says where it is; only its absence is confirmed with a lookup of its own.
    const inst = (await this.d.observer.get(infraName, provider, name)) ?? (await provider.find(name, gs.status.instance?.zone ?? gs.spec.zone));
    if (inst && !labelledFor(inst, gs)) {
      // Status names a VM that is not this Gitspace's (status is writable by more people than the
      // spec): it is not deleted with it. An unclaimed pool VM simply stays the pool's.
      const unclaimedPoolVM = inst.labels[LABELS.pool] !== undefined && inst.labels[LABELS.gitspaceUID] === undefined;
      if (unclaimedPoolVM) this.d.event(gs, 'Normal', 'PoolInstanceReturned', `instance ${name} was never claimed; it stays in the warm pool`);
      else this.d.event(gs, 'Warning', 'InstanceNotOurs', `instance ${name} is labelled for Gitspace UID "${inst.labels[LABELS.gitspaceUID] ?? ''}", not this one; it is left alone`);
      await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
      return undefined;
    }
    if (inst) {
      const asked = this.deleteAsked.get(key);
      if (asked !== undefined && this.d.now() - asked < DELETE_REISSUE_MS) return { requeueAfter: FAST_POLL_MS };
      const outcome = await provider.delete(inst);
      if (outcome === 'going') {
        // EC2: shutting-down for a while; the next lists show when it is gone.
        this.deleteAsked.set(key, this.d.now());
        this.d.observer.put(infraName, name, { ...inst, state: 'stopping' });
        return { requeueAfter: FAST_POLL_MS };
      }
      this.d.observer.put(infraName, name, undefined);
    }
    this.deleteAsked.delete(key);
    this.d.event(gs, 'Normal', 'InstanceDeleted', `instance ${name} deleted`);
    await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
    return undefined;
  }

  forget(key: string): void {
    this.deleteAsked.delete(key);
  }
}
