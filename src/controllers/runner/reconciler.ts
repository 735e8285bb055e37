// The runner: reconciles a Gitspace into a VM through the provider interface.
//
// Each reconcile reads the world (the cached Gitspace and infra, the provider's view of the
// instance, the agent's health), decides one action (decide.ts), does it, looks again, and writes
// status once if it changed. The instance name is deterministic and is written to status *before*
// the create call, so a crash at any point is followed by a lookup that finds the instance instead
// of creating a second one.
import {
  API_VERSION, FINALIZERS, GITSPACE, LABELS, MAX_NAME_AND_NAMESPACE,
  type Gitspace, type GitspaceInfra, type GitspaceStatus, type Phase,
} from '../../api/index.ts';
import { ProviderError, type Instance, type VmProvider } from '../../providers/types.ts';
import { setCondition, type Condition } from '../../runtime/conditions.ts';
import { RetryAfter, type Reconciler, type Result } from '../../runtime/controller.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { keyOf, type Informer } from '../../runtime/informer.ts';
import type { KubeClient, KubeObject } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';
import { addFinalizer, hasFinalizer, isDeleting, patchStatusIfChanged, removeFinalizer } from '../../runtime/objects.ts';
import { GITSPACES } from '../resources.ts';
import type { Secret } from '../token-secret.ts';
import type { WarmPool } from '../pool/warm-pool.ts';
import type { Enrolment } from '../enrolment.ts';
import { namespaceRefusal } from '../tenancy.ts';
import type { AgentClaim, AgentProbe, AgentRebuild } from './agent-probe.ts';
import { decide, FAST_POLL_MS, type Decision } from './decide.ts';
import { claimFor, labelledFor, VmAgent } from './vm-agent.ts';
import { repoCredentials } from './gitspace-secrets.ts';
import { Wait } from './wait.ts';
import type { InstanceObserver } from './observer.ts';
import { instanceName, parseDuration, vmLabels } from './naming.ts';
import { RequestLog } from './requests.ts';
import { autoStopHolds, composeStatus, MAX_MESSAGE, type StatusContext } from './status.ts';

export type { Secret };

/**
 * Gives the provider for an infra (it may read a credentials Secret first); throws
 * ProviderError('InvalidConfig') when it cannot.
 */
export type ProviderFor = (infra: GitspaceInfra) => VmProvider | Promise<VmProvider>;

export interface RunnerDeps {
  client: KubeClient;
  gitspaces: Informer<Gitspace>;
  infras: Informer<GitspaceInfra>;
  /** Namespaces, for the infras' spec.allowedNamespaces. */
  namespaces: Informer<KubeObject>;
  providerFor: ProviderFor;
  probe: AgentProbe;
  /** Asks an agent to rebuild its dev container (default: POST /v1/rebuild). */
  rebuild?: AgentRebuild;
  /** Hands an unclaimed VM its Gitspace (default: POST /v1/claim). */
  claim?: AgentClaim;
  /** Boot facts and one-time tokens for new VMs. */
  enrolment: Enrolment;
  /** Warm pools to claim VMs from; without it every Gitspace gets a new VM. */
  pool?: WarmPool;
  events: EventRecorder;
  log: Logger;
  now?: () => number;
  /** The VM user's home on cloud images. */
  vmHome?: string;
  /** One list per infra per interval, shared by all its Gitspaces (and the warm pool). */
  observer: InstanceObserver;
}

const DEFAULT_IDLE = '1h';
const QUOTA_RETRY_MS = 60_000;
const DELETE_REISSUE_MS = 30_000;
/**
 * Why not to call the provider again yet: after InvalidConfig, until the Gitspace's or the infra's
 * spec changes; after QuotaExceeded, until a time. Kept in memory: after a restart the operator
 * tries once more, which is harmless.
 */
interface Hold {
  generation?: number;
  infraGeneration?: number;
  until?: number;
}

