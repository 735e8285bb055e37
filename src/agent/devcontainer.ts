// devcontainer.json, read the way the devcontainer CLI reads it (JSON with comments and trailing
// commas), and split into what the agent can apply without a container runtime and what it cannot.

/** The lifecycle commands, in the order the spec runs them. */
export const LIFECYCLE = ['initializeCommand', 'onCreateCommand', 'updateContentCommand', 'postCreateCommand', 'postStartCommand', 'postAttachCommand'] as const;
export type LifecycleName = (typeof LIFECYCLE)[number];

/** One command of a lifecycle hook: its argv, and how the devcontainer.json wrote it (for messages). */
export interface LifecycleCommand {
  argv: string[];
  text: string;
}

export interface DevcontainerPlan {
  /** containerEnv and remoteEnv, applied to every command and shell. */
  env: Record<string, string>;
  /** Each hook's commands (an object form's entries run in parallel). */
  lifecycle: Record<LifecycleName, LifecycleCommand[]>;
  forwardPorts: number[];
  /** Forwarded ports that belong to another compose service ("db:5432"), by port. */
  portServices: Record<number, string>;
  remoteUser?: string;
  /** customizations.vscode: extensions to install and settings for the browser IDE. */
  vscode: { extensions: string[]; settings: Record<string, unknown> };
  /** Fields present that only a container runtime can apply (reported when there is none). */
  notApplied: string[];
  /** What the container is made from (image, build, dockerFile, dockerComposeFile), if it is a container one. */
  container?: string;
}

/** Strips // and /* comments and trailing commas outside strings. */
export function stripJsonc(text: string): string {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === ',') {
      let j = i + 1;
      while (j < n && /\s/.test(text[j] ?? '')) j++;
      if (text[j] !== '}' && text[j] !== ']') out += c;
      i++;
    } else {
      out += c ?? '';
      i++;
    }
  }
  return out;
}

/** A lifecycle command: a string (run by a shell), an array (argv), or an object of those (parallel). */
function commands(v: unknown): LifecycleCommand[] {
  if (typeof v === 'string') return v.trim() ? [{ argv: ['bash', '-lc', v], text: v }] : [];
  if (Array.isArray(v)) return v.length && v.every((x) => typeof x === 'string') ? [{ argv: v, text: v.join(' ') }] : [];
  if (v && typeof v === 'object') return Object.values(v).flatMap(commands);
  return [];
}

/** The properties that make a devcontainer.json a container one. */
const CONTAINER_SOURCES = ['image', 'build', 'dockerFile', 'dockerComposeFile'] as const;
/** What only a container runtime can apply (the VM's own user and image are used without one). */
const NEEDS_A_CONTAINER = [...CONTAINER_SOURCES, 'features', 'runArgs', 'mounts', 'appPort', 'privileged', 'capAdd', 'securityOpt', 'remoteUser', 'containerUser', 'updateRemoteUserUID', 'workspaceFolder', 'workspaceMount'];

function emptyLifecycle(): DevcontainerPlan['lifecycle'] {
  return Object.fromEntries(LIFECYCLE.map((k) => [k, []])) as unknown as DevcontainerPlan['lifecycle'];
}

export function planDevcontainer(text: string | undefined): DevcontainerPlan {
  const plan: DevcontainerPlan = { env: {}, lifecycle: emptyLifecycle(), forwardPorts: [], portServices: {}, vscode: { extensions: [], settings: {} }, notApplied: [] };
  if (text === undefined) return plan;
  const dc = JSON.parse(stripJsonc(text)) as Record<string, unknown>;
  for (const key of ['containerEnv', 'remoteEnv']) {
    const env = dc[key];
    if (env && typeof env === 'object') for (const [k, v] of Object.entries(env)) if (typeof v === 'string') plan.env[k] = v;
  }
  for (const hook of LIFECYCLE) plan.lifecycle[hook] = commands(dc[hook]);
  // forwardPorts: a port of the dev container, or "service:port" of another compose service;
  // appPort (the older form, published on the host) is forwarded too ("a:b": the container's b).
  const appPort = Array.isArray(dc.appPort) ? (dc.appPort as unknown[]) : dc.appPort === undefined ? [] : [dc.appPort];
  const forward = Array.isArray(dc.forwardPorts) ? (dc.forwardPorts as unknown[]) : [];
  for (const p of [...forward, ...appPort]) {
    const parts = typeof p === 'string' ? p.split(':') : [];
    const port = typeof p === 'number' ? p : parts.length ? Number(parts.pop()) : NaN;
    if (!Number.isInteger(port) || port <= 0 || port >= 65536 || plan.forwardPorts.includes(port)) continue;
    const service = forward.includes(p) ? parts[0] : undefined;
    if (service !== undefined && !['localhost', '127.0.0.1'].includes(service)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(service)) continue;
      plan.portServices[port] = service;
    }
    plan.forwardPorts.push(port);
  }
  if (typeof dc.remoteUser === 'string') plan.remoteUser = dc.remoteUser;
  for (const k of NEEDS_A_CONTAINER) if (k in dc) plan.notApplied.push(k);
  const source = CONTAINER_SOURCES.find((k) => k in dc);
  if (source) plan.container = source;
  const vscode = (dc.customizations as { vscode?: { extensions?: unknown; settings?: unknown } } | undefined)?.vscode;
  if (Array.isArray(vscode?.extensions)) plan.vscode.extensions = vscode.extensions.filter((e): e is string => typeof e === 'string');
  if (vscode?.settings && typeof vscode.settings === 'object') plan.vscode.settings = vscode.settings as Record<string, unknown>;
  return plan;
}
