// The agent's HTTP port, as the gateway and the operator reach it: health, activity, stats and the
// landing page behind the per-Gitspace secret, forwarded ports, the browser IDE, and upgrades (SSH,
// health events, the IDE's and forwarded ports' WebSockets).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { AgentConfig, AgentHealth } from '../api/agent.ts';
import { AGENT_ACTIVITY_PATH, AGENT_SSH_PATH, CLAIM_PATH, isActivitySource, PORT_HEADER, REBUILD_PATH, SECRET_HEADER } from '../api/agent.ts';
import type { Activity } from './activity.ts';
import { readBody } from './body.ts';
import { endUpgrade, forward, forwardUpgrade } from './forward.ts';
import { landingPage } from './landing.ts';
import { forwardPort, forwardPortUpgrade } from './ports.ts';
import { secretMatches } from './secret.ts';
import type { Dial } from './dial.ts';
import { bridgeToSsh } from './ssh-bridge.ts';

/** What the API reads of the agent, at the time of each request. */
export interface ApiSource {
  config: AgentConfig;
  activity: Activity;
  health(): AgentHealth;
  /** The browser IDE's unix socket, once it serves the workbench. */
  ideSocket(): string | undefined;
  /** The browser IDE opened a connection (a tool attached). */
  ideAttached(): void;
  forwardPorts(): number[];
  /** Where forwarded ports are reached (the dev container's address, or loopback). */
  /** A connection to a forwarded port (dial.ts). */
  dialPort: Dial;
  /** Rebuilds the dev container once for this token; false when already done or busy. */
  rebuild(token: string): boolean;
}


export class HttpApi {
  private readonly agent: ApiSource;
  /** Requests that reached this agent, by path (authorised or not): what a test asserts on. */
  private readonly requests = new Map<string, number>();
  private readonly events = new WebSocketServer({ noServer: true });

  constructor(agent: ApiSource) {
    this.agent = agent;
  }

  private count(url: string | undefined): string {
    const path = (url ?? '/').split('?')[0] ?? '/';
    // Counted before the secret is checked, so bounded: anyone who reaches the port picks the paths.
    const key = this.requests.has(path) || this.requests.size < 1_000 ? path : '(other)';
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    return path;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const { config, activity } = this.agent;
    const path = this.count(req.url);
    if (path === CLAIM_PATH) {
      // Claimed once, for good: a replayed or guessed token changes nothing.
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'already claimed' }));
      return;
    }
    if (!secretMatches(config.secret, req.headers[SECRET_HEADER])) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('unauthorised');
      return;
    }
    // A forwarded port's request is that port's, whatever its path: it must never reach the
    // agent's own endpoints (a public port's visitors would read health or mark activity).
    if (req.headers[PORT_HEADER] !== undefined) {
      forwardPort(req, res, this.agent.forwardPorts(), activity, this.agent.dialPort);
      return;
    }
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const ideSocket = this.agent.ideSocket();
    if (path === '/healthz') json(200, this.agent.health());
    else if (path === AGENT_ACTIVITY_PATH && req.method === 'POST') {
      // The gateway says what the traffic was (its host kind); anything else counts as the API.
      const source = new URL(req.url ?? '/', 'http://x').searchParams.get('source');
      activity.touch(isActivitySource(source) ? source : 'api');
      json(200, { lastActivityTime: activity.lastActivityTime });
    } else if (path === AGENT_ACTIVITY_PATH) json(200, { lastActivityTime: activity.lastActivityTime });
    else if (path === '/v1/stats') json(200, { requests: Object.fromEntries(this.requests) });
    else if (path === REBUILD_PATH && req.method === 'POST') {
      readBody(req, { maxBytes: 1_024, timeoutMs: 5_000, what: 'rebuild' }).then((text) => {
        const token = (JSON.parse(text) as { token?: unknown }).token;
        if (typeof token !== 'string' || !token || token.length > 128) return json(400, { error: 'token: a string of 1 to 128 characters' });
        return this.agent.rebuild(token) ? json(202, { rebuilding: token }) : json(409, { error: 'rebuilt for this token already, or busy' });
      }).catch((e: unknown) => { json(400, { error: (e as Error).message }); });
    }
    else if (ideSocket) {
      activity.touch('ide');
      forward({ socketPath: ideSocket }, req, res, 'the IDE');
    } else if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      // Until the browser IDE is served here, the landing page: who, where, how to connect.
      activity.touch('ide');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : landingPage(config, this.agent.health()));
    } else json(404, { error: 'not found' });
  }

  /**
   * Upgrades: `/v1/ssh` bridges the connection to this agent's SSH server; `/v1/events` is a
   * WebSocket of health snapshots for the landing page.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { config, activity } = this.agent;
    const path = this.count(req.url);
    if (!secretMatches(config.secret, req.headers[SECRET_HEADER])) {
      endUpgrade(socket, '401 Unauthorized');
      return;
    }
    if (req.headers[PORT_HEADER] !== undefined) {
      forwardPortUpgrade(req, socket, head, this.agent.forwardPorts(), activity, this.agent.dialPort);
      return;
    }
    if (path === AGENT_SSH_PATH) {
      bridgeToSsh(config.listen, socket, head, () => { activity.touch('ssh'); });
      return;
    }
    if (path === '/v1/events') {
      this.streamHealth(req, socket, head);
      return;
    }
    const ideSocket = this.agent.ideSocket();
    if (ideSocket) {
      this.agent.ideAttached();
      forwardUpgrade({ socketPath: ideSocket }, req, socket, head, () => { activity.touch('ide'); });
      return;
    }
    endUpgrade(socket, '404 Not Found');
  }

  /** A health snapshot now and every 2 s; a message from the page counts as activity. */
  private streamHealth(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.events.handleUpgrade(req, socket, head, (ws) => {
      const send = () => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(this.agent.health()));
      };
      send();
      const timer = setInterval(send, 2_000);
      ws.on('message', () => {
        this.agent.activity.touch('ide');
      });
      ws.on('close', () => {
        clearInterval(timer);
      });
    });
  }

  /** Ends the health streams (the HTTP server's own connections are the server's to close). */
  close(): void {
    for (const ws of this.events.clients) ws.terminate();
  }
}
