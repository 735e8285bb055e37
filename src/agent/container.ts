// The dev container: when devcontainer.json names an image, a Dockerfile or a compose file and the
// VM has a container runtime, the reference CLI (@devcontainers/cli, carried in the agent bundle)
// builds and starts it with the checkout as its workspace, labelled with the instance so a restart
// finds the same container (and `up` only starts it) and the local provider can stop it with its
// "VM". Lifecycle commands and SSH sessions then run inside it as its remoteUser in its workspace
// folder, through `docker exec`.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { LABELS } from '../api/constants.ts';
import { stripJsonc } from './devcontainer.ts';
import { log } from './log.ts';
import { run } from './run.ts';

export interface DevContainer {
  id: string;
  remoteUser: string;
  workspaceFolder: string;
  /** Where its ports are reached from the VM (its address on its first network). */
  address?: string;
  /** The image it runs (as built or named). */
  image?: string;
}

/** The container's image and its address on its first network (forwarded ports go there). */
export async function containerDetails(id: string, env: NodeJS.ProcessEnv): Promise<{ image?: string; address?: string }> {
  const r = await run('docker', ['inspect', '-f', '{{.Config.Image}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', id], { env, timeoutMs: 10_000 });
  if (r.code !== 0) return {};
  const [image, address] = r.output.trim().split(/\s+/);
  return { ...(image ? { image } : {}), ...(address ? { address } : {}) };
}

/** The daemon's unix socket named by DOCKER_HOST (or Docker's default); undefined for tcp/ssh hosts. */
export function dockerSocket(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  return host.startsWith('unix://') ? host.slice('unix://'.length) : undefined;
}

/**
 * The addresses of compose services beside the dev container `id` (in its compose project), by
 * service name; a service that is not running is left out.
 */
export async function composeServiceAddresses(id: string, services: string[], env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (services.length === 0) return found;
  const r = await run('docker', ['inspect', '-f', '{{index .Config.Labels "com.docker.compose.project"}}', id], { env, timeoutMs: 10_000 });
  const project = r.code === 0 ? r.output.trim() : '';
  if (!project || project === '<no value>') return found;
  for (const service of new Set(services)) {
    const ps = await run('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`], { env, timeoutMs: 10_000 });
    const sid = ps.code === 0 ? ps.output.trim().split('\n')[0] : undefined;
    const address = sid ? (await containerDetails(sid, env)).address : undefined;
    if (address) found.set(service, address);
  }
  return found;
}

/**
 * The container runtime's version, or undefined when there is none. A daemon whose socket is there
 * but that does not answer yet (docker.service still starting while the VM boots) is waited for up
 * to `waitMs`; no `docker` command or no socket answers at once.
 */
export async function containerRuntime(env: NodeJS.ProcessEnv, waitMs = 60_000): Promise<string | undefined> {
  const socket = dockerSocket(env);
  if (socket !== undefined && !existsSync(socket)) return undefined;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await run('docker', ['version', '--format', '{{.Server.Version}}'], { env, timeoutMs: 10_000 });
    if (r.code === 0 && r.output.trim()) return r.output.trim().split('\n').pop();
    if (r.code === 127 || Date.now() >= deadline) return undefined;
    log('container runtime not answering yet', { error: r.output.trim().split('\n').pop()?.slice(0, 300) });
    await new Promise((res) => setTimeout(res, 1_000));
  }
}

function cliPath(): string {
  return createRequire(import.meta.url).resolve('@devcontainers/cli/devcontainer.js');
}

/**
 * `devcontainer up` for the checkout. Lifecycle commands are skipped (the agent runs each as its
 * own step); the CLI's log goes to the agent's log line by line; its last stdout line is the
 * result ({outcome, containerId, remoteUser, remoteWorkspaceFolder} or {outcome: 'error', message}).
 */
