// The infra controller: checks that a GitspaceInfra's provider can be used (one authenticated
// call), keeps the network rule that admits only the gateway to the VM agents, keeps the warm
// pools filled, reports conditions and how many Gitspaces it runs by phase, and holds a finalizer
// so an infra is not deleted while Gitspaces still need it (their VMs could not be cleaned up
// without it).
import { AGENT_HTTP_PORT, AGENT_SSH_PORT, API_VERSION, FINALIZERS, GITSPACE_INFRA, type Gitspace, type GitspaceInfra, type GitspaceInfraStatus } from '../../api/index.ts';
import { infraResourceName } from '../../providers/names.ts';
import { ProviderError, type VmProvider } from '../../providers/types.ts';
import type { PoolResult, WarmPool } from '../pool/warm-pool.ts';
import { setCondition, type Condition, type ConditionInput } from '../../runtime/conditions.ts';
import type { Reconciler, Result } from '../../runtime/controller.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { KubeClient, KubeObject } from '../../runtime/kube.ts';
import { addFinalizer, hasFinalizer, isDeleting, patchStatusIfChanged, removeFinalizer } from '../../runtime/objects.ts';
import { GITSPACE_INFRAS, providerKind } from '../resources.ts';
import type { ProviderFor } from '../runner/reconciler.ts';
import { gatewayCondition, type GatewayCheckDeps } from './gateway-check.ts';

export interface InfraDeps {
  client: KubeClient;
  infras: Informer<GitspaceInfra>;
  gitspaces: Informer<Gitspace>;
  providerFor: ProviderFor;
  events: EventRecorder;
  pool?: WarmPool;
  /** How GatewayReady is observed (certificate Secret, gateway URL). */
  gateway: GatewayCheckDeps;
}

const POOL_POLL_MS = 2_000;
const SCHEDULE_SLACK_MS = 250;
const RECHECK_MS = 5 * 60_000;
const CREDENTIALS_RECHECK_MS = 60_000;
/** How often the gateway and its certificate are looked at (a GET and a Secret read). */
const GATEWAY_RECHECK_MS = 30_000;

