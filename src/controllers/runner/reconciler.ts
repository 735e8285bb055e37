// The runner: reconciles a Gitspace into a VM through the provider interface.
//
// Each reconcile reads the world (the cached Gitspace and infra, the provider's view of the
// instance, the agent's health), decides one action (decide.ts), does it, looks again, and writes
// status once if it changed. The instance name is deterministic and is written to status *before*
// the create call, so a crash at any point is followed by a lookup that finds the instance instead
// of creating a second one.
import {
  API_VERSION, FINALIZERS, GITSPACE, LABELS, MAX_NAME_AND_NAMESPACE,
  type Gitspace, type GitspaceInfra,
} from '../../api/index.ts';
import { ProviderError, type Instance, type VmProvider } from '../../providers/types.ts';
import { RetryAfter, type Reconciler, type Result } from '../../runtime/controller.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { keyOf, type Informer } from '../../runtime/informer.ts';
import type { KubeClient, KubeObject } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';
import { addFinalizer, hasFinalizer, isDeleting } from '../../runtime/objects.ts';
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
import type { CostMetrics } from '../cost-metrics.ts';
import { RequestLog } from './requests.ts';
import { StopLimits } from './limits.ts';
import { planResize } from './resize.ts';
import { Resizer } from './resizer.ts';
import { Quotas } from './quotas.ts';
import { StatusWriter } from './status-writer.ts';
import { Deleter } from './delete.ts';
import { Preemptions, preemptionInput, startVm } from './preemption.ts';
import { autoStopHolds, composeStatus, type StatusContext } from './status.ts';

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
  /** Pool hits and misses, time to Running, failed VMs stopped, preemptions. */
  cost?: Pick<CostMetrics, 'poolClaims' | 'timeToReady' | 'failedStopped' | 'preemptions'>;
  /** One list per infra per interval, shared by all its Gitspaces (and the warm pool). */
  observer: InstanceObserver;
}

