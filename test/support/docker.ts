// A Docker daemon of the test run's own (Debian's docker.io, installed by scripts/test-tools.sh),
// started once per test process (or shared with another live test process) and stopped when its
// last user stops it or exits; one left by a killed run is stopped and replaced. Its data root lives in the cache
// ($GITSPACES_CACHE/docker/data), so imported images survive from one run to the next; its socket
// and exec root are short paths under /tmp (unix socket paths are limited to 108 bytes).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Killed (SIGKILL) after this long; default 120 s. */
  timeoutMs?: number;
  /** How stdout is decoded (default utf8; latin1 keeps bytes for binary output). */
  encoding?: BufferEncoding;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Docker {
  /** The DOCKER_HOST value (unix://…) for the docker CLI and scripts. */
  readonly host: string;
  /** `docker ARGS…`; resolves to stdout, throws (with stderr) on a non-zero exit or the timeout. */
  run(args: string[], opts?: RunOptions): Promise<string>;
  /** `docker ARGS…` without throwing on a non-zero exit (still throws on the timeout). */
  exec(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Creates the bridge network unless it exists with these addresses (one with others is replaced). */
  network(name: string, subnet: string, gateway: string): Promise<void>;
  hasImage(tag: string): Promise<boolean>;
  /** `docker load` of a `docker save` archive, then tagged `tag`. */
  loadImage(tarPath: string, tag: string): Promise<void>;
  /** Leaves the daemon; the last process to leave stops it (SIGTERM, waits; containers are stopped). */
  stop(): Promise<void>;
}

export const CACHE = process.env.GITSPACES_CACHE ?? join(homedir(), '.cache', 'gitspaces');
const DOCKER_BIN = 'docker';
const BRIDGE_IP = '172.27.0.1/16';
const DEFAULT_TIMEOUT_MS = 120_000;

/** Whether the Docker binaries (docker CLI, dockerd) are installed. */
export function dockerInstalled(): boolean {
  const which = (b: string) => spawnSync('bash', ['-c', `command -v ${b} || test -x /usr/sbin/${b}`], { stdio: 'ignore' }).status === 0;
  return which('docker') && which('dockerd');
}

/** Whether the process runs (a zombie, exited but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function isDockerd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd';
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceS`, then SIGKILL; synchronous so it also works in an exit handler. */
function killAndWait(pid: number, graceS: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  spawnSync('bash', ['-c', `for _ in $(seq ${graceS * 10}); do grep -qv '^[^)]*) Z' /proc/${pid}/stat 2>/dev/null || exit 0; sleep 0.1; done; kill -9 ${pid}`], { stdio: 'ignore' });
}

function runDocker(host: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER_BIN, args, { env: { ...process.env, DOCKER_HOST: host }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      if (signal === 'SIGKILL') reject(new Error(`docker ${args.join(' ')}: timed out after ${timeoutMs} ms\n${stderr}`));
      else resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(opts.encoding ?? 'utf8'), stderr });
    });
    child.stdin.on('error', () => undefined); // a command that does not read its stdin
    child.stdin.end(opts.input);
  });
}

/**
 * The daemon as one test process sees it. Every process that uses it registers under
 * $CACHE/docker/users/<pid>; whichever leaves last (stop() or process exit) stops dockerd, so two
 * test processes can share one daemon, and a daemon whose users all died is known for an orphan.
 */
class DockerDaemon implements Docker {
  readonly host: string;
  private readonly pidFile: string;
  private readonly usersDir: string;
  private left = false;

  constructor(host: string, pidFile: string, usersDir: string) {
    this.host = host;
    this.pidFile = pidFile;
    this.usersDir = usersDir;
    mkdirSync(usersDir, { recursive: true });
    writeFileSync(join(usersDir, String(process.pid)), '');
    process.once('exit', () => this.leave(true));
  }

  exec(args: string[], opts?: RunOptions): Promise<RunResult> {
    return runDocker(this.host, args, opts);
  }