export class RunnerReconciler implements Reconciler {
  private readonly d: RunnerDeps;
  private readonly now: () => number;
  private readonly holds = new Map<string, Hold>();
  /** When a delete that completes asynchronously (EC2) was last asked for, by Gitspace key. */
  private readonly deleteAsked = new Map<string, number>();
  private readonly agents: VmAgent;
  private readonly requests: RequestLog; // who asked for starts, stops and deletes
  constructor(d: RunnerDeps) {
    this.d = d;
    this.now = d.now ?? Date.now;
    this.agents = new VmAgent({ ...d, now: this.now, event: (gs, type, reason, note) => { this.event(gs, type, reason, note); } });
    this.requests = new RequestLog({ client: d.client, now: this.now, event: (gs, reason, note) => { this.event(gs, 'Normal', reason, note); } });
  }

  async reconcile(key: string): Promise<Result | undefined> {
    const gs = this.d.gitspaces.get(key);
    if (!gs) {
      this.holds.delete(key);
      this.agents.forget(key);
      this.requests.forget(key);
      return undefined;
    }
    // An idle stop is remembered in status, not spec: the spec still says Running.
    const desired = autoStopHolds(gs) ? 'Stopped' : (gs.spec.state ?? 'Running');
    if (hasFinalizer(gs, FINALIZERS.gitspace)) await this.requests.note(gs, desired);
    if (isDeleting(gs)) return this.reconcileDelete(gs);
    if (!hasFinalizer(gs, FINALIZERS.gitspace)) {
      // The update this causes brings us back with the finalizer in place.
      this.d.gitspaces.writeThrough(await addFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace));
      return undefined;
    }
    try {
      return await this.reconcileNormal(gs, desired);
    } catch (e) {
      if (e instanceof Wait) {
        await this.writeWaiting(gs, e);
        return e.retryMs !== undefined ? { requeueAfter: e.retryMs } : undefined;
      }
      if (e instanceof ProviderError) return this.providerFailure(key, gs, e);
      throw e;
    }
  }

  /** Whether a hold keeps us from calling the provider now; the result to return if so. */
  private held(key: string, gs: Gitspace, infra: GitspaceInfra): Result | 'go' | undefined {
    const h = this.holds.get(key);
    if (!h) return 'go';
    if (h.until !== undefined && this.now() < h.until) return { requeueAfter: h.until - this.now() };
    if (h.generation !== undefined && h.generation === gs.metadata.generation && h.infraGeneration === infra.metadata.generation) return undefined;
    this.holds.delete(key);
    return 'go';
  }

  // --- normal path -----------------------------------------------------------------------------

  private infraOf(gs: Gitspace): GitspaceInfra {
    const infra = this.d.infras.get(gs.spec.infraRef.name);
    if (!infra || isDeleting(infra)) {
      throw new Wait('InfraNotFound', `GitspaceInfra "${gs.spec.infraRef.name}" does not exist; waiting for it`, 'Pending');
    }
    return infra;
  }

  private async reconcileNormal(gs: Gitspace, desired: 'Running' | 'Stopped'): Promise<Result | undefined> {
    const infra = this.infraOf(gs);
    const ns = gs.metadata.namespace ?? '';
    const nameAndNamespace = (gs.metadata.name ?? '').length + ns.length;
    if (nameAndNamespace > MAX_NAME_AND_NAMESPACE) {
      // Immutable: only a new Gitspace (shorter name) helps; the admission policy refuses it earlier.
      throw new Wait('NameTooLong', `metadata.name and namespace together have ${String(nameAndNamespace)} characters, more than ${String(MAX_NAME_AND_NAMESPACE)}: its port hosts <port>--<name>--<namespace> would not fit in one DNS label`, 'Failed');
    }
    const mt = infra.spec.machineTypes.find((m) => m.name === gs.spec.machineType);
    if (!mt) {
      const offered = infra.spec.machineTypes.map((m) => m.name).join(', ');
      throw new ProviderError('InvalidConfig', `spec.machineType: "${gs.spec.machineType}" is not offered by GitspaceInfra "${infra.metadata.name ?? ''}" (offered: ${offered})`, { field: 'spec.machineType' });
    }
    const infraName = infra.metadata.name ?? '';
    const creds = infra.status?.conditions?.find((c) => c.type === 'CredentialsValid');
    if (creds?.status === 'False') {
      // The infra controller re-checks them; its status change brings us back.
      throw new Wait('CredentialsInvalid', `GitspaceInfra "${infraName}" has no valid cloud credentials: ${creds.message ?? ''}`, gs.status?.phase ?? 'Pending');
    }
    const provider = await this.d.providerFor(infra);
    // A pooled VM's name is the pool's; it is in the status from the moment it was claimed.
    const name = gs.status?.instance?.name ?? instanceName(gs);
    const token = await this.d.enrolment.hopToken(gs);
    let inst = await this.d.observer.get(infraName, provider, name);
    let agent = await this.agents.observe(inst, token);
    if (inst && gs.status?.instance?.pooled) inst = await this.agents.adoptPooled(gs, infraName, provider, inst, vmLabels(gs, infra));
    if (inst && agent.unclaimed !== undefined) {
      await this.agents.enrol(gs, inst, agent.unclaimed, async () => claimFor(gs, token, await repoCredentials(this.d.client, gs)));
      // Only a claim changes what the agent answers.
      agent = await this.agents.observe(inst, token);
    }
    agent = await this.agents.askForRebuild(gs, inst, agent, token);
    const idleTimeout = gs.spec.idleTimeout ?? infra.spec.idleTimeout ?? DEFAULT_IDLE;
    const idleTimeoutMs = parseDuration(idleTimeout) ?? 0;
    // An agent that does not answer: the console says why, if the boot failed. A VM that went down
    // by itself while starting is asked too (a local "VM" is its agent process: it ends with it),
    // and asked again once Failed, so it is not started again and again.
    const wentDown = inst?.state === 'stopped' && desired === 'Running' && (gs.status?.phase === 'Starting' || gs.status?.phase === 'Failed');
    if (inst && ((inst.state === 'running' && agent.unreachable) || wentDown)) await this.agents.bootFailure(gs, provider, inst, wentDown && gs.status?.phase === 'Starting');
    const input = () => ({ desired, instance: inst, agent: agent.view, idleTimeoutMs, now: this.now() });
    const decision = decide(input());

    if (decision.action === 'create' || decision.action === 'start') {
      // A VM that runs already is left to its user and the idle stop; none is created or started.
      const refused = namespaceRefusal(infra, ns, this.d.namespaces.get(ns));
      if (refused) throw new Wait('NamespaceNotAllowed', refused, gs.status?.phase ?? 'Pending');
      const h = this.held(keyOf(gs), gs, infra);
      if (h !== 'go') return h;
    }

    if (decision.action === 'create' && gs.status?.instance?.name !== name) {
      // Intent first: record the VM we are about to use before touching the cloud — a ready one
      // from the warm pool if there is one, else the deterministic name we are about to create.
      const pooled = this.d.pool?.reserve(infraName, mt.name, gs.spec.zone);
      const status = composeStatus(gs, infra, decision, undefined, undefined, this.statusContext(gs));
      status.instance = pooled ? { provider: provider.kind, name: pooled.name, zone: pooled.zone, pooled: true } : { provider: provider.kind, name };
      if (pooled) status.message = `claiming warm-pool instance ${pooled.name}`;
      try {
        await this.writeStatus(gs, status, decision.phase);
      } catch (e) {
        if (pooled) this.d.pool?.release(pooled.name);
        throw e;
      }
      if (pooled) this.event(gs, 'Normal', 'PoolInstanceClaimed', `claimed warm-pool instance ${pooled.name} in ${pooled.zone}`);
      return undefined; // the status update re-queues us
    }

    switch (decision.action) {
      case 'create': {
        // Fail before the VM exists if the credentials Secret is missing or unusable.
        await repoCredentials(this.d.client, gs);
        this.event(gs, 'Normal', 'InfraProvisioningStarted', `creating instance ${name} (${mt.providerType})`);
        const boot = await this.d.enrolment.boot(infra, name);
        inst = await provider.create({
          name,
          zone: gs.spec.zone,
          machineType: mt,
          image: infra.spec.image,
          labels: { ...vmLabels(gs, infra), ...boot.labels },
          agent: boot.facts,
          // `inst` came from the shared list just now: the provider need not look again.
          observedAbsent: true,
        });
        this.d.observer.put(infraName, name, inst);
        this.event(gs, 'Normal', 'InfraProvisioningCompleted', `instance ${inst.name} created in ${inst.zone}`);
        break;
      }
      case 'start':
        if (inst) {
          this.mustBeOurs(gs, inst, 'starting');
          this.event(gs, 'Normal', 'InstanceStarting', `starting instance ${inst.name}`);
          await provider.start(inst);
        }
        break;
      case 'stop':
        if (inst) {
          this.mustBeOurs(gs, inst, 'stopping');
          this.event(gs, 'Normal', 'InstanceStopping', `stopping instance ${inst.name}`);
          await provider.stop(inst);
        }
        break;
      case 'autoStop': {
        // Intent first: once the status says so, every later reconcile wants it stopped and the
        // next one stops it (the spec is the user's and GitOps tools'; we never write it).
        const status = composeStatus(gs, infra, decision, inst, agent, this.statusContext(gs));
        status.autoStopped = { at: new Date(this.now()).toISOString(), generation: gs.metadata.generation ?? 0 };
        status.lastRequest = this.requests.operatorStop(gs, (agent.view?.reachable ? agent.view.lastActivityTime : undefined) ?? status.lastActivityTime, idleTimeout);
        await this.writeStatus(gs, status, decision.phase);
        return undefined;
      }
      case 'none':
        break;
    }

    // Look again after acting, so the one status write says where things are now.
    let final: Decision = decision;
    if (decision.action !== 'none') {
      // create already returned the instance; the others return nothing, so look.
      if (decision.action !== 'create') {
        inst = await provider.find(name, inst?.zone ?? gs.spec.zone);
        this.d.observer.put(infraName, name, inst);
      }
      agent = await this.agents.observe(inst, token);
      final = decide(input());
    }
    const status = composeStatus(gs, infra, final, inst, agent, this.statusContext(gs));
    await this.writeStatus(gs, status, final.phase);
    return final.requeueAfterMs !== undefined ? { requeueAfter: final.requeueAfterMs } : undefined;
  }

  private statusContext(gs: Gitspace): StatusContext {
    return { now: this.now(), vmHome: this.d.vmHome ?? '/home/gitspace', lastRequest: this.requests.current(gs) };
  }

  private async writeStatus(gs: Gitspace, status: GitspaceStatus, phase: Phase): Promise<void> {
    const before = gs.status?.phase;
    this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, status));
    if (before === phase) return;
    const url = status.urls?.ide ?? '';
    const transitions: Partial<Record<Phase, [string, string, 'Normal' | 'Warning']>> = {
      Running: ['IDEReady', `the IDE is ready: ${url}`, 'Normal'],
      Stopped: ['Stopped', 'the instance is stopped; its disk is kept', 'Normal'],
      Failed: ['Failed', status.message ?? 'failed', 'Warning'],
    };
    const t = transitions[phase];
    if (t) this.event(gs, t[2], t[0], t[1]);
    if (phase === 'Starting' && status.conditions?.some((c) => c.type === 'InstanceReady' && c.status === 'True')) {
      this.event(gs, 'Normal', 'AgentConnected', 'the agent on the instance answered');
    }
  }

  private async writeWaiting(gs: Gitspace, w: Wait): Promise<void> {
    const gen = gs.metadata.generation;
    const now = new Date(this.now());
    let conditions = (gs.status?.conditions ?? []) as Condition[];
    const message = w.message.slice(0, MAX_MESSAGE);
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: w.reason, message }, gen, now);
    const lastRequest = this.requests.current(gs);
    const status: GitspaceStatus = { ...(gs.status ?? {}), phase: w.phase, message, observedGeneration: gen, conditions, ...(lastRequest ? { lastRequest } : {}) };
    // Compared as stored: a message cut to the schema's limit is not news on every reconcile.
    const changed = gs.status?.message !== message;
    this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, status));
    if (changed) this.event(gs, 'Warning', w.reason, w.message);
  }

  private async providerFailure(key: string, gs: Gitspace, e: ProviderError): Promise<Result | undefined> {
    switch (e.code) {
      case 'InvalidConfig': {
        const infra = this.d.infras.get(gs.spec.infraRef.name);
        this.holds.set(key, { generation: gs.metadata.generation, infraGeneration: infra?.metadata.generation });
        await this.writeWaiting(gs, new Wait('InvalidConfig', e.message, 'Failed'));
        return undefined; // a spec or infra change brings us back
      }
      case 'Unauthenticated':
        await this.writeWaiting(gs, new Wait('CredentialsInvalid', e.message, gs.status?.phase ?? 'Pending'));
        return { requeueAfter: QUOTA_RETRY_MS };
      case 'QuotaExceeded':
        this.holds.set(key, { until: this.now() + QUOTA_RETRY_MS });
        await this.writeWaiting(gs, new Wait('QuotaExceeded', e.message, gs.status?.phase ?? 'Pending'));
        return { requeueAfter: QUOTA_RETRY_MS };
      case 'Throttled':
        throw new RetryAfter(e.retryAfterMs ?? 5_000, e.message);
      case 'NotFound':
        return { requeueAfter: 0 };
      case 'Transient':
        // Retried with backoff; meanwhile the user sees what the cloud said.
        await this.writeWaiting(gs, new Wait('ProviderError', e.message, gs.status?.phase ?? 'Pending'));
        throw e;
    }
  }

  // --- deletion --------------------------------------------------------------------------------

  private async reconcileDelete(gs: Gitspace): Promise<Result | undefined> {
    if (!hasFinalizer(gs, FINALIZERS.gitspace)) return undefined;
    const infra = this.d.infras.get(gs.spec.infraRef.name);
    if (!infra) {
      // Without its infra there is no provider to ask; the orphan sweep cleans such VMs up.
      this.event(gs, 'Warning', 'InstanceOrphaned', `GitspaceInfra "${gs.spec.infraRef.name}" is gone; instance ${gs.status?.instance?.name ?? instanceName(gs)} is left to the orphan sweep`);
      await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
      return undefined;
    }
    if (gs.status?.phase !== 'Deleting') {
      const lastRequest = this.requests.current(gs);
      this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, { ...(gs.status ?? {}), phase: 'Deleting', message: 'deleting the instance', ...(lastRequest ? { lastRequest } : {}) }));
      this.event(gs, 'Normal', 'Deleting', `deleting instance ${gs.status?.instance?.name ?? instanceName(gs)}`);
      return undefined;
    }
    let provider: VmProvider;
    try {
      provider = await this.d.providerFor(infra);
    } catch (e) {
      if (e instanceof ProviderError) return this.providerFailure(keyOf(gs), gs, e);
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
      if (unclaimedPoolVM) this.event(gs, 'Normal', 'PoolInstanceReturned', `instance ${name} was never claimed; it stays in the warm pool`);
      else this.event(gs, 'Warning', 'InstanceNotOurs', `instance ${name} is labelled for Gitspace UID "${inst.labels[LABELS.gitspaceUID] ?? ''}", not this one; it is left alone`);
      await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
      return undefined;
    }
    if (inst) {
      const asked = this.deleteAsked.get(key);
      if (asked !== undefined && this.now() - asked < DELETE_REISSUE_MS) return { requeueAfter: FAST_POLL_MS };
      const outcome = await provider.delete(inst);
      if (outcome === 'going') {
        // EC2: shutting-down for a while; the next lists show when it is gone.
        this.deleteAsked.set(key, this.now());
        this.d.observer.put(infraName, name, { ...inst, state: 'stopping' });
        return { requeueAfter: FAST_POLL_MS };
      }
      this.d.observer.put(infraName, name, undefined);
    }
    this.deleteAsked.delete(key);
    this.event(gs, 'Normal', 'InstanceDeleted', `instance ${name} deleted`);
    await removeFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace);
    return undefined;
  }

  // --- helpers ---------------------------------------------------------------------------------

  /** A VM action only on a VM whose cloud labels name this Gitspace (not on what status says alone). */
  private mustBeOurs(gs: Gitspace, inst: Instance, doing: string): void {
    if (!labelledFor(inst, gs)) throw new Wait('InstanceNotOurs', `instance ${inst.name} is labelled for Gitspace UID "${inst.labels[LABELS.gitspaceUID] ?? ''}", not ${gs.metadata.uid ?? ''}; not ${doing} it`, gs.status?.phase ?? 'Pending', 30_000);
  }

  private event(gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string): void {
    void this.d.events.emit({ ...gs, apiVersion: API_VERSION, kind: GITSPACE.kind }, type, reason, note);
  }
}
