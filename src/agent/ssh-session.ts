// One SSH session channel, as OpenSSH's sshd serves it: a PTY (through util-linux `script`, so no
// native module is needed) that follows the client's window size, environment (LANG, LC_*, TERM),
// a shell or a command (scp and rsync are commands), the `sftp` subsystem (OpenSSH's own
// sftp-server, run as the user), signals, the exit status, and ssh-agent forwarding. Its processes
// are a process group of their own, ended when the channel closes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, join } from 'node:path';
import type { Connection, ServerChannel, Session } from 'ssh2';
import { shellJoin } from './container.ts';
import { run } from './run.ts';
import { openAgentChannel, splice } from './ssh-forward.ts';

export interface SessionOptions {
  cwd: () => string;
  env: () => NodeJS.ProcessEnv;
  onActivity: () => void;
  log: (msg: string) => void;
  /** Runs shells and commands as the developer's user (DevUser.wrap). */
  wrap: (argv: string[]) => string[];
  /** A session's shell or command in the dev container, when there is one (else undefined: on the VM); `tty`: with a terminal; `env`: the session's. */
  inContainer?: (argv: string[], tty: boolean, env?: Record<string, string>) => string[] | undefined;
  /** Whether sessions run in a dev container (a forwarded agent's socket is on the VM, not in there). */
  containerized: () => boolean;
  /** argv of the sftp server (OpenSSH's sftp-server), or undefined when there is none. */
  sftpServer: () => string[] | undefined;
  /** Where forwarded agent sockets go (a directory only the agent writes to); a dev container has it at CONTAINER_SSH_DIR. */
  runtimeDir: string;
  /** Who must own them: the developer's uid/gid, or the dev container user's (undefined: the agent's own user). */
  owner: () => { uid: number; gid: number } | undefined;
}

interface PtyInfo {
  cols: number;
  rows: number;
  term: string;
}

/** Where a dev container sees the agent's SSH runtime directory (forwarded agents' sockets). */
export const CONTAINER_SSH_DIR = '/run/gitspaces/ssh';

/** Signals a client may send (RFC 4254 6.9), as sshd allows them. */
const SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);
/** How long a closed session's processes get after SIGHUP before SIGKILL. */
const HANGUP_GRACE_MS = 2_000;

const sizeOk = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 10_000;

