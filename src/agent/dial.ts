// Reaching a port of the Gitspace from the agent, for the gateway's forwarded ports and SSH's -L:
// TCP to where it is (the dev container's address, a compose service's, or the VM's loopback);
// in a dev container, when that refuses, the container's own loopback — which only a process inside
// can reach — through `docker exec` and bash's /dev/tcp (nothing to install in the image).
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';

/**
 * A command that joins its stdin/stdout to 127.0.0.1:<port> where it runs. It ends when the server
 * closes (the writer is stopped then: an HTTP client may never end its side); the writer reads a
 * copy of stdin (a background job's own stdin would be /dev/null).
 */
export const LOOPBACK_BRIDGE = ['bash', '-c', 'exec 3<>"/dev/tcp/127.0.0.1/$0" 4<&0 || exit 1; cat <&4 >&3 & w=$!; cat <&3; kill "$w" 2>/dev/null; exit 0'];

export interface DialOptions {
  /** Where a port is reached over TCP. */
  portHost: (port: number) => string;
  /** With a dev container: argv of LOOPBACK_BRIDGE run inside it for `port`. */
  inContainerLoopback?: (port: number) => string[] | undefined;
}

export type Dial = (port: number) => Promise<Duplex>;

export function dialer(o: DialOptions): Dial {
  return (port) => new Promise((resolve, reject) => {
    const socket = connect({ host: o.portHost(port), port });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      const bridge = o.inContainerLoopback?.(port);
      if (!bridge) return reject(e);
      const [cmd = 'docker', ...args] = bridge;
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      child.once('error', reject);
      child.once('spawn', () => {
        const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
        stream.once('close', () => child.kill());
        resolve(stream);
      });
    });
  });
}
