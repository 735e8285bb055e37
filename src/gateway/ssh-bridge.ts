// SSH for desktop IDEs: the client's WebSocket (from `gitspaces ssh`, an OpenSSH ProxyCommand)
// carries the SSH bytes; the gateway joins it to the agent's `/v1/ssh` upgrade, behind the hop
// token. The VM needs no SSH port open to anything but the agent's HTTP port. Each direction stops
// reading when the other cannot keep up, so a client or agent that does not read holds a bounded
// amount of the gateway's memory (about HIGH_WATER per connection), not all that the other sends.
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { AGENT_SSH_PATH, GATEWAY_KNOWN_HOSTS_PATH, SECRET_HEADER } from '../api/index.ts';
import { plain, refuseUpgrade } from './pages.ts';
import type { Hop } from './proxy.ts';
import type { Match } from './routes.ts';

/**
 * The gateway's own paths on a Gitspace's host (after authorisation): the known_hosts line for its
 * SSH server (what `gitspaces ssh-config` writes, so clients check the host key); else 404.
 */
export function gitspacePath(res: ServerResponse, m: Match): void {
  if ((m.path.split('?')[0] ?? '') !== GATEWAY_KNOWN_HOSTS_PATH || m.kind !== 'host') {
    plain(res, 404, 'not found');
    return;
  }
  if (!m.target.sshHostKey) {
    plain(res, 404, 'this Gitspace has not shown an SSH host key yet: start it');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${m.host} ${m.target.sshHostKey}\n`);
}

/** Bytes queued toward the client at which the agent's side stops being read, and resumes. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

/** What the gateway learns of an upgraded connection (WebSocket or SSH) while it lasts. */
export interface BridgeHooks {
  idleMs: number;
  /** Joined to the agent; returns the function that closes both sides (for a session's end). */
  onOpen(close: (reason: string) => void): void;
  /** Ended: `reason` is idle when it carried nothing for idleMs, else closed. */
  onClose(reason: string): void;
  /** Bytes from the client (which also count as use of the Gitspace). */
  onData(bytes: number): void;
  /** Bytes to the client. */
  onDataOut(bytes: number): void;
}

export function sshBridge(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer, hop: Hop, hooks: BridgeHooks): void {
  const up = request({
    host: hop.upstream.host, port: hop.upstream.port, path: AGENT_SSH_PATH,
    headers: { [SECRET_HEADER]: hop.secret, connection: 'Upgrade', upgrade: 'gitspaces-ssh', 'x-gitspaces-user': hop.user },
  });
  up.setTimeout(10_000, () => up.destroy());
  up.on('response', (r) => {
    r.resume();
    refuseUpgrade(socket, 502);
  });
  up.on('error', () => {
    refuseUpgrade(socket, 502);
  });
  up.on('upgrade', (_r, agent, agentHead: Buffer) => {
    up.setTimeout(0);
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      let closed = false;
      const close = (reason = 'closed') => {
        if (closed) return;
        closed = true;
        agent.destroy();
        ws.terminate();
        hooks.onClose(reason);
      };
      hooks.onOpen(close);
      // Bytes the agent sent right after its 101 (the SSH banner) came with the response.
      if (agentHead.length) ws.send(agentHead);
      // Every byte passes through the agent's socket, whose timeout both reads and writes reset.
      agent.setTimeout(hooks.idleMs, () => {
        close('idle');
      });
      ws.on('message', (data: Buffer) => {
        hooks.onData(data.length);
        if (!agent.write(data)) ws.pause();
      });
      agent.on('drain', () => {
        ws.resume();
      });
      const sent = () => {
        if (agent.isPaused() && ws.bufferedAmount < LOW_WATER) agent.resume();
      };
      agent.on('data', (d: Buffer) => {
        hooks.onDataOut(d.length);
        ws.send(d, sent);
        if (ws.bufferedAmount >= HIGH_WATER) agent.pause();
      });
      for (const e of [ws, agent]) {
        e.on('close', () => { close(); });
        e.on('error', () => { close(); });
      }
    });
  });
  up.end();
}