/** The terminal (/dev/pts/N) and its foreground process group of the shell `script` (pid) started, if any. */
function terminalOf(scriptPid: number): { tty: string; foreground: number } | undefined {
  try {
    const child = Number(readFileSync(`/proc/${String(scriptPid)}/task/${String(scriptPid)}/children`, 'utf8').trim().split(/\s+/)[0]);
    if (!Number.isInteger(child) || child <= 0) return undefined;
    const tty = readlinkSync(`/proc/${String(child)}/fd/0`);
    // /proc/<pid>/stat: "pid (comm) state ppid pgrp session tty_nr tpgid …"; comm may hold spaces.
    const stat = readFileSync(`/proc/${String(child)}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const foreground = Number(fields[5]);
    return tty.startsWith('/dev/pts/') ? { tty, foreground } : undefined;
  } catch {
    return undefined;
  }
}

export function handleSession(session: Session, client: Connection, o: SessionOptions): void {
  let pty: PtyInfo | undefined;
  const env: Record<string, string> = {};
  let child: ChildProcess | undefined;
  let agent: { server: Server; dir: string } | undefined;

  session.on('pty', (accept, _reject, info) => {
    pty = { cols: sizeOk(info.cols) ? info.cols : 80, rows: sizeOk(info.rows) ? info.rows : 24, term: /^[\w.+-]{1,64}$/.test(info.term) ? info.term : 'xterm-256color' };
    accept?.(); // undefined when the client wants no reply
  });
  session.on('window-change', (accept, _reject, info) => {
    accept?.();
    if (!pty || !child?.pid || !sizeOk(info.cols) || !sizeOk(info.rows)) return;
    pty = { ...pty, cols: info.cols, rows: info.rows };
    // The kernel tells the terminal's foreground processes (SIGWINCH); in a container that is
    // `docker exec -t`, which resizes its own terminal in turn.
    const t = terminalOf(child.pid);
    if (t) void run('stty', ['-F', t.tty, 'rows', String(info.rows), 'cols', String(info.cols)], { timeoutMs: 5_000 });
  });
  session.on('env', (accept, _reject, info) => {
    if (/^(LANG|LC_[A-Z]+|TERM)$/.test(info.key) && info.val.length <= 256) env[info.key] = info.val;
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => {
    accept?.();
    const name = info.name.replace(/^SIG/, '');
    if (!child?.pid || !SIGNALS.has(name)) return;
    // With a terminal, the signal is for what runs in its foreground (as ^C would be).
    const target = pty ? terminalOf(child.pid)?.foreground : undefined;
    try {
      process.kill(-(target && target > 0 ? target : child.pid), `SIG${name}` as NodeJS.Signals);
    } catch {
      /* gone */
    }
  });
  session.on('auth-agent', (accept) => {
    accept?.();
    agent ??= agentSocket(client, o);
  });

  // In a container, what `docker exec` started outlives the docker client: it notes its pid (it
  // leads a process group of its own there) so that the session's end can signal that group.
  let pidFile: string | undefined;
  const inContainer = (argv: string[], tty: boolean) => {
    if (!o.containerized()) return undefined;
    pidFile = `/tmp/.gitspaces-ssh-${randomBytes(8).toString('hex')}.pid`;
    return o.inContainer?.(['sh', '-c', 'echo $$ > "$0" && exec "$@"', pidFile, ...argv], tty, sessionEnv());
  };
  // With a terminal, script(1) makes it (its command runs through the shell, hence shellJoin).
  // In a container, `docker exec -t` makes another one, sized only after the command started:
  // the size is set in there too.
  const withPty = (p: PtyInfo, argv: string[]) => {
    const size = `stty rows ${String(p.rows)} cols ${String(p.cols)}`;
    const inside = inContainer(['bash', '-c', `${size} 2>/dev/null; exec ${shellJoin(argv)}`], true);
    return ['script', '-qfec', `${size}; exec ${shellJoin(inside ?? argv)}`, '/dev/null'];
  };
  const command = (argv: string[]) => (pty ? withPty(pty, argv) : (inContainer(argv, false) ?? argv));
  const sessionEnv = () => ({
    ...env,
    ...(pty ? { TERM: pty.term } : {}),
    ...(agent ? { SSH_AUTH_SOCK: join(o.containerized() ? CONTAINER_SSH_DIR : o.runtimeDir, basename(agent.dir), 'agent.sock') } : {}),
  });

  const ended = () => {
    if (pidFile) endInContainer(pidFile, o);
  };
  session.on('shell', (accept) => {
    child = attach(accept(), command(['bash', '-l']), sessionEnv(), o, ended);
  });
  session.on('exec', (accept, _reject, info) => {
    child = attach(accept(), command(['bash', '-lc', info.command]), sessionEnv(), o, ended);
  });
  session.on('subsystem', (accept, reject, info) => {
    const server = info.name === 'sftp' ? o.sftpServer() : undefined;
    if (!server) {
      o.log(`ssh: subsystem ${info.name.slice(0, 64)} refused${info.name === 'sftp' ? ' (no sftp-server on this VM)' : ''}`);
      reject?.();
      return;
    }
    child = attach(accept(), server, env, o);
  });
  // The forwarded agent's socket goes with the session, or with the connection if that goes first.
  const dropAgent = () => {
    if (!agent) return;
    agent.server.close();
    rmSync(agent.dir, { recursive: true, force: true });
    agent = undefined;
  };
  client.once('close', dropAgent);
  session.on('close', () => {
    dropAgent();
    client.off('close', dropAgent);
  });
}

/** Signals a container session's process group (as the container user), then forgets its pid. */
function endInContainer(pidFile: string, o: SessionOptions): void {
  // (dash's kill takes no `--`; a session that ends at once may not have written its pid yet.)
  const script = `for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$0" ] && break; sleep 0.2; done; p=$(cat "$0" 2>/dev/null) || exit 0; rm -f "$0"; kill -HUP "-$p" 2>/dev/null || exit 0; sleep ${String(HANGUP_GRACE_MS / 1000)}; kill -KILL "-$p" 2>/dev/null; exit 0`;
  const argv = o.inContainer?.(['sh', '-c', script, pidFile], false);
  if (!argv) return;
  const [cmd = 'docker', ...args] = o.wrap(argv);
  const child = spawn(cmd, args, { env: o.env(), stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}

/** A socket for this connection's forwarded agent: in a directory only the user can enter. */
function agentSocket(client: Connection, o: SessionOptions): { server: Server; dir: string } {
  const dir = mkdtempSync(join(o.runtimeDir, 'agent-'));
  chmodSync(dir, 0o700);
  const server = createServer((socket) => {
    openAgentChannel(client, (err, channel) => {
      if (err || !channel) {
        socket.destroy();
        return;
      }
      splice(channel, socket, o.onActivity);
    });
  });
  const path = join(dir, 'agent.sock');
  server.listen(path, () => {
    chmodSync(path, 0o600);
    const owner = o.owner();
    if (owner) {
      chownSync(dir, owner.uid, owner.gid);
      chownSync(path, owner.uid, owner.gid);
    }
  });
  server.on('error', (e) => {
    o.log(`ssh: agent socket: ${e.message}`);
  });
  return { server, dir };
}

/** Runs argv for the channel: its own process group, ended (SIGHUP, then SIGKILL) when the channel closes. */
function attach(channel: ServerChannel, argv: string[], extraEnv: Record<string, string>, o: SessionOptions, onClose?: () => void): ChildProcess | undefined {
  let child: ChildProcess;
  try {
    const [cmd = 'bash', ...args] = o.wrap(argv);
    child = spawn(cmd, args, { cwd: o.cwd(), env: { ...o.env(), ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  } catch (e) {
    channel.stderr.write(`cannot start: ${(e as Error).message}\n`);
    channel.exit(127);
    channel.end();
    return undefined;
  }
  o.onActivity();
  const group = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      /* gone */
    }
  };
  child.stdin?.on('error', () => undefined); // the command may exit before it reads what was sent
  channel.on('data', (d: Buffer) => {
    o.onActivity();
    if (child.stdin?.write(d) === false) {
      channel.pause();
      child.stdin.once('drain', () => channel.resume());
    }
  });
  channel.on('end', () => child.stdin?.end());
  channel.on('close', () => {
    onClose?.();
    if (child.exitCode !== null || child.signalCode !== null) return;
    group('SIGHUP');
    setTimeout(() => {
      group('SIGKILL');
    }, HANGUP_GRACE_MS).unref();
  });
  // Backpressure: a slow client (scp, sftp) pauses the command's output.
  child.stdout?.pipe(channel, { end: false });
  child.stderr?.pipe(channel.stderr, { end: false });
  child.on('error', (e) => {
    channel.stderr.write(`${e.message}\n`);
  });
  child.on('close', (code, signal) => {
    if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
    else channel.exit(code ?? 0);
    channel.end();
  });
  return child;
}