const DEFAULT_IDLE = '1h';
const QUOTA_RETRY_MS = 60_000;
/** How often a Gitspace over an infra quota looks again for capacity. */
const QUOTA_WAIT_MS = 5_000;
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
  private readonly deleter: Deleter;
  private readonly agents: VmAgent;
  private readonly requests: RequestLog; // who asked for starts, stops and deletes
  private readonly limits: StopLimits; // run-time limit, failed VMs
  private readonly resizer: Resizer; // spec.machineType changes on an existing VM
  private readonly quotas: Quotas; // spec.quotas of infras
  private readonly preemptions: Preemptions; // spot VMs the cloud stopped
  private readonly statusWriter: StatusWriter;
  constructor(d: RunnerDeps) {
    this.d = d;
    this.now = d.now ?? Date.now;
    this.agents = new VmAgent({ ...d, now: this.now, event: (gs, type, reason, note) => { this.event(gs, type, reason, note); } });
    this.requests = new RequestLog({ client: d.client, now: this.now, event: (gs, reason, note) => { this.event(gs, 'Normal', reason, note); } });
    this.deleter = new Deleter({
      client: d.client, gitspaces: d.gitspaces, infras: d.infras, observer: d.observer, providerFor: d.providerFor, requests: this.requests, now: this.now,
      event: (gs, type, reason, note) => { this.event(gs, type, reason, note); }, providerFailure: (key, gs, e) => this.providerFailure(key, gs, e),
    });
    this.statusWriter = new StatusWriter({ client: d.client, gitspaces: d.gitspaces, now: this.now, requests: this.requests, event: (gs, type, reason, note) => { this.event(gs, type, reason, note); }, ...(d.cost ? { cost: d.cost } : {}) });
    this.quotas = new Quotas({ gitspaces: d.gitspaces, now: this.now });
    this.resizer = new Resizer({ now: this.now, event: (gs, type, reason, note) => { this.event(gs, type, reason, note); } });
    this.preemptions = new Preemptions({ now: this.now, requests: this.requests, ...(d.cost ? { counter: d.cost.preemptions } : {}) });
    this.limits = new StopLimits({ now: this.now, event: (gs, type, reason, note) => { this.event(gs, type, reason, note); }, ...(d.cost ? { failedStopped: d.cost.failedStopped } : {}) });
  }

  async reconcile(key: string): Promise<Result | undefined> {
    const gs = this.d.gitspaces.get(key);
    if (!gs) {
      this.holds.delete(key);
      this.agents.forget(key);
      this.deleter.forget(key);
      this.requests.forget(key);
      this.limits.forget(key);
      this.resizer.forget(key);
      this.quotas.release(key);
      return undefined;
    }
    // An idle stop is remembered in status, not spec: the spec still says Running.
    const desired = autoStopHolds(gs) ? 'Stopped' : (gs.spec.state ?? 'Running');
    if (hasFinalizer(gs, FINALIZERS.gitspace)) await this.requests.note(gs, desired);
    if (isDeleting(gs)) return this.deleter.reconcile(gs);
    if (!hasFinalizer(gs, FINALIZERS.gitspace)) {
      // The update this causes brings us back with the finalizer in place.
      this.d.gitspaces.writeThrough(await addFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace));
      return undefined;
    }
    try {
      return await this.reconcileNormal(gs, desired);
    } catch (e) {
      if (e instanceof Wait) {
        await this.statusWriter.waiting(gs, e);
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
    const preempted = this.preemptions.record(gs, mt.name, inst, desired, (d) => composeStatus(gs, infra, d, inst, agent, this.statusContext(gs)));
    if (preempted) {
      await this.statusWriter.write(gs, preempted.status, 'Stopped');
      preempted.written();
      return undefined;
    }
    const wentDown = inst?.state === 'stopped' && desired === 'Running' && (gs.status?.phase === 'Starting' || gs.status?.phase === 'Failed');
    if (inst && ((inst.state === 'running' && agent.unreachable) || wentDown)) await this.agents.bootFailure(gs, provider, inst, wentDown && gs.status?.phase === 'Starting');
    const input = () => ({ desired, instance: inst, agent: agent.view, idleTimeoutMs, ...this.limits.inputs(gs, infra), ...preemptionInput(gs), now: this.now() });
    const decision = decide(input());

    if (decision.action === 'create' || decision.action === 'start') {
      // A VM that runs already is left to its user and the idle stop; none is created or started.
      const refused = namespaceRefusal(infra, ns, this.d.namespaces.get(ns));
      if (refused) throw new Wait('NamespaceNotAllowed', refused, gs.status?.phase ?? 'Pending');
      const h = this.held(keyOf(gs), gs, infra);
      if (h !== 'go') return h;
      const over = this.quotas.admit(gs, infra);
      if (over) throw new Wait('QuotaExceeded', over, gs.status?.phase === 'Stopped' ? 'Stopped' : 'Pending', QUOTA_WAIT_MS);
    } else if (desired === 'Stopped' || decision.phase === 'Running') this.quotas.release(keyOf(gs));

    if (decision.action === 'create' && gs.status?.instance?.name !== name) {
      // Intent first: record the VM we are about to use before touching the cloud — a ready one
      // from the warm pool if there is one, else the deterministic name we are about to create.
      const pooled = this.d.pool?.reserve(infraName, mt.name, gs.spec.zone);
      if (infra.spec.pool?.some((e) => e.machineType === mt.name)) this.d.cost?.poolClaims.inc({ infra: infraName, machine_type: mt.name, result: pooled ? 'hit' : 'miss' });
      const status = composeStatus(gs, infra, decision, undefined, undefined, this.statusContext(gs));
      status.instance = pooled ? { provider: provider.kind, name: pooled.name, zone: pooled.zone, pooled: true } : { provider: provider.kind, name };
      if (pooled) status.message = `claiming warm-pool instance ${pooled.name}`;
      try {
        await this.statusWriter.write(gs, status, decision.phase);
      } catch (e) {
        if (pooled) this.d.pool?.release(pooled.name);
        throw e;
      }
      if (pooled) this.event(gs, 'Normal', 'PoolInstanceClaimed', `claimed warm-pool instance ${pooled.name} in ${pooled.zone}`);
      return undefined; // the status update re-queues us
    }

    // spec.machineType changed since the VM was made: a stopped VM is resized before it may start.
    const plan = () => planResize({ instance: inst, want: mt, offered: infra.spec.machineTypes, spotChangeable: provider.spotChangeable === true });
    if (inst?.state === 'stopped' && plan().resize) {
      this.mustBeOurs(gs, inst, 'resizing');
      const r = await this.resizer.apply(gs, infra, provider, inst, plan());
      if (r.resized) this.d.observer.put(infraName, name, (inst = await provider.find(name, inst.zone)));
      // One cloud action per pass: a start waits for the next; a refused resize keeps it stopped.
      const d = r.failure ? decide({ ...input(), desired: 'Stopped' }) : decision;
      await this.statusWriter.write(gs, this.resizer.annotate(gs, composeStatus(gs, infra, d, inst, agent, this.statusContext(gs)), plan(), inst, r), d.phase);
      return { requeueAfter: r.retryMs ?? FAST_POLL_MS };
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
          // After an archive the name is used again: a start request makes it a new create.
          ...(gs.status?.lastRequest?.action === 'start' ? { requestKey: gs.status.lastRequest.at } : {}),
        });
        this.d.observer.put(infraName, name, inst);
        this.event(gs, 'Normal', 'InfraProvisioningCompleted', `instance ${inst.name} created in ${inst.zone}`);
        break;
      }
      case 'start':
        if (inst) {
          this.mustBeOurs(gs, inst, 'starting');
          this.event(gs, 'Normal', 'InstanceStarting', `starting instance ${inst.name}`);
          await startVm(provider, inst);
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
        const status = this.resizer.annotate(gs, composeStatus(gs, infra, decision, inst, agent, this.statusContext(gs)), plan(), inst);
        const reason = decision.stopReason ?? 'Idle';
        status.autoStopped = { at: new Date(this.now()).toISOString(), generation: gs.metadata.generation ?? 0, reason };
        const why = reason === 'Idle' ? undefined : this.limits.why(gs, infra, reason);
        status.lastRequest = this.requests.operatorStop(gs, (agent.view?.reachable ? agent.view.lastActivityTime : undefined) ?? status.lastActivityTime, idleTimeout, why);
        await this.statusWriter.write(gs, status, decision.phase);
        this.limits.stopped(infra, reason);
        return undefined;
      }
      case 'archive':
        // Intent first: once status says Archived, every later pass deletes the VM (a status write
        // lost after the delete would have left a Gitspace that forgot it was archived).
        if (!gs.status?.archivedAt) {
          await this.statusWriter.write(gs, composeStatus(gs, infra, decision, inst, agent, this.statusContext(gs)), decision.phase);
          return undefined;
        }
        if (inst) {
          this.mustBeOurs(gs, inst, 'archiving');
          this.event(gs, 'Normal', 'Archived', `deleting instance ${inst.name} and its disk: stopped longer than deleteAfterStopped; the Gitspace stays, and starting it creates a new VM from the repository`);
          await provider.delete(inst);
          this.d.observer.put(infraName, inst.name, undefined);
          inst = undefined;
        }
        break;
      case 'none':
        break;
    }

    // Look again after acting, so the one status write says where things are now.
    let final: Decision = decision;
    // (An archive's decision stands: the VM is gone, and status says when.)
    if (decision.action !== 'none' && decision.action !== 'archive') {
      // create already returned the instance; the others return nothing, so look.
      if (decision.action !== 'create') {
        inst = await provider.find(name, inst?.zone ?? gs.spec.zone);
        this.d.observer.put(infraName, name, inst);
      }
      agent = await this.agents.observe(inst, token);
      final = decide(input());
    }
    this.limits.warn(gs, final);
    this.limits.warnArchive(gs, final);
    const status = this.resizer.annotate(gs, composeStatus(gs, infra, final, inst, agent, this.statusContext(gs)), plan(), inst);
    await this.statusWriter.write(gs, status, final.phase);
    return final.requeueAfterMs !== undefined ? { requeueAfter: final.requeueAfterMs } : undefined;
  }

  private statusContext(gs: Gitspace): StatusContext {
    return { now: this.now(), vmHome: this.d.vmHome ?? '/home/gitspace', lastRequest: this.requests.current(gs) };
  }

  private async providerFailure(key: string, gs: Gitspace, e: ProviderError): Promise<Result | undefined> {
    switch (e.code) {
      case 'InvalidConfig': {
        const infra = this.d.infras.get(gs.spec.infraRef.name);
        this.holds.set(key, { generation: gs.metadata.generation, infraGeneration: infra?.metadata.generation });
        await this.statusWriter.waiting(gs, new Wait('InvalidConfig', e.message, 'Failed'));
        return undefined; // a spec or infra change brings us back
      }
      case 'Unauthenticated':
        await this.statusWriter.waiting(gs, new Wait('CredentialsInvalid', e.message, gs.status?.phase ?? 'Pending'));
        return { requeueAfter: QUOTA_RETRY_MS };
      case 'QuotaExceeded':
        this.holds.set(key, { until: this.now() + QUOTA_RETRY_MS });
        await this.statusWriter.waiting(gs, new Wait('QuotaExceeded', e.message, gs.status?.phase ?? 'Pending'));
        return { requeueAfter: QUOTA_RETRY_MS };
      case 'Throttled':
        throw new RetryAfter(e.retryAfterMs ?? 5_000, e.message);
      case 'NotFound':
        return { requeueAfter: 0 };
      case 'Transient':
        // Retried with backoff; meanwhile the user sees what the cloud said.
        await this.statusWriter.waiting(gs, new Wait('ProviderError', e.message, gs.status?.phase ?? 'Pending'));
        throw e;
    }
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
