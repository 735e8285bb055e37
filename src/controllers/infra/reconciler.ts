// The infra controller: checks that a GitspaceInfra's provider can be used, reports conditions and
// how many Gitspaces it runs by phase, and holds a finalizer so an infra is not deleted while
// Gitspaces still need it (their VMs could not be cleaned up without it).
import { API_VERSION, FINALIZERS, GITSPACE_INFRA, type Gitspace, type GitspaceInfra, type GitspaceInfraStatus } from '../../api/index.ts';
import { ProviderError } from '../../providers/types.ts';
import { setCondition, type Condition, type ConditionInput } from '../../runtime/conditions.ts';
import type { Reconciler, Result } from '../../runtime/controller.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { addFinalizer, hasFinalizer, isDeleting, patchStatusIfChanged, removeFinalizer } from '../../runtime/objects.ts';
import { GITSPACE_INFRAS, providerKind } from '../resources.ts';
import type { ProviderFor } from '../runner/reconciler.ts';

export interface InfraDeps {
  client: KubeClient;
  infras: Informer<GitspaceInfra>;
  gitspaces: Informer<Gitspace>;
  providerFor: ProviderFor;
  events: EventRecorder;
}

export class InfraReconciler implements Reconciler {
  private readonly d: InfraDeps;

  constructor(d: InfraDeps) {
    this.d = d;
  }

  private users(name: string): Gitspace[] {
    return this.d.gitspaces.list().filter((g) => g.spec.infraRef.name === name);
  }

  async reconcile(key: string): Promise<Result | undefined> {
    const infra = this.d.infras.get(key);
    if (!infra) return undefined;
    const users = this.users(key);
    const ref = { ...infra, apiVersion: API_VERSION, kind: GITSPACE_INFRA.kind };
    if (isDeleting(infra)) {
      if (!hasFinalizer(infra, FINALIZERS.infra)) return undefined;
      if (users.length > 0) {
        const msg = `${users.length} Gitspace(s) still use this infra; delete them first`;
        await this.write(infra, [{ type: 'Ready', status: 'False', reason: 'InUse', message: msg }], users);
        void this.d.events.emit(ref, 'Warning', 'InUse', msg);
        return undefined; // Gitspace deletions re-queue us
      }
      await removeFinalizer(this.d.client, GITSPACE_INFRAS, infra, FINALIZERS.infra);
      return undefined;
    }
    if (!hasFinalizer(infra, FINALIZERS.infra)) {
      this.d.infras.writeThrough(await addFinalizer(this.d.client, GITSPACE_INFRAS, infra, FINALIZERS.infra));
      return undefined;
    }

    const kind = providerKind(infra);
    const conds: ConditionInput[] = [];
    try {
      await this.d.providerFor(infra);
      conds.push(
        kind === 'local'
          ? { type: 'CredentialsValid', status: 'True', reason: 'NotRequired', message: 'the local provider needs no credentials' }
          : { type: 'CredentialsValid', status: 'True', reason: 'Configured', message: 'provider client configured' },
        kind === 'local'
          ? { type: 'NetworkReady', status: 'True', reason: 'NotRequired', message: 'instances listen on loopback addresses' }
          : { type: 'NetworkReady', status: 'Unknown', reason: 'NotChecked', message: 'network checks are not implemented yet' },
      );
    } catch (e) {
      if (!(e instanceof ProviderError)) throw e;
      conds.push(
        { type: 'CredentialsValid', status: 'False', reason: e.code, message: e.message },
        { type: 'NetworkReady', status: 'Unknown', reason: 'ProviderUnavailable', message: e.message },
      );
    }
    conds.push(
      { type: 'GatewayReady', status: 'Unknown', reason: 'NotDeployed', message: 'the gateway Deployment is not managed by this version' },
      infra.spec.pool?.length
        ? { type: 'PoolReady', status: 'False', reason: 'NotImplemented', message: 'warm pools are not implemented by this version' }
        : { type: 'PoolReady', status: 'True', reason: 'NoPool', message: 'no warm pool configured' },
    );
    const ok = conds.filter((c) => c.type === 'CredentialsValid' || c.type === 'NetworkReady').every((c) => c.status !== 'False');
    const bad = conds.find((c) => c.status === 'False' && c.type !== 'PoolReady');
    conds.push(ok ? { type: 'Ready', status: 'True', reason: 'Ready', message: 'Gitspaces can run on this infra' } : { type: 'Ready', status: 'False', reason: bad?.reason ?? 'NotReady', message: bad?.message ?? '' });
    await this.write(infra, conds, users);
    return undefined;
  }

  private async write(infra: GitspaceInfra, conds: ConditionInput[], users: Gitspace[]): Promise<void> {
    let conditions = (infra.status?.conditions ?? []) as Condition[];
    for (const c of conds) conditions = setCondition(conditions, c, infra.metadata.generation);
    const counts: Record<string, number> = {};
    for (const g of users) {
      const p = g.status?.phase ?? 'Pending';
      counts[p] = (counts[p] ?? 0) + 1;
    }
    const status: GitspaceInfraStatus = {
      ...(infra.status ?? {}),
      observedGeneration: infra.metadata.generation,
      provider: providerKind(infra),
      conditions,
      gitspaces: counts,
    };
    this.d.infras.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACE_INFRAS, infra, status));
  }
}
