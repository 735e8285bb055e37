// The gateway: one stateless process (run N replicas) in front of every Gitspace. It routes by
// Host or path (routes.ts), authenticates the user (access.ts: Bearer token, a cookie set by a
// one-time `?token=` exchange, or a single sign-on session — sso/), lets through only the
// Gitspace's owner and those it is shared with, and proxies HTTP and WebSocket (proxy.ts) and
// SSH-over-WebSocket (ssh-bridge.ts) to the agent with the Gitspace's hop token (hop-key.ts),
// writing an audit trail (audit.ts, connections.ts). Its own endpoints (/healthz, /readyz,
// /metrics) are an express app on any host that is not a Gitspace's. This file is the server:
// limits (timeouts, a connection cap), dispatch, metrics and the graceful drain.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express from 'express';
import { Counter, Histogram, Registry } from 'prom-client';
import { WebSocketServer } from 'ws';
import { GATEWAY_SSH_PATH, GITSPACE_INFRAS, GITSPACES, type Gitspace, type GitspaceInfra } from '../api/index.ts';
import { Informer } from '../runtime/informer.ts';
import { DEFAULTS, type GatewayOptions, type Settings } from './options.ts';
export type { GatewayOptions } from './options.ts';
import { Access, ANONYMOUS, credential, sameOrigin, sessionCookie, type Credential } from './access.ts';
import { ActivityReporter } from './activity.ts';
import { ClientAddresses } from './addresses.ts';
import { AGENT_BUNDLE_PREFIX, AgentBundles } from './agent-bundles.ts';
import { Audit } from './audit.ts';
import { TokenVerifier, type Identity } from './auth.ts';
import { Connections } from './connections.ts';
import { HopKey } from './hop-key.ts';
import { MESSAGES, notRunning, plain, refuseUpgrade } from './pages.ts';
import { Proxy, type Hop } from './proxy.ts';
import { normaliseHost, RouteTable, type Match } from './routes.ts';
import { badRequest, isPreflight, unsafe } from './request-checks.ts';
import { gitspacePath, sshBridge } from './ssh-bridge.ts';
import { isNavigation, Login } from './sso/login.ts';
import { OidcClients } from './sso/oidc.ts';
import { Sealer } from './sso/seal.ts';
import { SingleSignOn } from './sso/sso.ts';

type HostClass = 'host' | 'path' | 'port' | 'gateway';


/** What use of this route is, for the Gitspace's last-activity source: a forwarded port or the IDE. */
function sourceOf(m: Match): 'port' | 'ide' {
  return m.kind === 'port' ? 'port' : 'ide';
}

/** A refusal: the status and, where the standard text would mislead, what to say. */
interface Refusal {
  status: number;
  message?: string;
}

export class Gateway {
  private readonly o: Settings;
  readonly gitspaces: Informer<Gitspace>;
  readonly infras: Informer<GitspaceInfra>;
  readonly hopKey: HopKey;
  readonly routes: RouteTable;
  readonly verifier: TokenVerifier;
  readonly proxy = new Proxy();
  readonly activity: ActivityReporter;
  readonly bundles: AgentBundles | undefined;
  readonly registry = new Registry();
  readonly sso: SingleSignOn;
  private readonly login: Login;
  private readonly connections: Connections;
  private readonly access: Access;
  private readonly addresses: ClientAddresses;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  private sealer: { key: string; sealer: Sealer } | undefined;
  /** Client connections over the cap: each gets one 503 and is closed. */
  private readonly overCap = new WeakSet<Duplex>();
  private openSockets = 0;
  private server: Server | undefined;
  private ready = false;
  private draining = false;
  private inflight = 0;
  private readonly app = express();
  private readonly metrics: {
    requests: Counter<'host_class' | 'code'>;
    duration: Histogram<'host_class'>;
  };

