// The runner: reconciles a Gitspace into a VM through the provider interface.
//
// Each reconcile reads the world (the cached Gitspace and infra, the provider's view of the
// instance, the agent's health), decides one action (decide.ts), does it, looks again, and writes
// status once if it changed. The instance name is deterministic and is written to status *before*
// the create call, so a crash at any point is followed by a lookup that finds the instance instead
// of creating a second one.
import {
  API_VERSION, BOOT_FAILURE_PREFIX, FINALIZERS, GITSPACE, GITSPACE_ANNOTATIONS, LABELS, MANAGED_BY,
  type Claim, type Gitspace, type GitspaceInfra, type GitspaceStatus, type Phase,
} from '../../api/index.ts';
import { ProviderError, type Instance, type VmProvider } from '../../providers/types.ts';
import { setCondition, type Condition } from '../../runtime/conditions.ts';
import { RetryAfter, type Reconciler, type Result } from '../../runtime/controller.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { keyOf, type Informer } from '../../runtime/informer.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';
import { addFinalizer, controllerRef, hasFinalizer, isDeleting, patchStatusIfChanged, removeFinalizer } from '../../runtime/objects.ts';
import { GITSPACES, providerKind, SECRETS } from '../resources.ts';
import { createTokenSecret, secretValue, type Secret } from '../token-secret.ts';
import type { WarmPool } from '../pool/warm-pool.ts';
import type { Enrolment } from '../enrolment.ts';
import { claimAgent, type AgentClaim, type AgentProbe } from './agent-probe.ts';
import { decide, FAST_POLL_MS, type AgentView, type Decision } from './decide.ts';
import type { InstanceObserver } from './observer.ts';
import { checkoutPath, HOP_SECRET_KEY, hopSecretName, instanceName, parseDuration, publishedPorts, route, userURLs } from './naming.ts';

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
  secrets: Informer<Secret>;
  providerFor: ProviderFor;
  probe: AgentProbe;
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

/** What the agent said about itself (nothing when it could not be asked). */
interface AgentObservation {
  view?: AgentView;
  checkout?: string;
  lastActivity?: string;
  status?: number;
  forwardPorts?: number[];
  extensionsFailed?: { id: string; error: string }[];
  /** The agent waits for its claim, and says it is this instance. */
  unclaimed?: string;
  /** The agent could not be reached at all (no HTTP answer). */
  unreachable?: boolean;
}

/** A reason to wait that is shown as a condition rather than retried as an error. */
class Wait extends Error {
  readonly reason: string;
  readonly retryMs: number | undefined;
  readonly phase: Phase;
  constructor(reason: string, message: string, phase: Phase, retryMs?: number) {
    super(message);
    this.reason = reason;
    this.phase = phase;
    this.retryMs = retryMs;
  }
}

const DEFAULT_IDLE = '1h';
const QUOTA_RETRY_MS = 60_000;
const DELETE_REISSUE_MS = 30_000;
/** How often the console of a VM whose agent does not answer is read for a boot failure. */
const CONSOLE_CHECK_MS = 10_000;

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

/**
 * Whether an idle stop still stands: the spec has not changed since (a new generation is a new
 * wish) and nobody asked to wake it (the wake annotation names a later time).
 */
export function autoStopHolds(gs: Gitspace): boolean {
  const a = gs.status?.autoStopped;
  if (!a || a.generation !== (gs.metadata.generation ?? 0)) return false;
  const wake = Date.parse(gs.metadata.annotations?.[GITSPACE_ANNOTATIONS.wake] ?? '');
  return !(wake > Date.parse(a.at));
}

function toMinute(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t - (t % 60_000)).toISOString().replace('.000Z', 'Z');
}

export class RunnerReconciler implements Reconciler {
  private readonly d: RunnerDeps;
  private readonly now: () => number;
  private readonly holds = new Map<string, Hold>();
  /** When a delete that completes asynchronously (EC2) was last asked for, by Gitspace key. */
  private readonly deleteAsked = new Map<string, number>();
  /** When a Gitspace's VM console was last read and the boot failure it showed, by Gitspace key. */
  private readonly consoleRead = new Map<string, { at: number; failure?: { reason: string; message: string } }>();
  constructor(d: RunnerDeps) {
    this.d = d;
    this.now = d.now ?? Date.now;
  }

