// The runner's side of a VM's agent: what it says about itself (health), making an unclaimed VM
// this Gitspace's (pool relabel, enrolment with the VM's one-time token, after checking the
// cloud's labels and the agent's own word), and why a VM's agent never came up (its console).
import { BOOT_FAILURE_PREFIX, GITSPACE_ANNOTATIONS, LABELS, isActivitySource, isSshHostKey, type ActivitySource, type AgentHealth, type RepoCredentials, type Claim, type Gitspace } from '../../api/index.ts';
import type { Instance, VmProvider } from '../../providers/types.ts';
import { keyOf } from '../../runtime/informer.ts';
import type { Enrolment } from '../enrolment.ts';
import { claimAgent, rebuildAgent, type AgentClaim, type AgentProbe, type AgentRebuild } from './agent-probe.ts';
import { FAST_POLL_MS, type AgentView } from './decide.ts';
import type { InstanceObserver } from './observer.ts';
import { Wait } from './wait.ts';

/** What the agent said about itself (nothing when it could not be asked). */
export interface AgentObservation {
  view?: AgentView;
  /** The folder the IDE links open (workspaceOf). */
  workspace?: string;
  lastActivity?: string;
  /** What the last activity was (the agent says; checked against the known kinds). */
  lastActivitySource?: ActivitySource;
  forwardPorts?: number[];
  extensionsFailed?: { id: string; error: string }[];
  /** The agent waits for its claim, and says it is this instance. */
  unclaimed?: string;
  /** The agent could not be reached at all (no HTTP answer). */
  unreachable?: boolean;
  /** The `gitspaces.dev/rebuild` token the agent last acted on. */
  rebuilt?: string;
  /** The agent's SSH host key (checked: an SSH public key line). */
  sshHostKey?: string;
  /** ContainerReady, from what the agent says of the dev container (bounded), when devcontainer.json has one. */
  container?: { status: 'True' | 'False'; reason: string; message: string };
}

/** ContainerReady from the agent's devcontainer report; undefined when there is no devcontainer.json. */
export function containerCondition(d: AgentHealth['devcontainer'] | undefined): AgentObservation['container'] {
  if (!d || typeof d !== 'object') return undefined;
  if (d.containerBuild === 'up' && d.container) {
    const c = d.container;
    const image = c.image ? ` from ${bounded(c.image, 256)}` : '';
    return { status: 'True', reason: 'Up', message: `container ${bounded(c.id, 12)}${image}: ${bounded(c.remoteUser, 64)} in ${bounded(c.workspaceFolder, 256)}` };
  }
  if (d.containerBuild === 'no-runtime') {
    const skipped = Array.isArray(d.notApplied) ? d.notApplied.slice(0, 32).map((x) => bounded(x, 32)).join(', ') : '';
    return { status: 'False', reason: 'NoContainerRuntime', message: `devcontainer.json asks for a container and this VM has no container runtime: ${skipped} not applied; the VM image is used` };
  }
  return undefined;
}

/**
 * The folder the user's IDE opens: the dev container's workspace folder while one is up (the IDE
 * and SSH sessions are in it), else the checkout on the VM. Only an absolute path of at most 1024
 * characters: it goes into links in status.
 */
export function workspaceOf(h: { checkout?: string; devcontainer?: AgentHealth['devcontainer'] }): string | undefined {
  const d = h.devcontainer;
  const folder = d && typeof d === 'object' && d.containerBuild === 'up' ? d.container?.workspaceFolder : h.checkout;
  return typeof folder === 'string' && folder.startsWith('/') && folder.length <= 1024 ? folder : undefined;
}

export interface VmAgentDeps {
  probe: AgentProbe;
  /** Default: POST /v1/claim. */
  claim?: AgentClaim;
  /** Default: POST /v1/rebuild. */
  rebuild?: AgentRebuild;
  enrolment: Enrolment;
  observer: InstanceObserver;
  event: (gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string) => void;
  now: () => number;
}

/** A value the agent sent, as text of at most `max` characters (it may send anything). */
function bounded(v: unknown, max: number): string {
  return (typeof v === 'string' ? v : (JSON.stringify(v) ?? '')).slice(0, max);
}

/** How often the console of a VM whose agent does not answer is read for a boot failure. */
const CONSOLE_CHECK_MS = 10_000;