  async run(args: string[], opts?: RunOptions): Promise<string> {
    const r = await runDocker(this.host, args, opts);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited with ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async network(name: string, subnet: string, gateway: string): Promise<void> {
    const found = await this.exec(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{end}}', name]);
    if (found.code === 0) {
      if (found.stdout.trim() === `${subnet} ${gateway}`) return;
      // Made by an earlier version of a test with other addresses (networks persist in the data root).
      const rm = await this.exec(['network', 'rm', name]);
      if (rm.code !== 0) throw new Error(`docker network ${name} exists with ${found.stdout.trim()}, not ${subnet} ${gateway}, and is in use: ${rm.stderr.trim()}`);
    }
    const made = await this.exec(['network', 'create', '--driver', 'bridge', '--label', 'gitspaces.test=1', '--subnet', subnet, '--gateway', gateway, name]);
    if (made.code !== 0 && !/already exists/.test(made.stderr)) throw new Error(`docker network create ${name} (${subnet}): ${made.stderr.trim()}`);
  }

  async hasImage(tag: string): Promise<boolean> {
    return (await this.exec(['image', 'inspect', '--format', '{{.Id}}', tag])).code === 0;
  }

  async loadImage(tarPath: string, tag: string): Promise<void> {
    const out = await this.run(['load', '--quiet', '--input', tarPath], { timeoutMs: 600_000 });
    const loaded = /Loaded image(?: ID)?: (\S+)/.exec(out)?.[1];
    if (!loaded) throw new Error(`docker load ${tarPath}: no image in its output: ${out}`);
    if (loaded !== tag) await this.run(['tag', loaded, tag]);
  }

  async stop(): Promise<void> {
    if (shared !== undefined && (await shared.catch(() => undefined)) === this) shared = undefined;
    const pid = this.leave(false);
    if (pid === undefined) return;
    const deadline = Date.now() + 40_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }

  /**
   * Unregisters this process; when no other user is left, sends dockerd SIGTERM (it stops the
   * running containers, their stop signal then SIGKILL, before it exits) and returns its pid. `wait`
   * (for the exit handler, which cannot await) blocks until it is gone.
   */
  private leave(wait: boolean): number | undefined {
    if (this.left) return undefined;
    this.left = true;
    rmSync(join(this.usersDir, String(process.pid)), { force: true });
    if (otherUsers(this.usersDir).length > 0) return undefined;
    const pid = readPid(this.pidFile);
    if (pid === undefined || !alive(pid) || !isDockerd(pid)) return undefined;
    if (wait) killAndWait(pid, 40);
    else process.kill(pid, 'SIGTERM');
    return pid;
  }
}

/** The live processes, other than this one, registered as users of the daemon (stale entries go). */
function otherUsers(usersDir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(usersDir);
  } catch {
    return [];
  }
  return names.map(Number).filter((pid) => {
    if (!Number.isInteger(pid) || pid === process.pid) return false;
    if (alive(pid)) return true;
    rmSync(join(usersDir, String(pid)), { force: true });
    return false;
  });
}

const answers = async (host: string) => (await runDocker(host, ['info', '--format', '{{.ID}}'], { timeoutMs: 10_000 }).catch(() => undefined))?.code === 0;

async function startDocker(): Promise<DockerDaemon> {
  if (!dockerInstalled()) throw new Error('docker/dockerd not installed: run bash scripts/test-tools.sh (Debian docker.io)');
  const dir = join(CACHE, 'docker');
  const dataRoot = join(dir, 'data');
  mkdirSync(dataRoot, { recursive: true });
  const short = createHash('sha256').update(dataRoot).digest('hex').slice(0, 8);
  const sock = `/tmp/gsd-${short}.sock`;
  const host = `unix://${sock}`;
  const pidFile = join(dir, 'dockerd.pid');
  const usersDir = join(dir, 'users');

  // A dockerd on this data root already? Another live test process's: share it. One whose users
  // all died (a run killed before its exit handler): stop it and start afresh.
  const old = readPid(pidFile);
  if (old !== undefined && alive(old) && isDockerd(old)) {
    if (otherUsers(usersDir).length > 0 && (await answers(host))) return new DockerDaemon(host, pidFile, usersDir);
    killAndWait(old, 30);
  }
  rmSync(pidFile, { force: true });
  rmSync(sock, { force: true });

  const logFile = join(dir, 'dockerd.log');
  const logFd = openSync(logFile, 'w');
  const dockerd = existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd';
  const child = spawn(dockerd, [
    '--data-root', dataRoot,
    '--exec-root', `/tmp/gsd-exec-${short}`,
    '--pidfile', pidFile,
    '-H', host,
    '--bip', BRIDGE_IP,
    // Networks Docker makes itself (compose projects' defaults) come from here, never from the
    // 172.x ranges the tests create by name.
    '--default-address-pool', 'base=10.213.0.0/16,size=24',
  ], { stdio: ['ignore', logFd, logFd], env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  closeSync(logFd);
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  // Stopped with the process even if it never answers.
  const stopChild = () => {
    if (child.pid !== undefined && !exited) killAndWait(child.pid, 20);
  };
  process.once('exit', stopChild);

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (await answers(host)) {
      process.removeListener('exit', stopChild);
      // A daemon of our own, so every container and network it still knows is a dead run's
      // leftover (its state is kept in the cache): they would hold addresses and disk.
      await runDocker(host, ['container', 'prune', '--force'], { timeoutMs: 120_000 });
      await runDocker(host, ['network', 'prune', '--force'], { timeoutMs: 60_000 });
      return new DockerDaemon(host, pidFile, usersDir);
    }
    const tail = () => readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    if (exited) {
      // A test process that started at the same moment won the race for the data root: share its daemon.
      const other = readPid(pidFile);
      if (other !== undefined && other !== child.pid && alive(other) && (await answers(host))) return new DockerDaemon(host, pidFile, usersDir);
      throw new Error(`dockerd exited at start-up; ${logFile}:\n${tail()}`);
    }
    if (Date.now() > deadline) {
      stopChild();
      throw new Error(`dockerd did not answer within 60 s; ${logFile}:\n${tail()}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

let shared: Promise<DockerDaemon> | undefined;

/**
 * The test process's dockerd: started by the first call (or shared with another live test process
 * that runs it), reused by later calls, stopped when its last user stops it or exits.
 */
export function sharedDocker(): Promise<Docker> {
  shared ??= startDocker().catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}