  async reconcile(key: string): Promise<Result | undefined> {
    const gs = this.d.gitspaces.get(key);
    if (!gs) {
      this.holds.delete(key);
      this.consoleRead.delete(key);
      return undefined;
    }
    if (isDeleting(gs)) return this.reconcileDelete(gs);
    if (!hasFinalizer(gs, FINALIZERS.gitspace)) {
      // The update this causes brings us back with the finalizer in place.
      this.d.gitspaces.writeThrough(await addFinalizer(this.d.client, GITSPACES, gs, FINALIZERS.gitspace));
      return undefined;
    }
    try {
      return await this.reconcileNormal(gs);
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

  private async reconcileNormal(gs: Gitspace): Promise<Result | undefined> {
    const infra = this.infraOf(gs);
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
    const token = await this.ensureHopSecret(gs);
    let inst = await this.d.observer.get(infraName, provider, name);
    let agent = await this.observeAgent(inst, token);
    if (inst && gs.status?.instance?.pooled) inst = await this.adoptPooled(gs, infra, provider, inst);
    if (inst && agent.unclaimed !== undefined) {
      await this.enrol(gs, inst, agent.unclaimed, token);
      // Only a claim changes what the agent answers.
      agent = await this.observeAgent(inst, token);
    }
    if (inst?.state === 'running' && agent.unreachable) await this.bootFailure(gs, provider, inst);
    const idleTimeoutMs = parseDuration(gs.spec.idleTimeout ?? infra.spec.idleTimeout ?? DEFAULT_IDLE) ?? 0;
    // An idle stop is remembered in status, not spec: the spec still says Running.
    const desired = autoStopHolds(gs) ? 'Stopped' : (gs.spec.state ?? 'Running');
    const input = () => ({ desired, instance: inst, agent: agent.view, idleTimeoutMs, now: this.now() });
    const decision = decide(input());

    if (decision.action === 'create' || decision.action === 'start') {
      const h = this.held(keyOf(gs), gs, infra);
      if (h !== 'go') return h;
    }

    if (decision.action === 'create' && gs.status?.instance?.name !== name) {
      // Intent first: record the VM we are about to use before touching the cloud — a ready one
      // from the warm pool if there is one, else the deterministic name we are about to create.
      const pooled = this.d.pool?.reserve(infraName, mt.name, gs.spec.zone);
      const status = this.composeStatus(gs, infra, decision, undefined, undefined);
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
        await this.repoCredentials(gs);
        this.event(gs, 'Normal', 'InfraProvisioningStarted', `creating instance ${name} (${mt.providerType})`);
        const boot = await this.d.enrolment.boot(infra, name);
        inst = await provider.create({
          name,
          zone: gs.spec.zone,
          machineType: mt,
          image: infra.spec.image,
          labels: { ...this.labels(gs, infra), ...boot.labels },
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
          this.event(gs, 'Normal', 'InstanceStarting', `starting instance ${inst.name}`);
          await provider.start(inst);
        }
        break;
      case 'stop':
        if (inst) {
          this.event(gs, 'Normal', 'InstanceStopping', `stopping instance ${inst.name}`);
          await provider.stop(inst);
        }
        break;
      case 'autoStop': {
        // Intent first: once the status says so, every later reconcile wants it stopped and the
        // next one stops it (the spec is the user's and GitOps tools'; we never write it).
        this.event(gs, 'Normal', 'AutoStopped', `no activity for the idle timeout (${gs.spec.idleTimeout ?? infra.spec.idleTimeout ?? DEFAULT_IDLE}); stopping`);
        const status = this.composeStatus(gs, infra, decision, inst, agent);
        status.autoStopped = { at: new Date(this.now()).toISOString(), generation: gs.metadata.generation ?? 0 };
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
      agent = await this.observeAgent(inst, token);
      final = decide(input());
    }
    const status = this.composeStatus(gs, infra, final, inst, agent);
    await this.writeStatus(gs, status, final.phase);
    return final.requeueAfterMs !== undefined ? { requeueAfter: final.requeueAfterMs } : undefined;
  }

  /** Makes a pool VM this Gitspace's: our labels instead of the pool's (its enrolment nonce kept). */
  private async adoptPooled(gs: Gitspace, infra: GitspaceInfra, provider: VmProvider, inst: Instance): Promise<Instance> {
    if (inst.labels[LABELS.gitspaceUID] === gs.metadata.uid) return inst;
    const labels = this.labels(gs, infra, inst);
    await provider.relabel(inst, labels);
    const relabelled = { ...inst, labels };
    this.d.observer.put(infra.metadata.name ?? '', inst.name, relabelled);
    return relabelled;
  }

  /**
   * Sends the Gitspace's configuration to an unclaimed VM, with its one-time token — only when the
   * cloud's labels say the instance is this Gitspace's and the agent says it is that instance, so
   * credentials never go to a VM that is someone else's or an address that changed hands.
   */
  private async enrol(gs: Gitspace, inst: Instance, reported: string, hopToken: string): Promise<void> {
    const refuse = (why: string) => new Wait('EnrolmentRefused', `instance ${inst.name}: ${why}; its configuration was not sent`, 'Starting', 10_000);
    if (inst.state !== 'running' || !inst.privateIP) return;
    if (inst.labels[LABELS.gitspaceUID] !== gs.metadata.uid) throw refuse(`its labels name Gitspace UID "${inst.labels[LABELS.gitspaceUID] ?? ''}", not ${gs.metadata.uid ?? ''}`);
    if (reported !== inst.name) throw refuse(`the agent at ${inst.privateIP} says it is instance "${reported.slice(0, 80)}"`);
    const token = await this.d.enrolment.token(inst);
    if (!token) throw refuse('it carries no enrolment label');
    const refused = await (this.d.claim ?? claimAgent)(inst.privateIP, inst.agentPort, token, this.claim(gs, hopToken, await this.repoCredentials(gs)));
    if (refused) throw new Wait('EnrolmentFailed', `instance ${inst.name}: ${refused}`, 'Starting', FAST_POLL_MS);
    this.event(gs, 'Normal', 'AgentEnrolled', `the agent on ${inst.name} took this Gitspace's configuration`);
  }

  /**
   * The startup script's verdict when the agent does not answer: its last `gitspaces-boot:` line
   * on the VM's console. A failure (bundle unreachable, wrong hash, a tool missing from the image)
   * fails the Gitspace with the script's reason and message. Read at most every 10 s.
   */
  private async bootFailure(gs: Gitspace, provider: VmProvider, inst: Instance): Promise<void> {
    if (!provider.consoleOutput) return;
    const key = keyOf(gs);
    let seen = this.consoleRead.get(key);
    if (!seen || this.now() - seen.at >= CONSOLE_CHECK_MS) {
      let text = '';
      try {
        text = await provider.consoleOutput(inst);
      } catch {
        // the console is a diagnosis, not a dependency
      }
      const verdict = text.split('\n').filter((l) => l.includes('gitspaces-boot: ')).pop() ?? '';
      const m = new RegExp(`${BOOT_FAILURE_PREFIX} reason=([A-Za-z]+): (.*)$`).exec(verdict.trim());
      seen = { at: this.now(), ...(m ? { failure: { reason: m[1] ?? 'BootFailed', message: (m[2] ?? '').slice(0, 512) } } : {}) };
      this.consoleRead.set(key, seen);
    }
    // Between reads the last verdict stands (a status write brings the next reconcile at once).
    if (seen.failure) throw new Wait(seen.failure.reason, `instance ${inst.name}: ${seen.failure.message}`, 'Failed', CONSOLE_CHECK_MS);
  }

  private async observeAgent(inst: Instance | undefined, token: string): Promise<AgentObservation> {
    if (inst?.state !== 'running' || !inst.privateIP) return {};
    const r = await this.d.probe(inst.privateIP, inst.agentPort, token);
    if (!r.ok) return { view: { reachable: false, error: r.error }, ...(r.status ? { status: r.status } : { unreachable: true }) };
    const h = r.health;
    if (h.state === 'unclaimed') return { view: { reachable: false, error: 'the agent is waiting for its configuration' }, unclaimed: h.instance ?? '' };
    const current = h.steps.find((s) => s.status === 'failed') ?? h.steps.find((s) => s.status === 'running') ?? h.steps.find((s) => s.status === 'pending');
    return {
      view: { reachable: true, state: h.state, ...(current ? { step: { name: current.name, ...(current.message ? { message: current.message } : {}) } } : {}), lastActivityTime: h.lastActivityTime },
      checkout: h.checkout,
      lastActivity: h.lastActivityTime,
      forwardPorts: h.forwardPorts,
      extensionsFailed: h.ide.extensionsFailed ?? [],
    };
  }

  private composeStatus(
    gs: Gitspace,
    infra: GitspaceInfra,
    d: Decision,
    inst: Instance | undefined,
    agent: AgentObservation | undefined,
  ): GitspaceStatus {
    const gen = gs.metadata.generation;
    const old = gs.status ?? {};
    let conditions: Condition[] = (old.conditions ?? []);
    for (const [type, c] of Object.entries(d.conditions)) conditions = setCondition(conditions, { type, ...c }, gen, new Date(this.now()));
    const status: GitspaceStatus = { phase: d.phase, observedGeneration: gen, conditions };
    if (d.message) status.message = d.message;
    if (inst) {
      status.instance = {
        provider: providerKind(infra),
        id: inst.id,
        name: inst.name,
        zone: inst.zone,
        ...(inst.privateIP ? { privateIP: inst.privateIP } : {}),
        machineType: inst.machineType,
        createdAt: inst.createdAt,
        ...(old.instance?.pooled ? { pooled: true } : {}),
      };
    } else if (old.instance?.name) {
      status.instance = { ...old.instance };
    }
    const upstream = inst?.privateIP ? `http://${inst.privateIP}:${inst.agentPort}` : undefined;
    // The agent knows the devcontainer's forwardPorts and the checkout path; while it cannot be
    // asked (stopped), keep what we had.
    const ports = publishedPorts(gs, infra, agent?.forwardPorts ?? old.route?.ports?.map((p) => p.port) ?? []);
    if (status.instance) status.route = route(gs, infra, d.phase === 'Running' ? upstream : undefined, ports);
    status.urls = agent?.checkout ? userURLs(gs, infra, agent.checkout, ports) : (old.urls ?? userURLs(gs, infra, checkoutPath(gs, this.d.vmHome ?? '/home/gitspace'), ports));
    // Extensions the browser IDE could not install are shown, not dropped.
    const failed = agent?.extensionsFailed;
    if (failed?.length) {
      status.conditions = setCondition(status.conditions, { type: 'ExtensionsInstalled', status: 'False', reason: 'InstallFailed', message: `not installed: ${failed.map((f) => `${f.id} (${f.error})`).join('; ')}`.slice(0, 1024) }, gen, new Date(this.now()));
    } else if (failed && old.conditions?.some((c) => c.type === 'ExtensionsInstalled')) {
      status.conditions = setCondition(status.conditions, { type: 'ExtensionsInstalled', status: 'True', reason: 'Installed', message: '' }, gen, new Date(this.now()));
    }
    // To the minute: an active user must not turn every reconcile into a status write (each write
    // is an event that brings the next reconcile). Idle timeouts are 5 minutes or more.
    const activity = agent?.lastActivity ? toMinute(agent.lastActivity) : old.lastActivityTime;
    if (activity) status.lastActivityTime = activity;
    if (old.autoStopped && autoStopHolds(gs)) status.autoStopped = old.autoStopped;
    return status;
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
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: w.reason, message: w.message }, gen, now);
    const status: GitspaceStatus = { ...(gs.status ?? {}), phase: w.phase, message: w.message, observedGeneration: gen, conditions };
    const changed = gs.status?.message !== w.message;
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
      this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, { ...(gs.status ?? {}), phase: 'Deleting', message: 'deleting the instance' }));
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

  /** Our labels for the Gitspace's VM (keeping an instance's enrolment nonce). */
  private labels(gs: Gitspace, infra: GitspaceInfra, inst?: Instance): Record<string, string> {
    const nonce = inst?.labels[LABELS.enrolment];
    return {
      ...(nonce ? { [LABELS.enrolment]: nonce } : {}),
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.infra]: infra.metadata.name ?? '',
      [LABELS.gitspaceUID]: gs.metadata.uid ?? '',
      [LABELS.gitspaceName]: gs.metadata.name ?? '',
      [LABELS.gitspaceNamespace]: gs.metadata.namespace ?? '',
    };
  }