/** Whether the cloud's labels say this instance is this Gitspace's (what VM actions go by, not status). */
export function labelledFor(inst: Instance, gs: Gitspace): boolean {
  return inst.labels[LABELS.gitspaceUID] === gs.metadata.uid;
}

/** What the VM's agent is told in its claim (where it listens and its user are its own boot facts). */
export function claimFor(gs: Gitspace, hopToken: string, credentials: RepoCredentials | undefined): Claim {
  return {
    gitspace: { namespace: gs.metadata.namespace ?? '', name: gs.metadata.name ?? '', uid: gs.metadata.uid ?? '' },
    repository: { url: gs.spec.repository.url, ...(gs.spec.repository.ref ? { ref: gs.spec.repository.ref } : {}), ...(credentials ? { credentials } : {}) },
    devcontainerPath: gs.spec.devcontainer?.path ?? '.devcontainer/devcontainer.json',
    ide: { type: gs.spec.ide?.type ?? 'vscode-web', ...(gs.spec.ide?.product ? { product: gs.spec.ide.product } : {}) },
    sshPublicKeys: gs.spec.sshPublicKeys ?? [],
    env: (gs.spec.env ?? []).map((e) => ({ name: e.name, ...(e.value !== undefined ? { value: e.value } : {}) })),
    ports: (gs.spec.ports ?? []).map((p) => ({ port: p.port, ...(p.name ? { name: p.name } : {}) })),
    secret: hopToken,
  };
}

export class VmAgent {
  private readonly d: VmAgentDeps;
  /** When a Gitspace's VM console was last read and the boot failure it showed, by Gitspace key. */
  private readonly consoleRead = new Map<string, { at: number; failure?: { reason: string; message: string } }>();

  constructor(d: VmAgentDeps) {
    this.d = d;
  }

  forget(key: string): void {
    this.consoleRead.delete(key);
  }

  async observe(inst: Instance | undefined, hopToken: string): Promise<AgentObservation> {
    if (inst?.state !== 'running' || !inst.privateIP) return {};
    const r = await this.d.probe(inst.privateIP, inst.agentPort, hopToken);
    if (!r.ok) return { view: { reachable: false, error: r.error }, ...(r.status ? {} : { unreachable: true }) };
    const h = r.health;
    if (h.state === 'unclaimed') return { view: { reachable: false, error: 'the agent is waiting for its configuration' }, unclaimed: h.instance ?? '' };
    const current = h.steps.find((s) => s.status === 'failed') ?? h.steps.find((s) => s.status === 'running') ?? h.steps.find((s) => s.status === 'pending');
    // What the agent says goes into status: bounded, so a hostile VM cannot make the status write fail.
    const step = current ? { name: bounded(current.name, 64), ...(current.message ? { message: bounded(current.message, 1024) } : {}) } : undefined;
    return {
      view: { reachable: true, state: h.state, ...(step ? { step } : {}), lastActivityTime: h.lastActivityTime, ...(isActivitySource(h.lastActivitySource) ? { lastActivitySource: h.lastActivitySource } : {}) },
      ...(workspaceOf(h) ? { workspace: workspaceOf(h) } : {}),
      lastActivity: h.lastActivityTime,
      ...(isActivitySource(h.lastActivitySource) ? { lastActivitySource: h.lastActivitySource } : {}),
      forwardPorts: Array.isArray(h.forwardPorts) ? h.forwardPorts.slice(0, 256) : [],
      extensionsFailed: h.ide.extensionsFailed ?? [],
      container: containerCondition(h.devcontainer),
      ...(typeof h.devcontainer?.rebuilt === 'string' ? { rebuilt: h.devcontainer.rebuilt.slice(0, 128) } : {}),
      ...(isSshHostKey(h.sshHostKey) ? { sshHostKey: h.sshHostKey } : {}),
    };
  }

  /** Makes a pool VM this Gitspace's: `labels` (ours) instead of the pool's, its enrolment nonce kept. */
  async adoptPooled(gs: Gitspace, infraName: string, provider: VmProvider, inst: Instance, labels: Record<string, string>): Promise<Instance> {
    if (labelledFor(inst, gs)) return inst;
    const nonce = inst.labels[LABELS.enrolment];
    const next = { ...labels, ...(nonce ? { [LABELS.enrolment]: nonce } : {}) };
    await provider.relabel(inst, next);
    const relabelled = { ...inst, labels: next };
    this.d.observer.put(infraName, inst.name, relabelled);
    return relabelled;
  }

