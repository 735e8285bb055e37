// The proxied path, kept lean (a map lookup and a pipe; see notes/gateway-baseline.md): forwards a
// request or an upgrade to a Gitspace's agent over kept-alive connections. Headers a client could
// use to speak for the gateway are removed — hop-by-hop headers, X-Forwarded-*/Forwarded, the hop
// secret, the user's token and session cookie — and the gateway's own are set.
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PORT_HEADER, SECRET_HEADER } from '../api/index.ts';
import { HOST_SESSION_COOKIE, SESSION_COOKIE, SSO_COOKIE } from './access.ts';
import type { BridgeHooks } from './ssh-bridge.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);
const SPOOFABLE = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip', 'x-gitspaces-user', SECRET_HEADER, PORT_HEADER, 'authorization']);

export interface Hop {
  upstream: { host: string; port: number };
  path: string;
  secret: string;
  user: string;
  clientIP: string;
  host: string;
  proto: 'http' | 'https';
  prefix?: string;
  /** A forwarded port: the agent sends the request to this port on the VM. */
  port?: number;
}

const NONE: ReadonlySet<string> = new Set();
/** The gateway's own cookies: sessions are never shown to a Gitspace (whose owner controls its VM). */
const GATEWAY_COOKIES = [SESSION_COOKIE, HOST_SESSION_COOKIE, SSO_COOKIE, `__Host-${SSO_COOKIE}`];

/** Header names a Connection header declares hop-by-hop (none, without building a set, when absent). */
function connectionTokens(h: IncomingHttpHeaders): ReadonlySet<string> {
  return typeof h.connection === 'string' && h.connection ? new Set(h.connection.toLowerCase().split(',').map((s) => s.trim())) : NONE;
}

/** The request headers the agent receives. */
export function upstreamHeaders(h: IncomingHttpHeaders, hop: Hop, upgrade?: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionTokens(h);
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || SPOOFABLE.has(k) || named.has(k)) continue;
    if (k === 'cookie') {
      const kept = (Array.isArray(v) ? v.join('; ') : v).split(/;\s*/).filter((c) => c && !GATEWAY_COOKIES.some((name) => c.startsWith(`${name}=`)));
      if (kept.length) out.cookie = kept.join('; ');
      continue;
    }
    out[k] = v;
  }
  out.host = hop.host;
  out['x-forwarded-for'] = hop.clientIP;
  out['x-forwarded-proto'] = hop.proto;
  out['x-forwarded-host'] = hop.host;
  if (hop.prefix) out['x-forwarded-prefix'] = hop.prefix;
  out['x-gitspaces-user'] = hop.user;
  out[SECRET_HEADER] = hop.secret;
  if (hop.port !== undefined) out[PORT_HEADER] = String(hop.port);
  if (upgrade) {
    out.connection = 'Upgrade';
    out.upgrade = upgrade;
  }
  return out;
}

function responseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionTokens(h);
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k) && !named.has(k)) out[k] = v;
  return out;
}

export class Proxy {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: 60_000 });

  /** Forwards one request; `onError` answers the client when the agent cannot be reached. */
  forward(req: IncomingMessage, res: ServerResponse, hop: Hop, onError: (e: Error) => void): void {
    const up = request(
      { host: hop.upstream.host, port: hop.upstream.port, method: req.method, path: hop.path, headers: upstreamHeaders(req.headers, hop), agent: this.agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, responseHeaders(ur.headers));
        ur.pipe(res);
        ur.on('error', () => res.destroy());
      },
    );
    up.setTimeout(30_000, () => up.destroy(new Error('the agent did not answer in time')));
    up.on('error', (e) => {
      if (res.headersSent) res.destroy();
      else onError(e);
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  /**
   * Forwards an upgrade (WebSocket) as bytes: once the agent answers 101 the two sockets are
   * joined. `idleMs` reaps connections that carried nothing for that long.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, hop: Hop, o: BridgeHooks & { onError: (status: number) => void }): void {
    const upgradeTo = typeof req.headers.upgrade === 'string' ? req.headers.upgrade : 'websocket';
    const up = request({ host: hop.upstream.host, port: hop.upstream.port, method: req.method, path: hop.path, headers: upstreamHeaders(req.headers, hop, upgradeTo) });
    up.setTimeout(10_000, () => up.destroy(new Error('the agent did not answer in time')));
    up.on('upgrade', (ur, upSocket, upHead) => {
      up.setTimeout(0);
      const lines = [`HTTP/1.1 101 ${ur.statusMessage ?? 'Switching Protocols'}`];
      for (const [k, v] of Object.entries(responseHeaders(ur.headers))) for (const x of Array.isArray(v) ? v : [String(v)]) lines.push(`${k}: ${x}`);
      lines.push('Connection: Upgrade', `Upgrade: ${ur.headers.upgrade ?? upgradeTo}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      let closed = false;
      const close = (reason = 'closed') => {
        if (closed) return;
        closed = true;
        upSocket.destroy();
        socket.destroy();
        o.onClose(reason);
      };
      o.onOpen(close);
      for (const s of [socket, upSocket]) {
        if (s instanceof Socket) s.setTimeout(o.idleMs, () => { close('idle'); });
        s.on('error', () => { close(); });
        s.on('close', () => { close(); });
      }
      socket.on('data', (d: Buffer) => { o.onData(d.length); });
      upSocket.on('data', (d: Buffer) => { o.onDataOut(d.length); });
      socket.pipe(upSocket).pipe(socket);
    });
    up.on('response', (ur) => {
      // The agent refused the upgrade: pass its status on, without its body.
      ur.resume();
      o.onError(ur.statusCode ?? 502);
    });
    up.on('error', () => {
      o.onError(502);
    });
    up.end();
  }
}
