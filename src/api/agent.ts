// The contract between the runner and the agent on a VM: the boot facts a VM starts with, the
// claim that makes it a Gitspace's, and what the agent answers.
// Plain data, so the agent stays small and runs anywhere.
import type { BundleArch } from './bundle.ts';

export interface AgentConfig {
  gitspace: { namespace: string; name: string; uid: string };
  repository: {
    url: string;
    ref?: string;
    /**
     * From the Gitspace's credentials Secret, never logged: a token for an http(s) URL (git's
     * credential helper gets it), or an SSH key and the known_hosts it is checked against.
     */
    credentials?: RepoCredentials;
  };
  devcontainerPath: string;
  ide: { type: string; product?: string };
  sshPublicKeys: string[];
  env: { name: string; value?: string }[];
  ports: { port: number; name?: string }[];
  /** Where the agent listens: HTTP (health, activity) and SSH. */
  listen: { address: string; httpPort: number; sshPort: number };
  /** The per-Gitspace secret every request from the gateway must carry. */
  secret: string;
  /** The VM user's home; the checkout goes to <home>/<repo name>. */
  home: string;
  /** The developer's user (the agent creates it when it runs as root) and whether it may sudo. */
  user?: { name: string; sudo: boolean };
  /** The instance the agent was booted as (from its boot facts). */
  instance?: string;
  /** Install Docker when a dev container needs it and the VM has none (the infra's spec.vm.installDocker, a boot fact). */
  installDocker?: boolean;
}

export type RepoCredentials = { username: string; password: string } | { sshPrivateKey: string; knownHosts: string };

/** Where the agent bundle comes from: the startup script downloads `<baseURL>/<version>/<file>`. */
export interface AgentBundleRef {
  version: string;
  baseURL: string;
  /** sha256 of each architecture's tarball (the script picks by `uname -m`). */
  sha256: Partial<Record<BundleArch, string>>;
}

/**
 * What a VM boots with, in its instance metadata / UserData: non-secret facts only. Anyone who
 * may read the instance may read these. The Gitspace's configuration (hop secret, git
 * credentials, SSH keys) arrives later over the agent port, in a claim that carries the one-time
 * enrolment token whose SHA-256 is here (the token itself never is).
 */
export interface BootFacts {
  /** The instance's own name; the agent reports it before it is claimed. */
  instance: string;
  /** Hex SHA-256 of the one-time enrolment token. */
  enrolmentSha256: string;
  listen: { address: string; httpPort: number; sshPort: number };
  /** The developer's user and home (the checkout goes to <home>/<repo name>). */
  user: { name: string; home: string; sudo: boolean };
  /** Where to fetch the agent from (absent: the image or the caller provides it). */
  bundle?: AgentBundleRef;
  /** The infra's spec.vm.installDocker. */
  installDocker?: boolean;
  /** A warm-pool VM: which pool it belongs to (informational), and the images it pulls while unclaimed. */
  pool?: { infra: string; machineType: string; images?: string[] };
}

/** What the operator POSTs to CLAIM_PATH: the Gitspace's configuration, less what the VM decides. */
export type Claim = Omit<AgentConfig, 'listen' | 'home' | 'user' | 'instance'>;

export const SECRET_HEADER = 'x-gitspaces-secret';
/** Set by the gateway on a forwarded port's requests: which VM port they are for. */
export const PORT_HEADER = 'x-gitspaces-port';
/** Claiming an unclaimed VM: POST with `authorization: Bearer <enrolment token>` and a Claim. */
export const CLAIM_PATH = '/v1/claim';
/** POST {token}: rebuild the dev container once for this token (behind the hop secret). */
export const REBUILD_PATH = '/v1/rebuild';
/** Console lines the startup script writes when it cannot start the agent (the operator reads them). */
export const BOOT_FAILURE_PREFIX = 'gitspaces-boot: failed';
/** The agent's upgrade that bridges to its SSH server (the gateway carries SSH over it). */
export const AGENT_SSH_PATH = '/v1/ssh';
/** The agent's activity endpoint: POST marks activity, GET reads the last. */
export const AGENT_ACTIVITY_PATH = '/activity';
/** The gateway's WebSocket for SSH to a Gitspace (`gitspaces ssh` dials it). */
export const GATEWAY_SSH_PATH = '/.gitspaces/ssh';
/** The gateway's answer to "which host key will this Gitspace's SSH show": one known_hosts line. */
export const GATEWAY_KNOWN_HOSTS_PATH = '/.gitspaces/ssh-known-hosts';
/** The code-server version VMs install for `vscode-web` when their image has none. */
export const CODE_SERVER_VERSION = '4.139.1';
export const AGENT_HTTP_PORT = 47100;
export const AGENT_SSH_PORT = 47122;

/** The checkout directory name: the last path segment of the URL without `.git`. */
export function repoDirName(url: string): string {
  const last = url.replace(/\/+$/, '').split(/[/:]/).pop() ?? 'repo';
  return last.replace(/\.git$/, '') || 'repo';
}

export type StepName =
  | 'user' | 'env' | 'tools' | 'git' | 'gitCredentials' | 'clone' | 'ideSetup'
  | 'initializeCommand' | 'container' | 'onCreateCommand' | 'updateContentCommand' | 'ideRun' | 'postCreateCommand' | 'postStartCommand';

export interface StepStatus {
  name: StepName;
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  message?: string;
  startedAt?: string;
  finishedAt?: string;
}

/** What GET /healthz answers (the operator's view of the VM). */
export interface AgentHealth {
  /** `unclaimed`: booted, waiting for its claim (then only `state` and `instance` mean anything). */
  state: 'unclaimed' | 'setting-up' | 'ready' | 'failed';
  /** The instance this agent was booted as (its boot facts). */
  instance?: string;
  restart: boolean;
  steps: StepStatus[];
  ide: { type: string; ready: boolean; extensionsFailed?: { id: string; error: string }[] };
  checkout: string;
  forwardPorts: number[];
  /**
   * containerBuild: `skipped` (no container in devcontainer.json), `no-runtime` (one is asked for,
   * the VM has no container runtime: notApplied lists what was not applied), `up` (running: container).
   */
  devcontainer: {
    found: boolean; notApplied: string[]; containerBuild: 'skipped' | 'no-runtime' | 'up';
    container?: { id: string; image?: string; remoteUser: string; workspaceFolder: string };
    /** The `gitspaces.dev/rebuild` token last acted on. */
    rebuilt?: string;
  };
  lastActivityTime: string;
  /** What the last activity was: an SSH session, the browser IDE, a forwarded port, or a start through the API. */
  lastActivitySource?: ActivitySource;
  /** The SSH server's host key, public half (`ecdsa-sha2-nistp256 AAAA…`), once it has one. */
  sshHostKey?: string;
}

/** Kinds of use that keep a Gitspace from its idle stop (status.lastActivity.source). */
export const ACTIVITY_SOURCES = ['ssh', 'ide', 'port', 'api'] as const;
export type ActivitySource = (typeof ACTIVITY_SOURCES)[number];

export function isActivitySource(s: unknown): s is ActivitySource {
  return typeof s === 'string' && (ACTIVITY_SOURCES as readonly string[]).includes(s);
}