export class InfraReconciler implements Reconciler {
  private readonly d: InfraDeps;
  /** The last cloud checks per infra, and what they were made for. */
  private readonly checks = new Map<string, { key: string; at: number; credentials: { provider?: VmProvider; condition: ConditionInput }; network?: ConditionInput }>();

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
      if (this.d.pool) {
        const { provider } = await this.checkCredentials(infra);
        if (provider && (await this.d.pool.retire(infra, provider)) > 0) return { requeueAfter: POOL_POLL_MS };
      }
      await removeFinalizer(this.d.client, GITSPACE_INFRAS, infra, FINALIZERS.infra);
      return undefined;
    }
    if (!hasFinalizer(infra, FINALIZERS.infra)) {
      this.d.infras.writeThrough(await addFinalizer(this.d.client, GITSPACE_INFRAS, infra, FINALIZERS.infra));
      return undefined;
    }

    const conds: ConditionInput[] = [];
    let pool: PoolResult | undefined;
    const { credentials, network } = await this.cloudChecks(infra, ref);
    conds.push(credentials.condition);
    if (credentials.provider) {
      conds.push(network ?? { type: 'NetworkReady', status: 'Unknown', reason: 'NotChecked', message: '' });
      if (this.d.pool) {
        pool = await this.d.pool.reconcile(infra, credentials.provider);
        conds.push(this.poolCondition(infra, pool));
      }
    } else {
      conds.push({ type: 'NetworkReady', status: 'Unknown', reason: 'ProviderUnavailable', message: 'not checked without valid credentials' });
    }
    if (!pool) {
      conds.push(
        infra.spec.pool?.length
          ? { type: 'PoolReady', status: 'Unknown', reason: 'ProviderUnavailable', message: 'the pool is not kept without valid credentials' }
          : { type: 'PoolReady', status: 'True', reason: 'NoPool', message: 'no warm pool configured' },
      );
    }
    const gateway = await this.gatewayCheck(infra);
    conds.push(gateway);
    const blocking = conds.find((c) => (c.type === 'CredentialsValid' || c.type === 'NetworkReady') && c.status === 'False');
    conds.push(blocking ? { type: 'Ready', status: 'False', reason: blocking.reason, message: blocking.message } : { type: 'Ready', status: 'True', reason: 'Ready', message: 'Gitspaces can run on this infra' });
    await this.write(infra, conds, users, pool?.status);
    if (pool?.settling) return { requeueAfter: POOL_POLL_MS };
    // Credentials are re-checked sooner while they are bad; the firewall rule is re-checked for drift.
    const recheck = Math.min(credentials.provider ? RECHECK_MS : CREDENTIALS_RECHECK_MS, GATEWAY_RECHECK_MS);
    // A scheduled minReady changes at an instant: be there (a little after, so the new value is in force).
    return { requeueAfter: pool?.nextChangeInMs !== undefined ? Math.min(recheck, pool.nextChangeInMs + SCHEDULE_SLACK_MS) : recheck };
  }

  private readonly gatewayChecks = new Map<string, { key: string; at: number; condition: ConditionInput }>();

  /** GatewayReady, looked at again when the infra changes or the last look is GATEWAY_RECHECK_MS old. */
  private async gatewayCheck(infra: GitspaceInfra): Promise<ConditionInput> {
    const name = infra.metadata.name ?? '';
    const key = `${String(infra.metadata.generation ?? 0)}/${JSON.stringify(infra.metadata.annotations ?? {})}`;
    const last = this.gatewayChecks.get(name);
    if (last && last.key === key && Date.now() - last.at < GATEWAY_RECHECK_MS) return last.condition;
    const condition = await gatewayCondition(this.d.gateway, infra);
    this.gatewayChecks.set(name, { key, at: Date.now(), condition });
    return condition;
  }

  /**
   * Credentials and network, checked against the cloud when the infra's spec or annotations
   * changed (annotating it is how to ask for a re-check) or the last check is old — not on every
   * reconcile: most reconciles only recount Gitspace phases.
   */
  private async cloudChecks(infra: GitspaceInfra, ref: KubeObject & { apiVersion: string; kind: string }): Promise<{ credentials: { provider?: VmProvider; condition: ConditionInput }; network?: ConditionInput }> {
    const name = infra.metadata.name ?? '';
    const key = `${infra.metadata.generation ?? 0}/${JSON.stringify(infra.metadata.annotations ?? {})}`;
    const last = this.checks.get(name);
    const maxAge = last?.credentials.provider ? RECHECK_MS : CREDENTIALS_RECHECK_MS;
    if (last && last.key === key && Date.now() - last.at < maxAge) return last;
    const credentials = await this.checkCredentials(infra);
    const network = credentials.provider ? await this.checkNetwork(infra, credentials.provider, ref) : undefined;
    const result = { credentials, ...(network ? { network } : {}) };
    this.checks.set(name, { ...result, key, at: Date.now() });
    return result;
  }

  /** The provider, if its credentials work (one cheap authenticated call), and the condition saying so. */
  private async checkCredentials(infra: GitspaceInfra): Promise<{ provider?: VmProvider; condition: ConditionInput }> {
    const kind = providerKind(infra);
    try {
      const provider = await this.d.providerFor(infra);
      await provider.verify();
      return {
        provider,
        condition: kind === 'local'
          ? { type: 'CredentialsValid', status: 'True', reason: 'NotRequired', message: 'the local provider needs no credentials' }
          : { type: 'CredentialsValid', status: 'True', reason: 'Verified', message: `the ${kind} API accepted the credentials` },
      };
    } catch (e) {
      if (!(e instanceof ProviderError) || e.code === 'Throttled' || e.code === 'Transient') throw e;
      return { condition: { type: 'CredentialsValid', status: 'False', reason: e.code, message: e.message } };
    }
  }

  /** Creates or corrects the rule that lets only the gateway reach the VM agents. */
  private async checkNetwork(infra: GitspaceInfra, provider: VmProvider, ref: KubeObject & { apiVersion: string; kind: string }): Promise<ConditionInput> {
    if (provider.kind === 'local') return { type: 'NetworkReady', status: 'True', reason: 'NotRequired', message: 'instances listen on loopback addresses' };
    const ranges = infra.spec.gateway.egressRanges ?? [];
    if (ranges.length === 0) return { type: 'NetworkReady', status: 'False', reason: 'NoEgressRanges', message: 'spec.gateway.egressRanges is empty: nothing may reach the VMs' };
    const rule = { name: infraResourceName(infra.metadata.name ?? '', 'agents'), sourceRanges: ranges, ports: [AGENT_HTTP_PORT, AGENT_SSH_PORT] };
    try {
      const r = await provider.ensureNetwork(rule);
      const what = `${provider.kind === 'gcp' ? 'firewall rule' : 'security group'} ${r.id} admits tcp:${rule.ports.join(',')} from ${ranges.join(', ')} only`;
      if (r.action !== 'none') void this.d.events.emit(ref, 'Normal', r.action === 'created' ? 'NetworkRuleCreated' : 'NetworkRuleCorrected', what);
      return { type: 'NetworkReady', status: 'True', reason: 'RuleInPlace', message: what };
    } catch (e) {
      if (!(e instanceof ProviderError) || e.code === 'Throttled' || e.code === 'Transient') throw e;
      return { type: 'NetworkReady', status: 'False', reason: e.code, message: e.message };
    }
  }

  private poolCondition(infra: GitspaceInfra, pool: PoolResult): ConditionInput {
    const entries = infra.spec.pool ?? [];
    if (entries.length === 0) return { type: 'PoolReady', status: 'True', reason: 'NoPool', message: 'no warm pool configured' };
    if (pool.scheduleErrors.length) return { type: 'PoolReady', status: 'False', reason: 'BadSchedule', message: `${pool.scheduleErrors.join('; ')} (the entry keeps its own minReady meanwhile)` };
    // p.minReady is the one in force now (schedules).
    const short = pool.status.filter((p) => (p.ready ?? 0) < (p.minReady ?? entries.find((e) => e.machineType === p.machineType && e.zone === p.zone)?.minReady ?? 0));
    if (short.length === 0) return { type: 'PoolReady', status: 'True', reason: 'Filled', message: pool.status.map((p) => `${p.machineType}/${p.zone}: ${p.ready ?? 0} ready`).join('; ') };
    const err = this.d.pool?.lastError.get(infra.metadata.name ?? '');
    const text = short.map((p) => `${p.machineType}/${p.zone}: ${p.ready ?? 0} ready, ${p.provisioning ?? 0} booting`).join('; ');
    return { type: 'PoolReady', status: 'False', reason: err ? 'CreateFailed' : 'Filling', message: err ? `${text}; last create failed: ${err}` : text };
  }

  private async write(infra: GitspaceInfra, conds: ConditionInput[], users: Gitspace[], pool?: PoolResult['status']): Promise<void> {
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
    if (pool?.length) status.pool = pool;
    else delete status.pool;
    this.d.infras.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACE_INFRAS, infra, status));
  }
}
