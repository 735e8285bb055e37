// Forwarding a request or a WebSocket upgrade from the agent's port to something only the agent can
// reach: code-server's unix socket, or a forwarded port on the VM's loopback. The per-Gitspace
// secret stays with the agent.
import { request, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PORT_HEADER, SECRET_HEADER } from '../api/agent.ts';

/** Where to: code-server's socket, or a connection made by a dialer (a forwarded port, dial.ts). */
export type Target = { socketPath: string } | { dial: () => Promise<Duplex> };

/** request() options for a target: a dialled connection comes through createConnection's callback. */
function via(target: Target): { socketPath: string } | { createConnection: (opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => undefined } {
  if ('socketPath' in target) return target;
  return {
    createConnection: (_opts, cb) => {
      target.dial().then((s) => cb(null, s), (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
      return undefined;
    },
  };
}

const KEPT_BACK = new Set([SECRET_HEADER, PORT_HEADER]);

function forwardHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(req.headers).filter(([k]) => !KEPT_BACK.has(k)));
}

export function forward(target: Target, req: IncomingMessage, res: ServerResponse, what: string): void {
  const up = request({ ...via(target), method: req.method, path: req.url, headers: forwardHeaders(req) } as RequestOptions, (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`${what} is not reachable\n`);
  });
  req.pipe(up);
}

/**
 * Pipes two streams both ways (with backpressure), each end closing the other; data from `a`
 * calls `onData` (use, for idle stop).
 */
export function join(a: Duplex, b: Duplex, onData: () => void): void {
  a.on('data', onData);
  a.pipe(b).pipe(a);
  const close = () => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) {
    s.on('close', close);
    s.on('error', close);
  }
}

/** Answers an upgrade that goes no further with a bare status line (e.g. `404 Not Found`) and closes. */
export function endUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

/** Forwards an upgrade byte for byte once the target has switched protocols. */
export function forwardUpgrade(target: Target, req: IncomingMessage, socket: Duplex, head: Buffer, onData: () => void): void {
  const up = request({ ...via(target), method: req.method, path: req.url, headers: forwardHeaders(req) } as RequestOptions);
  up.on('upgrade', (res, peer, peerHead: Buffer) => {
    const lines = [`HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i] ?? ''}: ${res.rawHeaders[i + 1] ?? ''}`);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    if (peerHead.length) socket.write(peerHead);
    if (head.length) peer.write(head);
    join(socket, peer, onData);
  });
  up.on('response', (res) => {
    endUpgrade(socket, `${String(res.statusCode ?? 502)} ${res.statusMessage ?? ''}`);
    res.resume();
  });
  up.on('error', () => {
    if (!socket.destroyed) endUpgrade(socket, '502 Bad Gateway');
  });
  up.end();
}
