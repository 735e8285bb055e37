// What an SSH client forwards through the agent, as OpenSSH's sshd would: `direct-tcpip` (ssh -L,
// -W, -D) to ports of the Gitspace only (a loopback destination, reached as dial.ts reaches
// forwarded ports), `tcpip-forward` (ssh -R) listening on the VM's loopback only, and the
// channel back to the client's ssh-agent (ssh -A). Every byte counts as activity for idle stop.
import { createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Connection, ServerChannel, TcpipRequestInfo } from 'ssh2';
import type { Dial } from './dial.ts';
import { join } from './forward.ts';

/** Destinations that mean "this Gitspace". */
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '0.0.0.0', '']);

export interface ForwardOptions {
  /** A connection to a port of the Gitspace (dial.ts). */
  dial: Dial;
  onActivity: () => void;
  log: (msg: string) => void;
}

/** A channel and a socket piped both ways; what either sends is use. */
export function splice(channel: ServerChannel, socket: Duplex, onActivity: () => void): void {
  socket.on('data', onActivity);
  join(channel, socket, onActivity);
}

/** ssh -L / -W / -D: a connection to a port of this Gitspace; anything else is refused, as sshd's PermitOpen would. */
export function onDirectTcpip(o: ForwardOptions) {
  return (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void => {
    const port = info.destPort;
    if (!LOOPBACK.has(info.destIP) || !Number.isInteger(port) || port < 1 || port > 65_535) {
      o.log(`ssh: direct-tcpip to ${info.destIP}:${String(port)} refused (only ports of this Gitspace)`);
      reject();
      return;
    }
    o.dial(port).then(
      (stream) => {
        o.onActivity();
        splice(accept(), stream, o.onActivity);
      },
      () => {
        reject();
      },
    );
  };
}

/**
 * ssh -R: `tcpip-forward` requests of one connection, each a listener on the VM's loopback (never
 * another address, and not below 1024), closed with the connection.
 */
export class RemoteForwards {
  private readonly listeners = new Map<string, Server>();
  private readonly client: Connection;
  private readonly o: ForwardOptions;

  constructor(client: Connection, o: ForwardOptions) {
    this.client = client;
    this.o = o;
    client.on('close', () => {
      this.closeAll();
    });
  }

  onRequest(accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: { bindAddr: string; bindPort: number }): void {
    const key = `${info.bindAddr}:${String(info.bindPort)}`;
    if (name === 'cancel-tcpip-forward') {
      const l = this.listeners.get(key);
      if (!l) return reject?.();
      l.close();
      this.listeners.delete(key);
      return accept?.();
    }
    if (name !== 'tcpip-forward' || !LOOPBACK.has(info.bindAddr) || (info.bindPort !== 0 && info.bindPort < 1024) || info.bindPort > 65_535 || this.listeners.size >= 32) {
      this.o.log(`ssh: ${name} ${key} refused (loopback ports from 1024 only)`);
      return reject?.();
    }
    const server = createServer((socket) => {
      const port = (server.address() as { port: number }).port;
      this.client.forwardOut(info.bindAddr, port, socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0, (err, channel) => {
        if (err) {
          socket.destroy();
          return;
        }
        this.o.onActivity();
        splice(channel, socket, this.o.onActivity);
      });
    });
    server.once('error', () => reject?.());
    server.listen(info.bindPort, '127.0.0.1', () => {
      server.removeAllListeners('error');
      server.on('error', (e) => {
        this.o.log(`ssh: -R listener ${key}: ${e.message}`);
      });
      this.listeners.set(key, server);
      accept?.((server.address() as { port: number }).port);
    });
  }

  closeAll(): void {
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
  }
}

/**
 * Opens an `auth-agent@openssh.com` channel to the client (ssh -A), for one connection to the
 * forwarded agent socket. ssh2 has no public call for this server-to-client channel; this is its
 * internal openChannel with the protocol's openssh_authAgent.
 */
export function openAgentChannel(client: Connection, cb: (err: Error | undefined, channel?: ServerChannel) => void): void {
  const c = client as unknown as {
    _chanMgr: { add(fn: unknown): number };
    _protocol: { openssh_authAgent(chan: number, window: number, packet: number): void };
  };
  const wrapper = Object.assign((err: Error | undefined, channel?: ServerChannel) => {
    cb(err, channel);
  }, { type: 'auth-agent@openssh.com' });
  const local = c._chanMgr.add(wrapper);
  if (local === -1) {
    cb(new Error('no free channels'));
    return;
  }
  c._protocol.openssh_authAgent(local, 2 * 1024 * 1024, 32 * 1024);
}
