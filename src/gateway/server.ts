// The gateway: one stateless process (run N replicas) in front of every Gitspace. It routes by
// Host or path (routes.ts), authenticates the user's JWT (auth.ts: Bearer header, or a session
// cookie set by a one-time `?token=` exchange), lets through only the Gitspace's owner and those
// it is shared with, and proxies HTTP, WebSocket and SSH-over-WebSocket to the agent with the
// per-Gitspace secret (proxy.ts). Its own endpoints (/healthz, /readyz, /metrics) are an express
// app on any host that is not a Gitspace's.
import { createServer as createHttpServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express from 'express';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { AGENT_SSH_PATH, GATEWAY_SSH_PATH, GITSPACE_INFRAS, GITSPACES, LABELS, MANAGED_BY, SECRET_HEADER, SECRETS, type Gitspace, type GitspaceInfra } from '../api/index.ts';
import { TokenBucket } from '../runtime/backoff.ts';
import { Informer } from '../runtime/informer.ts';
import type { KubeClient } from '../runtime/kube.ts';
import type { Logger } from '../runtime/log.ts';
import { ActivityReporter } from './activity.ts';
import { AGENT_BUNDLE_PREFIX, AgentBundles } from './agent-bundles.ts';
import type { JSONWebKeySet } from 'jose';
import { AuthError, TokenVerifier, type AuthFailureReason, type Identity, type IssuerConfig } from './auth.ts';
import { notRunning, plain, refuseUpgrade } from './pages.ts';
import { Proxy, SESSION_COOKIE, type Hop } from './proxy.ts';
import { normaliseHost, RouteTable, type Match, type SecretObject, type Target } from './routes.ts';

export interface GatewayOptions {
  client: KubeClient;
  log: Logger;
  port: number;
  address?: string;
  tls?: { cert: string; key: string };
  /** How often agents hear about use (batched). */
  activityIntervalMs?: number;
  /** Upgraded connections (WebSocket, SSH) that carry nothing this long are closed. */
  idleMs?: number;
  /** How long SIGTERM waits for requests in flight. */
  drainMs?: number;
  /** How long it keeps serving, not ready, before it stops accepting (so load balancers notice). */
  drainDelayMs?: number;
  jwksCooldownMs?: number;
  /** Where Secrets named without a namespace live (the gateway's own). */
  namespace?: string;
  /** Failed authentications a client may make in a burst, and the refill per second. */
  authFailureBurst?: number;
  authFailureRate?: number;
  /** The agent bundles to serve (scripts/bundle-agent.ts's output); without it, bundle paths are 404. */
  agentBundles?: string;
}

type HostClass = 'host' | 'path' | 'port' | 'gateway';

/** Who a public port's (or a preflight's) requests come from: nobody in particular. */
const ANONYMOUS: Identity = { sub: '', exp: 0 };

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** A per-client bucket of allowed authentication failures. */
class FailureLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly burst: number;
  private readonly rate: number;

  constructor(burst: number, rate: number) {
    this.burst = burst;
    this.rate = rate;
  }

  blocked(client: string): boolean {
    // Clients that never failed have no bucket: the common path costs one map lookup.
    const b = this.buckets.get(client);
    return b !== undefined && b.available() < 1;
  }

  fail(client: string): void {
    let b = this.buckets.get(client);
    if (!b) {
      if (this.buckets.size > 50_000) this.buckets.clear();
      b = new TokenBucket(this.rate, this.burst);
      this.buckets.set(client, b);
    }
    b.reserve();
  }
}

/**
 * The request must have one Host and an origin-form target without traversal or encoded
 * separators: anything else is a client trying to confuse routing.
 */
function badRequest(req: IncomingMessage): boolean {
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === 'host') hosts++;
  return hosts !== 1 || badTarget(req.url);
}

function badTarget(url: string | undefined): boolean {
  if (!url?.startsWith('/') || url.startsWith('//')) return true;
  const path = url.split('?')[0] ?? '';
  if (/%2f|%5c|%00|\\/i.test(path)) return true;
  const decoded = path.replace(/%2e/gi, '.');
  return decoded.split('/').some((seg) => seg === '..' || seg === '.');
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1] : '';
}

