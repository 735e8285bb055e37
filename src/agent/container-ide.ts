// The browser IDE inside the dev container, as VS Code's Remote-Containers puts its server there:
// the agent's Node and code-server are bind-mounted read-only into the container when it is made,
// and code-server runs in it as the remoteUser on the workspace folder, so its terminals, tasks
// and extensions see the container's toolchain. It listens on a unix socket in a directory shared
// with the VM (the only way in: the agent, behind the per-Gitspace secret, forwards to it).
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { codeServerArgs, workbenchServed } from './code-server.ts';
import { execIn, shellJoin, type DevContainer } from './container.ts';
import { log } from './log.ts';
import { lastLine, run } from './run.ts';

/** Where the mounts appear in the container. */
const NODE_DIR = '/opt/gitspaces/node';
const CODE_SERVER_DIR = '/opt/gitspaces/code-server';
const IDE_DIR = '/run/gitspaces-ide';

export interface ContainerIdeMounts {
  /** devcontainer.json `mounts` entries to add when the container is made. */
  mounts: string[];
  /** The shared directory on the VM (the socket and the log appear there). */
  hostDir: string;
  /** code-server's entry script, in the container. */
  entry: string;
}

/**
 * The mounts code-server needs in the container: the agent's Node, the code-server install (both
 * read-only: the container's root is the tenant), and the socket directory.
 */
export function containerIdeMounts(codeServerBin: string, agentRoot: string): ContainerIdeMounts {
  const entryOnHost = realpathSync(codeServerBin);
  // An npm install: <root>/node_modules/code-server/…; its dependencies are its siblings.
  const at = entryOnHost.lastIndexOf('/node_modules/code-server/');
  const root = at >= 0 ? entryOnHost.slice(0, at) : dirname(entryOnHost);
  const hostDir = join(agentRoot, 'container-ide');
  mkdirSync(hostDir, { recursive: true });
  // The container's user (whatever its uid) creates the socket here; on the VM the agent's 0700
  // directory around it keeps everyone else out.
  chmodSync(hostDir, 0o1777);
  const bind = (source: string, target: string, readonly: boolean) => `source=${source},target=${target},type=bind${readonly ? ',readonly' : ''}`;
  return {
    mounts: [bind(dirname(realpathSync(process.execPath)), NODE_DIR, true), bind(root, CODE_SERVER_DIR, true), bind(hostDir, IDE_DIR, false)],
    hostDir,
    entry: join(CODE_SERVER_DIR, relative(root, entryOnHost)),
  };
}

export interface ContainerIdeOptions {
  container: DevContainer;
  ide: ContainerIdeMounts;
  /** spec.env and remoteEnv. */
  env: Record<string, string>;
  /** The VM's env for the docker CLI (DOCKER_HOST). */
  dockerEnv: NodeJS.ProcessEnv;
  wrap: (argv: string[]) => string[];
  settings: Record<string, unknown>;
  extensions: string[];
  installExtensions: boolean;
  onExtensionsFailed: (failed: { id: string; error: string }[]) => void;
  timeoutMs?: number;
}

export interface ContainerIde {
  socket: string;
  stop(): void;
}

export async function startContainerIde(o: ContainerIdeOptions): Promise<ContainerIde> {
  const c = o.container;
  const inContainer = (argv: string[], input?: string) => {
    const [cmd = 'docker', ...args] = o.wrap(execIn(c, argv, { env: o.env }));
    return run(cmd, args, { env: o.dockerEnv, timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) });
  };
  const node = join(NODE_DIR, 'node');
  const probe = await inContainer(['sh', '-c', `${node} --version && echo "$HOME"`]);
  if (probe.code !== 0) {
    throw new Error(`the browser IDE cannot run in this container (it needs glibc, as VS Code's server does): ${lastLine(probe.output) || `exit ${String(probe.code)}`}`);
  }
  const home = probe.output.trim().split('\n').pop() ?? '/root';
  const dataDir = `${home}/.local/share/code-server`;
  // devcontainer.json settings over what the user has (their own changes survive a restart).
  const settingsFile = `${dataDir}/user-data/User/settings.json`;
  const current = await inContainer(['cat', settingsFile]);
  let merged: Record<string, unknown> = {};
  try {
    merged = current.code === 0 ? (JSON.parse(current.output) as Record<string, unknown>) : {};
  } catch {
    // unreadable: ours replaces it
  }
  merged = { ...merged, ...o.settings };
  await inContainer(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1"', 'sh', settingsFile], JSON.stringify(merged, null, 2) + '\n');
  if (o.installExtensions && o.extensions.length) {
    const failed: { id: string; error: string }[] = [];
    for (const id of o.extensions) {
      const r = await inContainer([node, o.ide.entry, '--extensions-dir', `${dataDir}/extensions`, '--user-data-dir', `${dataDir}/user-data`, '--install-extension', id]);
      if (r.code !== 0 || /failed|not found|error/i.test(r.output)) failed.push({ id, error: lastLine(r.output) || `exit ${String(r.code)}` });
    }
    o.onExtensionsFailed(failed);
  }
  const socket = join(o.ide.hostDir, 'ide.sock');
  const logFile = join(o.ide.hostDir, 'code-server.log');
  rmSync(socket, { force: true });
  const serve = [node, o.ide.entry, ...codeServerArgs(`${IDE_DIR}/ide.sock`, dataDir, c.workspaceFolder)];
  const script = `echo $$ > ${IDE_DIR}/code-server.pid; exec ${shellJoin(serve)} > ${IDE_DIR}/code-server.log 2>&1`;
  // execIn's argv less its `docker exec -i`: detached instead.
  const [cmd = 'docker', ...args] = o.wrap(['docker', 'exec', '-d', ...execIn(c, ['sh', '-c', script], { env: o.env }).slice(3)]);
  const started = await run(cmd, args, { env: o.dockerEnv, timeoutMs: 30_000 });
  if (started.code !== 0) throw new Error(`code-server could not be started in the container: ${lastLine(started.output)}`);
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  while (!(await workbenchServed(socket, c.workspaceFolder))) {
    if (Date.now() > deadline) {
      const said = existsSync(logFile) ? lastLine(readFileSync(logFile, 'utf8')) : '';
      throw new Error(`code-server in the container did not serve the workbench within ${String((o.timeoutMs ?? 90_000) / 1000)} s${said ? `: ${said}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  log('code-server ready in the dev container', { container: c.id.slice(0, 12), folder: c.workspaceFolder });
  return {
    socket,
    stop: () => {
      void inContainer(['sh', '-c', `kill "$(cat ${IDE_DIR}/code-server.pid)"`]);
    },
  };
}