  constructor(o: GatewayOptions) {
    this.o = { ...DEFAULTS, ...o };
    const onError = (e: unknown) => {
      o.log.warn('watch failed; reconnecting', { error: e });
    };
    this.gitspaces = new Informer<Gitspace>(o.client, GITSPACES, { onError });
    this.infras = new Informer<GitspaceInfra>(o.client, GITSPACE_INFRAS, { onError });
    this.hopKey = new HopKey(o.client, this.o.namespace, onError);
    this.routes = new RouteTable(this.gitspaces, this.infras, this.hopKey);
    this.routes.onConflict = (host, keys) => {
      o.log.warn('two Gitspaces would be served at one host: neither is', { host, gitspaces: keys });
    };
    this.verifier = new TokenVerifier({ jwksCooldownMs: this.o.jwksCooldownMs });
    this.activity = new ActivityReporter(this.o.activityIntervalMs);
    this.addresses = new ClientAddresses(this.o.trustedProxies);
    this.bundles = o.agentBundles ? new AgentBundles(o.agentBundles, o.log) : undefined;
    const registers = [this.registry];
    this.metrics = {
      requests: new Counter({ name: 'gitspaces_gateway_requests_total', help: 'Requests by how the Gitspace was addressed and status code', labelNames: ['host_class', 'code'], registers }),
      duration: new Histogram({ name: 'gitspaces_gateway_request_duration_seconds', help: 'Time to the end of the response', labelNames: ['host_class'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers }),
    };
    const authFailures = new Counter({ name: 'gitspaces_gateway_auth_failures_total', help: 'Refused authentications by reason', labelNames: ['reason'], registers });
    const loginFailures = new Counter({ name: 'gitspaces_gateway_login_failures_total', help: 'Failed single sign-on logins and hand-offs by reason', labelNames: ['reason'], registers });
    const audit = new Audit(o.audit);
    const clients = new OidcClients(o.client, this.o.namespace, o.log);
    const sealer = () => this.currentSealer();
    this.sso = new SingleSignOn({ kube: o.client, namespace: this.o.namespace, log: o.log, infras: this.infras, clients, audit, sealer, replica: this.o.replica, onError });
    this.login = new Login({ sso: this.sso, clients, routes: this.routes, audit, log: o.log, sealer, loginFailures });
    this.connections = new Connections({
      audit, registry: this.registry,
      sessionAlive: (id) => this.sso.alive(id),
      sessionInUse: (id) => { this.sso.touch(id); },
      onUse: (m, kind) => { this.activity.touch(m.target, kind === 'ssh' ? 'ssh' : sourceOf(m)); },
    });
    this.sso.sessions.onEnded = (s) => { this.connections.endSession(s.id); };
    this.access = new Access({
      client: o.client, log: o.log, routes: this.routes, verifier: this.verifier, namespace: this.o.namespace,
      authFailureBurst: this.o.authFailureBurst, authFailureRate: this.o.authFailureRate, authFailures, sso: this.sso, audit,
    });
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

  private get informers(): Informer<never>[] {
    return [this.gitspaces, this.infras, this.hopKey.informer, this.sso.sessions.informer] as unknown as Informer<never>[];
  }

  /** Seals for single sign-on, under a key derived from the hop key (all replicas have it). */
  private currentSealer(): Sealer | undefined {
    const key = this.hopKey.key();
    if (!key) return undefined;
    if (this.sealer?.key !== key) this.sealer = { key, sealer: new Sealer(key) };
    return this.sealer.sealer;
  }

  async start(): Promise<void> {
    for (const i of this.informers) i.start();
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res);
    };
    // Node checks the header and request deadlines this often (its default, 30 s, would stretch them).
    const connectionsCheckingInterval = Math.max(100, Math.min(5_000, Math.floor(this.o.headersTimeoutMs / 4)));
    const server = this.o.tls
      ? createHttpsServer({ cert: this.o.tls.cert, key: this.o.tls.key, connectionsCheckingInterval }, handler)
      : createHttpServer({ connectionsCheckingInterval }, handler);
    this.server = server;
    // Slow clients cannot hold connections: headers within headersTimeoutMs, a request (its body;
    // not the response, which may stream for long) within requestTimeoutMs, no silence over httpIdleMs.
    server.headersTimeout = this.o.headersTimeoutMs;
    server.requestTimeout = Math.max(this.o.requestTimeoutMs, this.o.headersTimeoutMs);
    server.timeout = this.o.httpIdleMs;
    server.keepAliveTimeout = Math.min(65_000, this.o.httpIdleMs);
    // Past the cap a connection gets one 503 and is closed; far past it, Node drops it unanswered.
    server.maxConnections = this.o.maxConnections + 256;
    server.on(this.o.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.openSockets++;
      if (this.openSockets > this.o.maxConnections) this.overCap.add(s);
      s.once('close', () => {
        this.openSockets--;
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head);
    });
    server.on('clientError', (_e, socket) => {
      refuseUpgrade(socket, 400);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.address ?? '0.0.0.0', resolve);
    });
    this.activity.start();
    this.sso.start(this.o.sessionCheckMs);
    this.connections.start(this.o.sessionCheckMs);
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    this.ready = true;
    this.o.log.info('gateway ready', { port: this.port, tls: Boolean(this.o.tls), hosts: this.routes.size, hopKey: this.hopKey.key() !== undefined });
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
    this.sso.stop();
    this.connections.closeAll();
    for (const ws of this.wss.clients) ws.terminate();
    this.server?.closeAllConnections();
    await closed;
    await this.activity.stop();
    for (const i of this.informers) i.stop();
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

