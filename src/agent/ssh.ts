// The SSH server desktop IDEs and terminals connect to: public-key auth against the Gitspace's
// sshPublicKeys, a real PTY shell (through util-linux `script`, so no native module is needed) or
// exec in the checkout, and activity tracking for idle auto-stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel, PublicKey, ParsedKey } from 'ssh2';
import { shellJoin } from './container.ts';

export interface SshOptions {
  address: string;
  port: number;
  hostKeyFile: string;
  authorizedKeys: string[];
  cwd: () => string;
  env: () => NodeJS.ProcessEnv;
  onActivity: () => void;
  /** A client logged in (a tool attached: postAttachCommand). */
  onAttach?: () => void;
  log: (msg: string) => void;
  /** Runs shells and commands as the developer's user (DevUser.wrap). */
  wrap: (argv: string[]) => string[];
  /** A session's shell or command in the dev container, when there is one (else undefined: on the VM); `tty`: with a terminal. */
  inContainer?: (argv: string[], tty: boolean) => string[] | undefined;
}

function hostKey(file: string): string {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(file, privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
  }
  return readFileSync(file, 'utf8');
}

function parseAuthorized(lines: string[]): ParsedKey[] {
  const out: ParsedKey[] = [];
  for (const line of lines) {
    const k = ssh2.utils.parseKey(line);
    if (k instanceof Error) continue;
    out.push(...(Array.isArray(k) ? k : [k]));
  }
  return out;
}

function matches(key: PublicKey, allowed: ParsedKey): boolean {
  const a = allowed.getPublicSSH();
  return key.algo === allowed.type && a.length === key.data.length && timingSafeEqual(a, key.data);
}

interface PtyInfo {
  cols: number;
  rows: number;
  term: string;
}

export function startSshServer(o: SshOptions): Promise<ssh2.Server> {
  const allowed = parseAuthorized(o.authorizedKeys);
  // AES ciphers only: without ssh2's optional native binding (not built here, on purpose), its
  // chacha20-poly1305 path fails with "Bad packet length" against OpenSSH.
  const algorithms: ssh2.Algorithms = {
    cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'],
  };
  const server = new ssh2.Server({ hostKeys: [hostKey(o.hostKeyFile)], algorithms }, (client: Connection) => {
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') {
        ctx.reject(['publickey']);
        return;
      }
      const key = allowed.find((k) => matches(ctx.key, k));
      if (!key) {
        ctx.reject(['publickey']);
        return;
      }
      if (!ctx.signature) {
        ctx.accept(); // the client asks whether the key would do; it signs next
        return;
      }
      if (ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) ctx.accept();
      else ctx.reject(['publickey']);
    });
    client.on('ready', () => {
      o.onActivity();
      o.onAttach?.();
      client.on('session', (accept) => {
        const session = accept();
        let pty: PtyInfo | undefined;
        const env: Record<string, string> = {};
        session.on('pty', (acceptPty, _reject, info) => {
          pty = { cols: info.cols || 80, rows: info.rows || 24, term: info.term || 'xterm-256color' };
          acceptPty?.(); // undefined when the client wants no reply
        });
        session.on('env', (acceptEnv, _reject, info) => {
          if (/^(LANG|LC_[A-Z]+|TERM)$/.test(info.key)) env[info.key] = info.val;
          acceptEnv?.();
        });
        // With a terminal, script(1) makes it (its command runs through the shell, hence shellJoin).
        // In a container, `docker exec -t` makes another one, sized only after the command started:
        // the size is set in there too.
        const withPty = (p: PtyInfo, argv: string[]) => {
          const size = `stty rows ${String(p.rows)} cols ${String(p.cols)}`;
          const inside = o.inContainer?.(['bash', '-c', `${size} 2>/dev/null; exec ${shellJoin(argv)}`], true);
          return ['script', '-qfec', `${size}; exec ${shellJoin(inside ?? argv)}`, '/dev/null'];
        };
        session.on('shell', (acceptShell) => {
          const channel = acceptShell();
          const cmd = pty ? withPty(pty, ['bash', '-l']) : inner(['bash', '-l'], false);
          attach(channel, cmd, { ...env, ...(pty ? { TERM: pty.term } : {}) });
        });
        session.on('exec', (acceptExec, _reject, info) => {
          const channel = acceptExec();
          const cmd = pty ? withPty(pty, ['bash', '-lc', info.command]) : inner(['bash', '-lc', info.command], false);
          attach(channel, cmd, env);
        });
      });
    });
    client.on('error', (e) => {
      o.log(`ssh client error: ${e.message}`);
    });
  });

  function inner(argv: string[], tty: boolean): string[] {
    return o.inContainer?.(argv, tty) ?? argv;
  }

  function attach(channel: ServerChannel, argv: string[], extraEnv: Record<string, string>): void {
    let child: ChildProcess;
    try {
      const [cmd = 'bash', ...args] = o.wrap(argv);
      child = spawn(cmd, args, { cwd: o.cwd(), env: { ...o.env(), ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      channel.stderr.write(`cannot start shell: ${(e as Error).message}\n`);
      channel.exit(127);
      channel.end();
      return;
    }
    child.stdin?.on('error', () => undefined); // the shell may exit before it reads what was typed
    channel.on('data', (d: Buffer) => {
      o.onActivity();
      child.stdin?.write(d);
    });
    channel.on('end', () => child.stdin?.end());
    channel.on('close', () => child.kill('SIGHUP'));
    child.stdout?.on('data', (d: Buffer) => channel.write(d));
    child.stderr?.on('data', (d: Buffer) => channel.stderr.write(d));
    child.on('error', (e) => {
      channel.stderr.write(`${e.message}\n`);
    });
    child.on('close', (code, signal) => {
      if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
      else channel.exit(code ?? 0);
      channel.end();
    });
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.address, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
