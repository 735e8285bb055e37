// The SSH server desktop IDEs and terminals connect to (through the gateway's bridge): public-key
// auth against the Gitspace's sshPublicKeys, sessions (ssh-session.ts), and forwarding
// (ssh-forward.ts). The host key lives on the VM's disk, so it is the same after a stop/start.
import { generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { Connection, PublicKey, ParsedKey } from 'ssh2';
import { onDirectTcpip, RemoteForwards, type ForwardOptions } from './ssh-forward.ts';
import { handleSession, type SessionOptions } from './ssh-session.ts';

export interface SshOptions extends SessionOptions, ForwardOptions {
  address: string;
  port: number;
  hostKeyFile: string;
  authorizedKeys: string[];
  /** A client logged in (a tool attached: postAttachCommand). */
  onAttach?: () => void;
}

/** Where distributions put OpenSSH's sftp-server (Debian/Ubuntu, Fedora/RHEL/Amazon Linux, Arch/Alpine). */
export const SFTP_SERVER_PATHS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server', '/usr/libexec/sftp-server'];

/** The VM's sftp-server, if it has one. */
export function vmSftpServer(): string[] | undefined {
  const path = SFTP_SERVER_PATHS.find((p) => existsSync(p));
  return path ? [path] : undefined;
}

/** A command that runs the first sftp-server it finds where it runs (in a dev container), or says there is none. */
export const SFTP_SERVER_ANYWHERE = ['sh', '-c', `for p in ${SFTP_SERVER_PATHS.join(' ')}; do [ -x "$p" ] && exec "$p"; done; echo "no sftp-server in this container (install openssh-sftp-server)" >&2; exit 127`];

/** The host key (ECDSA P-256), made on first use and kept on the VM's disk. */
export function hostKey(file: string): string {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(file, privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
  }
  return readFileSync(file, 'utf8');
}

/** The host key's public half as an OpenSSH line (`ecdsa-sha2-nistp256 AAAA…`), for known_hosts. */
export function hostPublicKey(file: string): string {
  const k = ssh2.utils.parseKey(hostKey(file));
  if (k instanceof Error) throw new Error(`cannot read the SSH host key ${file}: ${k.message}`);
  return `${k.type} ${k.getPublicSSH().toString('base64')}`;
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

export function startSshServer(o: SshOptions): Promise<ssh2.Server> {
  const allowed = parseAuthorized(o.authorizedKeys);
  mkdirSync(o.runtimeDir, { recursive: true, mode: 0o711 });
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
        handleSession(accept(), client, o);
      });
      client.on('tcpip', onDirectTcpip(o));
      const remote = new RemoteForwards(client, o);
      // tcpip-forward and its cancel; others (keepalive@openssh.com …) get a failure reply, which
      // is all a keepalive asks for.
      client.on('request', (accept, reject, name, info) => {
        remote.onRequest(accept, reject, name, info);
      });
    });
    client.on('error', (e) => {
      o.log(`ssh client error: ${e.message}`);
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.address, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