  private hop(req: IncomingMessage, m: Match, id: Identity, secure: boolean): Hop | undefined {
    const t = m.target;
    if (!t.upstream || !t.secret) return undefined;
    return {
      upstream: t.upstream, path: m.path, secret: t.secret, user: id.sub, clientIP: this.addresses.client(req), host: req.headers.host ?? m.host,
      proto: secure ? 'https' : 'http',
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
    if (this.overCap.has(req.socket)) {
      plain(res, 503, MESSAGES.busy, { connection: 'close', 'retry-after': '5' });
      return;
    }
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
    const host = normaliseHost(req.headers.host);
    const m = this.routes.match(host, url);
    const failed = (e: unknown) => {
      this.o.log.warn('request failed', { error: e });
      plain(res, 502);
    };
    if (!m) {
      const loginInfra = url.startsWith('/.gitspaces/') ? this.sso.loginHostOf(host) : undefined;
      if (loginInfra) {
        void this.login.loginHost(req, res, loginInfra, this.addresses.client(req), this.addresses.secure(req, Boolean(this.o.tls))).then((done) => {
          if (!done) plain(res, 404, 'not found');
        }, failed);
      } else if (RouteTable.isGitspacePath(url)) plain(res, 404);
      else this.app(req, res);
      return;
    }
    hostClass = m.kind;
    void this.handleGitspace(req, res, m).catch(failed);
  }

  private async handleGitspace(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const client = this.addresses.client(req);
    const secure = this.addresses.secure(req, Boolean(this.o.tls));
    const isPublic = m.port?.visibility === 'public';
    // Browsers send a preflight without credentials: only a public port's own server may answer it.
    if (m.port && !isPublic && isPreflight(req)) {
      plain(res, 403, MESSAGES.preflight);
      return;
    }
    const query = m.path.includes('?') ? new URLSearchParams(m.path.slice(m.path.indexOf('?') + 1)) : undefined;
    const exchange = query?.get('token');
    // (A public port needs no session: its token, if any, is simply not passed on.)
    if (query && exchange !== undefined && exchange !== null && (req.method === 'GET' || req.method === 'HEAD') && !isPublic) {
      await this.access.exchange(req, res, m, exchange, query, client, secure);
      return;
    }
    const sso = this.sso.enabled(m.target.infra);
    if (sso && (await this.login.gitspaceHost(req, res, m, client, secure))) return;
    const cred = credential(req, sessionCookie(m, secure));
    const who = await this.admit(req, m, cred, client, secure, false);
    if ('status' in who) {
      // A browser without a (live) session signs in first; scripts and API clients get the status.
      if (who.status === 401 && sso && isNavigation(req)) this.login.toLogin(req, res, m, secure);
      else plain(res, who.status, who.message, who.status === 401 ? { 'www-authenticate': 'Bearer realm="gitspaces"' } : who.status === 503 ? { 'retry-after': '5' } : {});
      return;
    }
    if (m.path.startsWith('/.gitspaces/')) {
      gitspacePath(res, m);
      return;
    }
    const hop = this.hop(req, m, who, secure);
    if (!hop) {
      notRunning(res, m.target.name, m.target.phase === 'Running' ? 'Starting' : m.target.phase);
      return;
    }
    // Anonymous visitors of a public port do not keep a Gitspace from its idle stop.
    if (who !== ANONYMOUS) {
      this.activity.touch(m.target, sourceOf(m));
      this.connections.seen(m, who);
    }
    this.proxy.forward(req, res, hop, () => {
      plain(res, 502);
    });
  }

  /**
   * The checks HTTP and upgrades share: a cookie only from this very origin (another site's page
   * can make a browser send it), a user who may use this Gitspace, and a hop key to reach it.
   * Returns who it is, or how to refuse.
   */
  private async admit(req: IncomingMessage, m: Match, cred: Credential, client: string, secure: boolean, upgrade: boolean): Promise<Identity | Refusal> {
    const isPublic = m.port?.visibility === 'public';
    if (cred.from === 'cookie' && !isPublic && (upgrade || unsafe(req.method)) && !sameOrigin(req, secure)) return { status: 403, message: MESSAGES.crossOrigin };
    const who = await this.access.authorise(cred.token, m, client);
    if (typeof who === 'number') return { status: who };
    if (!m.target.secret && !m.path.startsWith('/.gitspaces/')) return { status: 503, message: MESSAGES.noHopKey };
    return who;
  }

  // --- upgrades (WebSocket, SSH) -------------------------------------------------------------------

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.overCap.has(req.socket)) {
      refuseUpgrade(socket, 503, MESSAGES.busy);
      return;
    }
    if (badRequest(req)) {
      refuseUpgrade(socket, 400);
      return;
    }
    const m = this.routes.match(normaliseHost(req.headers.host), req.url ?? '/');
    if (!m) {
      refuseUpgrade(socket, 404);
      return;
    }
    const ssh = (m.path.split('?')[0] ?? '') === GATEWAY_SSH_PATH;
    // `gitspaces ssh` dials the Gitspace's own host: a port's host is its dev server's, a path route the IDE's.
    if (ssh && m.kind !== 'host') {
      refuseUpgrade(socket, 404, MESSAGES.notOnThisHost);
      return;
    }
    const secure = this.addresses.secure(req, Boolean(this.o.tls));
    const client = this.addresses.client(req);
    void (async () => {
      const who = await this.admit(req, m, credential(req, sessionCookie(m, secure)), client, secure, true);
      if ('status' in who) {
        this.connections.refused(ssh ? 'ssh' : 'websocket', m, client, who.status);
        refuseUpgrade(socket, who.status, who.message);
        return;
      }
      const hop = this.hop(req, m, who, secure);
      if (!hop) {
        refuseUpgrade(socket, 503);
        return;
      }
      const anonymous = who === ANONYMOUS;
      if (!anonymous) {
        this.activity.touch(m.target, ssh ? 'ssh' : sourceOf(m));
        this.connections.seen(m, who);
      }
      const hooks = this.connections.hooks(socket, ssh ? 'ssh' : 'websocket', m, who, client, this.o.idleMs, anonymous);
      if (ssh) sshBridge(this.wss, req, socket, head, hop, hooks);
      else this.proxy.upgrade(req, socket, head, hop, { ...hooks, onError: (status) => { refuseUpgrade(socket, status); } });
    })().catch(() => {
      refuseUpgrade(socket, 502);
    });
  }
}