export function devcontainerUp(o: { checkout: string; config: string; overrideConfig?: string; instance: string; env: NodeJS.ProcessEnv; wrap: (argv: string[]) => string[]; removeExisting?: boolean; timeoutMs?: number }): Promise<DevContainer> {
  const [cmd = process.execPath, ...args] = o.wrap([process.execPath, cliPath(), 'up', '--workspace-folder', o.checkout, '--config', o.config, '--id-label', `${LABELS.devcontainerInstance}=${o.instance}`, '--skip-post-create', '--log-format', 'text', ...(o.removeExisting ? ['--remove-existing-container'] : []), ...(o.overrideConfig ? ['--override-config', o.overrideConfig] : [])]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.checkout, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail: string[] = [];
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout = (stdout + d.toString('utf8')).slice(-65_536);
    });
    child.stderr.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) log('devcontainer', { line: line.slice(0, 2_000) });
      // Stack frames of the CLI say nothing to the user.
      tail = [...tail, ...lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('at ')).map((l) => l.slice(0, 300))].slice(-4);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60 * 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`devcontainer up could not start: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let result: { outcome?: string; containerId?: string; remoteUser?: string; remoteWorkspaceFolder?: string; message?: string; description?: string } = {};
      try {
        result = JSON.parse(last) as typeof result;
      } catch {
        // no result line: the log tail says why
      }
      if (result.outcome === 'success' && result.containerId) {
        resolve({ id: result.containerId, remoteUser: result.remoteUser ?? 'root', workspaceFolder: result.remoteWorkspaceFolder ?? '/' });
        return;
      }
      // The CLI's own message is generic ("An error occurred building the image"): its last log
      // lines (the build's) say what went wrong.
      const why = [[result.message, result.description].filter(Boolean).join(': '), tail.join(' | ')].filter(Boolean).join(' — ') || `exited ${String(code)}`;
      reject(new Error(`devcontainer up failed: ${why.slice(0, 1_500)}`));
    });
  });
}

/**
 * devcontainer.json with mounts of ours added, written next to it (so its relative paths mean the
 * same) and kept out of git's view: what `--override-config` gets.
 */
export function overrideConfig(configPath: string, checkout: string, extraMounts: string[]): string {
  const dc = JSON.parse(stripJsonc(readFileSync(configPath, 'utf8'))) as { mounts?: unknown };
  const mounts: unknown[] = Array.isArray(dc.mounts) ? (dc.mounts as unknown[]) : [];
  const file = join(dirname(configPath), '.gitspaces-devcontainer.json');
  writeFileSync(file, JSON.stringify({ ...dc, mounts: [...mounts, ...extraMounts] }, null, 2) + '\n');
  const exclude = join(checkout, '.git', 'info', 'exclude');
  const line = `/${relative(checkout, file)}`;
  if (existsSync(dirname(exclude)) && !(existsSync(exclude) && readFileSync(exclude, 'utf8').split('\n').includes(line))) appendFileSync(exclude, `${line}\n`);
  return file;
}

/** The container user's uid and gid (`id` as its remoteUser), when it answers. */
export async function containerUserIds(c: DevContainer, env: NodeJS.ProcessEnv, wrap: (argv: string[]) => string[]): Promise<{ uid: number; gid: number } | undefined> {
  const [cmd = 'docker', ...args] = wrap(execIn(c, ['sh', '-c', 'id -u; id -g']));
  const r = await run(cmd, args, { env, timeoutMs: 10_000 });
  const [uid, gid] = r.output.trim().split('\n').map(Number);
  return r.code === 0 && Number.isInteger(uid) && Number.isInteger(gid) ? { uid: uid ?? 0, gid: gid ?? 0 } : undefined;
}

/** `docker exec` argv running `argv` in the container as its remoteUser in its workspace folder. */
export function execIn(c: DevContainer, argv: string[], o: { tty?: boolean; env?: Record<string, string> } = {}): string[] {
  const env = Object.entries(o.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  return ['docker', 'exec', '-i', ...(o.tty ? ['-t'] : []), '-u', c.remoteUser, '-w', c.workspaceFolder, ...env, c.id, ...argv];
}

/** Quotes argv for `sh -c` (script(1) runs its command through the shell). */
export function shellJoin(argv: string[]): string {
  return argv.map((a) => (/^[-\w./=:@]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
