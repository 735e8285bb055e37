// The contract between the runner and the agent on a VM: the startup payload the runner writes and
// `agent` reads.
// Plain data, so the agent stays small and runs anywhere.

export interface AgentConfig {
  gitspace: { namespace: string; name: string; uid: string };
  repository: {
    url: string;
    ref?: string;
    /** From the Gitspace's credentials Secret; handed to git's credential helper, never logged. */
    credentials?: { username: string; password: string };
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
}

/**
 * The boot payload of a warm-pool VM: no Gitspace yet, only how to listen and the pool secret.
 * The runner claims the VM by POSTing an AgentConfig to CLAIM_PATH with the pool secret; the
 * agent stores it next to its boot payload (so a reboot resumes as that Gitspace) and goes on as
 * a normal agent.
 */
export interface PoolBootConfig {
  pool: { infra: string; machineType: string; secret: string };
  listen: { address: string; httpPort: number; sshPort: number };
  home: string;
}

/** What a VM boots with: a Gitspace's agent config, or a pool VM waiting to be claimed. */
export type AgentBoot = AgentConfig | PoolBootConfig;

export function isPoolBoot(b: AgentBoot): b is PoolBootConfig {
  return 'pool' in b;
}

export const SECRET_HEADER = 'x-gitspaces-secret';
/** Set by the gateway on a forwarded port's requests: which VM port they are for. */
export const PORT_HEADER = 'x-gitspaces-port';
export const CLAIM_PATH = '/v1/claim';
/** The agent's upgrade that bridges to its SSH server (the gateway carries SSH over it). */
export const AGENT_SSH_PATH = '/v1/ssh';
/** The agent's activity endpoint: POST marks activity, GET reads the last. */
export const AGENT_ACTIVITY_PATH = '/activity';
/** The gateway's WebSocket for SSH to a Gitspace (`gitspaces ssh` dials it). */
export const GATEWAY_SSH_PATH = '/.gitspaces/ssh';
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
  | 'user' | 'env' | 'tools' | 'git' | 'gitCredentials' | 'clone' | 'ideSetup' | 'ideRun' | 'postCreateCommand' | 'postStartCommand';

export interface StepStatus {
  name: StepName;
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  message?: string;
  startedAt?: string;
  finishedAt?: string;
}

/** What GET /healthz answers (the operator's view of the VM). */
export interface AgentHealth {
  /** `pooled`: a warm-pool VM waiting to be claimed (then only `state` is meaningful). */
  state: 'pooled' | 'setting-up' | 'ready' | 'failed';
  restart: boolean;
  steps: StepStatus[];
  ide: { type: string; ready: boolean; extensionsFailed?: { id: string; error: string }[] };
  checkout: string;
  forwardPorts: number[];
  devcontainer: { found: boolean; notApplied: string[]; containerBuild: 'skipped' };
  lastActivityTime: string;
}