function cookieToken(req: IncomingMessage): string | undefined {
  const c = req.headers.cookie;
  if (!c) return undefined;
  for (const part of c.split(/;\s*/)) if (part.startsWith(`${SESSION_COOKIE}=`)) return part.slice(SESSION_COOKIE.length + 1);
  return undefined;
}

function clientIP(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

export class Gateway {
  private readonly o: Required<Omit<GatewayOptions, 'tls' | 'address' | 'agentBundles'>> & Pick<GatewayOptions, 'tls' | 'address' | 'agentBundles'>;
  readonly gitspaces: Informer<Gitspace>;
  readonly infras: Informer<GitspaceInfra>;
  readonly secrets: Informer<SecretObject>;
  readonly routes: RouteTable;
  readonly verifier: TokenVerifier;
  readonly proxy = new Proxy();
  readonly activity: ActivityReporter;
  readonly bundles: AgentBundles | undefined;
  readonly registry = new Registry();
  private readonly limiter: FailureLimiter;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  private readonly upgraded = new Set<Duplex>();
  private server: Server | undefined;
  private ready = false;
  private draining = false;
  private inflight = 0;
  private readonly app = express();
  private readonly metrics: {
    requests: Counter<'host_class' | 'code'>;
    duration: Histogram<'host_class'>;
    websockets: Gauge;
    authFailures: Counter<'reason'>;
  };

  constructor(o: GatewayOptions) {
    this.o = {
      activityIntervalMs: 30_000, idleMs: 30 * 60_000, drainMs: 20_000, drainDelayMs: 5_000, namespace: 'default', jwksCooldownMs: 30_000, authFailureBurst: 20, authFailureRate: 1, ...o,
    };
    const onError = (e: unknown) => {
      o.log.warn('watch failed; reconnecting', { error: e });
    };
    this.gitspaces = new Informer<Gitspace>(o.client, GITSPACES, { onError });
    this.infras = new Informer<GitspaceInfra>(o.client, GITSPACE_INFRAS, { onError });
    this.secrets = new Informer<SecretObject>(o.client, SECRETS, { labelSelector: `${LABELS.managedBy}=${MANAGED_BY}`, onError });
    this.routes = new RouteTable(this.gitspaces, this.infras, this.secrets);
    this.verifier = new TokenVerifier({ jwksCooldownMs: this.o.jwksCooldownMs });
    this.activity = new ActivityReporter(this.o.activityIntervalMs);
    this.limiter = new FailureLimiter(this.o.authFailureBurst, this.o.authFailureRate);
    this.bundles = o.agentBundles ? new AgentBundles(o.agentBundles, o.log) : undefined;
    const registers = [this.registry];
    this.metrics = {
      requests: new Counter({ name: 'gitspaces_gateway_requests_total', help: 'Requests by how the Gitspace was addressed and status code', labelNames: ['host_class', 'code'], registers }),
      duration: new Histogram({ name: 'gitspaces_gateway_request_duration_seconds', help: 'Time to the end of the response', labelNames: ['host_class'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers }),
      websockets: new Gauge({ name: 'gitspaces_gateway_websockets_active', help: 'Upgraded connections (WebSocket, SSH) open now', registers }),
      authFailures: new Counter({ name: 'gitspaces_gateway_auth_failures_total', help: 'Refused authentications by reason', labelNames: ['reason'], registers }),
    };
    this.app.disable('x-powered-by');
    this.app.get('/healthz', (_req, res) => {
      res.type('text/plain').send('ok\n');
    });
    this.app.get('/readyz', (_req, res) => {
      res.status(this.ready && !this.draining ? 200 : 503).type('text/plain').send(this.ready && !this.draining ? 'ready\n' : 'not ready\n');
    });
    this.app.get('/metrics', (_req, res) => {
      void this.registry.metrics().then((text) => {
        res.type(this.registry.contentType).send(text);
      });
    });
    this.app.use((_req, res) => {
      plain(res, 404, 'not found');
    });
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    for (const i of [this.gitspaces, this.infras, this.secrets]) i.start();
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res);
    };
    this.server = this.o.tls ? createHttpsServer({ cert: this.o.tls.cert, key: this.o.tls.key }, handler) : createHttpServer(handler);
    this.server.headersTimeout = 20_000;
    this.server.requestTimeout = 0; // long-lived streams (IDE downloads, event streams)
    this.server.keepAliveTimeout = 65_000;
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head);
    });
    this.server.on('clientError', (_e, socket) => {
      refuseUpgrade(socket, 400);
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.o.port, this.o.address ?? '0.0.0.0', resolve);
    });
    this.activity.start();
    await Promise.all([this.gitspaces.waitForSync(), this.infras.waitForSync(), this.secrets.waitForSync()]);
    this.ready = true;
    this.o.log.info('gateway ready', { port: this.port, tls: Boolean(this.o.tls), gitspaces: this.routes.size });
    if (this.bundles) {
      const versions = await this.bundles.versions();
      if (versions.length) this.o.log.info('serving agent bundles', { dir: this.bundles.dir, versions });
      else this.o.log.warn('no agent bundles to serve: the directory has no manifest.json', { dir: this.bundles.dir });
    }
  }

  /**
   * Graceful drain: not ready at once, still serving for `drainDelayMs` (endpoints and load
   * balancers take the replica out), then no new connections, requests in flight finish (bounded
   * by `drainMs`), and upgraded connections close last.
   */
  async stop(): Promise<void> {
    this.draining = true;
    if (this.ready) await new Promise((r) => setTimeout(r, this.o.drainDelayMs));
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
    this.server?.closeIdleConnections();
    const deadline = Date.now() + this.o.drainMs;
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.upgraded) s.destroy();
    for (const ws of this.wss.clients) ws.terminate();
    this.server?.closeAllConnections();
    await closed;
    await this.activity.stop();
    for (const i of [this.gitspaces, this.infras, this.secrets]) i.stop();
    this.proxy.agent.destroy();
  }

  /** Labelled metric children, looked up once: label hashing per request is measurable here. */
  private readonly children = new Map<string, { count: () => void; observe: (s: number) => void }>();

  private observeRequest(hostClass: HostClass, code: number, seconds: number): void {
    const key = `${hostClass} ${code}`;
    let c = this.children.get(key);
    if (!c) {
      const counter = this.metrics.requests.labels(hostClass, String(code));
      const histogram = this.metrics.duration.labels(hostClass);
      c = { count: () => { counter.inc(); }, observe: (s) => { histogram.observe(s); } };
      this.children.set(key, c);
    }
    c.count();
    c.observe(seconds);
  }

  // --- authentication and authorisation ----------------------------------------------------------

  /** Static key sets by Secret: the read (or the one in flight) and when it started. */
  private readonly staticKeys = new Map<string, { at: number; read: Promise<{ keys: JSONWebKeySet; version: string }> }>();

  /** The infra's issuer, with its static key set read from its Secret (once per 30 s, however many requests ask). */
  private async issuer(t: Target): Promise<IssuerConfig | undefined> {
    const auth = this.routes.issuerFor(t);
    if (!auth?.jwksSecretRef) return auth;
    const ref = auth.jwksSecretRef;
    const ns = ref.namespace ?? this.o.namespace;
    const key = ref.key ?? 'jwks.json';
    const id = `${ns}/${ref.name}/${key}`;
    let hit = this.staticKeys.get(id);
    if (!hit || Date.now() - hit.at > 30_000) {
      hit = { at: Date.now(), read: this.readKeySet(ns, ref.name, key, id) };
      this.staticKeys.set(id, hit);
    }
    const { keys, version } = await hit.read;
    return { issuer: auth.issuer, audience: auth.audience, keys, keysVersion: version };
  }

  private async readKeySet(ns: string, name: string, key: string, id: string): Promise<{ keys: JSONWebKeySet; version: string }> {
    try {
      const s = await this.o.client.get<SecretObject>(SECRETS, ns, name);
      const raw = s.data?.[key];
      // Without readable keys nothing verifies: an empty set, not a fallback to fetching.
      return { keys: raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as JSONWebKeySet) : { keys: [] }, version: `${id}@${s.metadata.resourceVersion ?? ''}` };
    } catch (e) {
      this.o.log.warn('cannot read the static key set', { secret: id, error: e });
      return { keys: { keys: [] }, version: `${id}@unreadable` };
    }
  }

  private authFailed(client: string, reason: AuthFailureReason): void {
    this.limiter.fail(client);
    this.metrics.authFailures.inc({ reason });
  }

  /**
   * Who the token belongs to, if they may use this Gitspace (or this forwarded port); else the
   * status to answer. A public port needs no token, and neither does a CORS preflight to a port
   * (browsers never send credentials with one); a shared port takes any valid token of the issuer.
   */
  private async authorise(token: string | undefined, m: Match, client: string, req?: IncomingMessage): Promise<Identity | number> {
    const t = m.target;
    if (m.port && (m.port.visibility === 'public' || (req && isPreflight(req)))) return ANONYMOUS;
    if (this.limiter.blocked(client)) {
      this.metrics.authFailures.inc({ reason: 'rate_limited' });
      return 429;
    }
    if (!token) {
      this.authFailed(client, 'missing');
      return 401;
    }
    const issuer = await this.issuer(t);
    if (!issuer) {
      this.authFailed(client, 'no_issuer');
      return 401;
    }
    let id: Identity;
    try {
      id = await this.verifier.verify(token, issuer);
    } catch (e) {
      const reason = e instanceof AuthError ? e.reason : 'malformed';
      this.authFailed(client, reason);
      return reason === 'jwks_unavailable' ? 503 : 401;
    }
    if (m.port?.visibility !== 'shared' && id.sub !== t.owner && !t.sharedWith.includes(id.sub)) {
      this.metrics.authFailures.inc({ reason: 'not_owner' });
      return 403;
    }
    return id;
  }

  private hop(req: IncomingMessage, m: Match, id: Identity): Hop | undefined {
    const t = m.target;
    if (!t.upstream || !t.secret) return undefined;
    return {
      upstream: t.upstream, path: m.path, secret: t.secret, user: id.sub, clientIP: clientIP(req), host: req.headers.host ?? m.host,
      proto: this.o.tls || req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http',
      ...(m.kind === 'path' ? { prefix: m.cookiePath.replace(/\/$/, '') } : {}),
      ...(m.port ? { port: m.port.number } : {}),
    };
  }

  // --- HTTP ----------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    let hostClass: HostClass = 'gateway';
    this.inflight++;
    res.on('close', () => {
      this.inflight--;
      this.observeRequest(hostClass, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
    if (badRequest(req)) {
      plain(res, 400);
      return;
    }
    const url = req.url ?? '/';
    // Agent bundles: on any host (a Gitspace's too), before routing, without authentication.
    if (url.startsWith(AGENT_BUNDLE_PREFIX)) {
      if (this.bundles) this.bundles.handle(req, res);
      else plain(res, 404, 'no such agent bundle');
      return;
    }
    const m = this.routes.match(normaliseHost(req.headers.host), url);
    if (!m) {
      if (RouteTable.isGitspacePath(url)) plain(res, 404);
      else this.app(req, res);
      return;
    }
    hostClass = m.kind;
    void this.handleGitspace(req, res, m).catch((e: unknown) => {
      this.o.log.warn('request failed', { error: e });
      plain(res, 502);
    });
  }

  private async handleGitspace(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const client = clientIP(req);
    const query = m.path.includes('?') ? new URLSearchParams(m.path.slice(m.path.indexOf('?') + 1)) : undefined;
    const exchange = query?.get('token');
    // (A public port needs no session: its token, if any, is simply not passed on.)
    if (query && exchange !== undefined && exchange !== null && (req.method === 'GET' || req.method === 'HEAD') && m.port?.visibility !== 'public') {
      await this.exchange(req, res, m, exchange, query);
      return;
    }
    const bearerToken = bearer(req);
    const who = await this.authorise(bearerToken ?? cookieToken(req), m, client, req);
    if (typeof who === 'number') {
      plain(res, who, undefined, who === 401 ? { 'www-authenticate': 'Bearer realm="gitspaces"' } : {});
      return;
    }
    if (m.path.startsWith('/.gitspaces/')) {
      plain(res, 404, 'not found');
      return;
    }
    const hop = this.hop(req, m, who);
    if (!hop) {
      notRunning(res, m.target.name, m.target.phase === 'Running' ? 'Starting' : m.target.phase);
      return;
    }
    this.activity.touch(m.target);
    this.proxy.forward(req, res, hop, () => {
      plain(res, 502);
    });
  }

  /**
   * `?token=…` on a navigation: verify it, set it as an HttpOnly session cookie scoped to this
   * Gitspace's host (or path), and redirect to the same URL without it — the token never stays in
   * the address bar, history or a Referer.
   */
  private async exchange(req: IncomingMessage, res: ServerResponse, m: Match, token: string, query: URLSearchParams): Promise<void> {
    const who = await this.authorise(token, m, clientIP(req));
    if (typeof who === 'number') {
      plain(res, who);
      return;
    }
    query.delete('token');
    const rest = query.toString();
    const base = (req.url ?? '/').split('?')[0] ?? '/';
    const maxAge = Math.max(0, Math.floor(who.exp - Date.now() / 1000));
    res.writeHead(303, {
      location: rest ? `${base}?${rest}` : base,
      'set-cookie': `${SESSION_COOKIE}=${token}; Path=${m.cookiePath}; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Lax`,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'content-length': '0',
    });
    res.end();
  }

  // --- upgrades (WebSocket, SSH) -------------------------------------------------------------------

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (badRequest(req)) {
      refuseUpgrade(socket, 400);
      return;
    }
    const m = this.routes.match(normaliseHost(req.headers.host), req.url ?? '/');
    if (!m) {
      refuseUpgrade(socket, 404);
      return;
    }
    void (async () => {
      const who = await this.authorise(bearer(req) ?? cookieToken(req), m, clientIP(req));
      if (typeof who === 'number') {
        refuseUpgrade(socket, who);
        return;
      }
      const hop = this.hop(req, m, who);
      if (!hop) {
        refuseUpgrade(socket, 503);
        return;
      }
      const track = {
        onOpen: () => {
          this.upgraded.add(socket);
          this.metrics.websockets.inc();
        },
        onClose: () => {
          if (this.upgraded.delete(socket)) this.metrics.websockets.dec();
        },
        onData: () => {
          this.activity.touch(m.target);
        },
      };
      this.activity.touch(m.target);
      if ((m.path.split('?')[0] ?? '') === GATEWAY_SSH_PATH) this.sshBridge(req, socket, head, hop, track);
      else this.proxy.upgrade(req, socket, head, hop, { idleMs: this.o.idleMs, ...track, onError: (status) => { refuseUpgrade(socket, status); } });
    })().catch(() => {
      refuseUpgrade(socket, 502);
    });
  }

  /**
   * SSH for desktop IDEs: the client's WebSocket (from `gitspaces ssh`, an OpenSSH ProxyCommand)
   * carries the SSH bytes; the gateway joins it to the agent's `/v1/ssh` upgrade, behind the
   * Gitspace's secret. The VM needs no SSH port open to anything but the agent's HTTP port.
   */
  private sshBridge(req: IncomingMessage, socket: Duplex, head: Buffer, hop: Hop, track: { onOpen(): void; onClose(): void; onData(): void }): void {
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
    up.on('upgrade', (_r, agentSocket, agentHead: Buffer) => {
      up.setTimeout(0);
      this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        track.onOpen();
        // Bytes the agent sent right after its 101 (the SSH banner) came with the response.
        if (agentHead.length) ws.send(agentHead);
        let closed = false;
        const close = () => {
          if (closed) return;
          closed = true;
          agentSocket.destroy();
          ws.terminate();
          track.onClose();
        };
        // Every byte passes through agentSocket, whose timeout both reads and writes reset.
        agentSocket.setTimeout(this.o.idleMs, close);
        ws.on('message', (data: Buffer) => {
          track.onData();
          agentSocket.write(data);
        });
        agentSocket.on('data', (d: Buffer) => {
          ws.send(d);
        });
        ws.on('close', close);
        ws.on('error', close);
        agentSocket.on('close', close);
        agentSocket.on('error', close);
      });
    });
    up.end();
  }
}