  /** What the VM's agent is told in its claim (where it listens and its user are its own boot facts). */
  private claim(gs: Gitspace, token: string, credentials: { username: string; password: string } | undefined): Claim {
    return {
      gitspace: { namespace: gs.metadata.namespace ?? '', name: gs.metadata.name ?? '', uid: gs.metadata.uid ?? '' },
      repository: { url: gs.spec.repository.url, ...(gs.spec.repository.ref ? { ref: gs.spec.repository.ref } : {}), ...(credentials ? { credentials } : {}) },
      devcontainerPath: gs.spec.devcontainer?.path ?? '.devcontainer/devcontainer.json',
      ide: { type: gs.spec.ide?.type ?? 'vscode-web', ...(gs.spec.ide?.product ? { product: gs.spec.ide.product } : {}) },
      sshPublicKeys: gs.spec.sshPublicKeys ?? [],
      env: (gs.spec.env ?? []).map((e) => ({ name: e.name, ...(e.value !== undefined ? { value: e.value } : {}) })),
      ports: (gs.spec.ports ?? []).map((p) => ({ port: p.port, ...(p.name ? { name: p.name } : {}) })),
      secret: token,
    };
  }

  /** The per-Gitspace token Secret (owned by the Gitspace, so it goes when the Gitspace goes). */
  private async ensureHopSecret(gs: Gitspace): Promise<string> {
    const ns = gs.metadata.namespace ?? '';
    const name = hopSecretName(gs);
    const cached = this.d.secrets.get(`${ns}/${name}`);
    const ownedByUs = (s: Secret) => s.metadata.ownerReferences?.some((o) => o.uid === gs.metadata.uid) ?? false;
    const tokenOf = (s: Secret) => secretValue(s, HOP_SECRET_KEY);
    if (cached && ownedByUs(cached) && tokenOf(cached)) return tokenOf(cached);
    if (cached && !ownedByUs(cached)) {
      // Left by an earlier Gitspace of the same name and not yet garbage-collected.
      await this.d.client.delete(SECRETS, ns, name, { uid: cached.metadata.uid }).catch(() => undefined);
      throw new RetryAfter(500, 'replacing a stale token Secret');
    }
    const live = await createTokenSecret(this.d.client, {
      name,
      namespace: ns,
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.gitspaceName]: gs.metadata.name ?? '' },
      ownerReferences: [controllerRef({ ...gs, apiVersion: API_VERSION, kind: GITSPACE.kind })],
    }, HOP_SECRET_KEY);
    if (!ownedByUs(live)) throw new RetryAfter(500, 'token Secret belongs to another Gitspace');
    return tokenOf(live);
  }

  /** Credentials for a private repository, from the Secret the Gitspace names. */
  private async repoCredentials(gs: Gitspace): Promise<{ username: string; password: string } | undefined> {
    const ref = gs.spec.repository.credentialsSecretRef;
    if (!ref) return undefined;
    let s: Secret;
    try {
      s = await this.d.client.get<Secret>(SECRETS, gs.metadata.namespace, ref.name);
    } catch (e) {
      if (isNotFound(e)) throw new Wait('CredentialsSecretNotFound', `spec.repository.credentialsSecretRef: Secret "${ref.name}" not found in namespace ${gs.metadata.namespace ?? ''}`, 'Pending', 10_000);
      throw e;
    }
    const get = (k: string) => (s.data?.[k] ? Buffer.from(s.data[k], 'base64').toString('utf8') : undefined);
    const password = get('password') ?? get('token');
    if (!password) throw new Wait('CredentialsSecretInvalid', `spec.repository.credentialsSecretRef: Secret "${ref.name}" has no "password" or "token" key`, 'Pending', 10_000);
    return { username: get('username') ?? '', password };
  }

  private event(gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string): void {
    void this.d.events.emit({ ...gs, apiVersion: API_VERSION, kind: GITSPACE.kind }, type, reason, note);
  }
}