  /**
   * Sends the Gitspace's configuration to an unclaimed VM, with its one-time token — only when the
   * cloud's labels say the instance is this Gitspace's and the agent says it is that instance, so
   * credentials never go to a VM that is someone else's or an address that changed hands.
   */
  async enrol(gs: Gitspace, inst: Instance, reported: string, claim: () => Promise<Claim>): Promise<void> {
    const refuse = (why: string) => new Wait('EnrolmentRefused', `instance ${inst.name}: ${why}; its configuration was not sent`, 'Starting', 10_000);
    if (inst.state !== 'running' || !inst.privateIP) return;
    if (!labelledFor(inst, gs)) throw refuse(`its labels name Gitspace UID "${inst.labels[LABELS.gitspaceUID] ?? ''}", not ${gs.metadata.uid ?? ''}`);
    if (reported !== inst.name) throw refuse(`the agent at ${inst.privateIP} says it is instance "${reported.slice(0, 80)}"`);
    const token = await this.d.enrolment.token(inst);
    if (!token) throw refuse('it carries no enrolment label');
    const refused = await (this.d.claim ?? claimAgent)(inst.privateIP, inst.agentPort, token, await claim());
    if (refused) throw new Wait('EnrolmentFailed', `instance ${inst.name}: ${refused}`, 'Starting', FAST_POLL_MS);
    this.d.event(gs, 'Normal', 'AgentEnrolled', `the agent on ${inst.name} took this Gitspace's configuration`);
  }

  /**
   * A new `gitspaces.dev/rebuild` value the agent has not acted on: ask it (once it is not busy
   * setting up); what it reports then says the rebuild runs. Level-based: the agent keeps the
   * token it acted on, so a lost answer is asked again and a done one never.
   */
  async askForRebuild(gs: Gitspace, inst: Instance | undefined, agent: AgentObservation, hopToken: string): Promise<AgentObservation> {
    const want = gs.metadata.annotations?.[GITSPACE_ANNOTATIONS.rebuild]?.slice(0, 128);
    const v = agent.view;
    if (!want || !inst?.privateIP || inst.state !== 'running' || !v?.reachable || v.state === 'setting-up' || agent.rebuilt === want) return agent;
    const refused = await (this.d.rebuild ?? rebuildAgent)(inst.privateIP, inst.agentPort, hopToken, want);
    if (refused) {
      this.d.event(gs, 'Warning', 'ContainerRebuildRefused', refused);
      return agent;
    }
    this.d.event(gs, 'Normal', 'ContainerRebuildStarted', `rebuilding the dev container (${GITSPACE_ANNOTATIONS.rebuild}: ${want})`);
    return this.observe(inst, hopToken);
  }

  /**
   * The startup script's verdict when the agent does not answer: its last `gitspaces-boot:` line
   * on the VM's console. A failure (bundle unreachable, wrong hash, a tool missing from the image)
   * fails the Gitspace with the script's reason and message. Read at most every 10 s, unless
   * `fresh` (the VM went down: what it said last is news).
   */
  async bootFailure(gs: Gitspace, provider: VmProvider, inst: Instance, fresh = false): Promise<void> {
    if (!provider.consoleOutput) return;
    const key = keyOf(gs);
    let seen = this.consoleRead.get(key);
    if (fresh || !seen || this.d.now() - seen.at >= CONSOLE_CHECK_MS) {
      let text = '';
      try {
        text = await provider.consoleOutput(inst);
      } catch {
        // the console is a diagnosis, not a dependency
      }
      const verdict = text.split('\n').filter((l) => l.includes('gitspaces-boot: ')).pop() ?? '';
      const m = new RegExp(`${BOOT_FAILURE_PREFIX} reason=([A-Za-z]+): (.*)$`).exec(verdict.trim());
      seen = { at: this.d.now(), ...(m ? { failure: { reason: m[1] ?? 'BootFailed', message: (m[2] ?? '').slice(0, 512) } } : {}) };
      this.consoleRead.set(key, seen);
    }
    // Between reads the last verdict stands (a status write brings the next reconcile at once).
    if (seen.failure) throw new Wait(seen.failure.reason, `instance ${inst.name}: ${seen.failure.message}`, 'Failed', CONSOLE_CHECK_MS);
  }
}
