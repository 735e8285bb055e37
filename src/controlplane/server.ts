// The reference control plane (`gitspaces control-plane`): the other side of the delegate
// protocol (docs/delegate-protocol.md) and a small user API — create, list, start, stop and delete
// Gitspaces, and short-lived access tokens for the gateway (JWT signed with its own key, published
// at /.well-known/jwks.json) with refresh tokens (tokens.ts). Users authenticate with API tokens given at start; the delegate with
// its own token. State lives in SQLite (store.ts) and survives restarts.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { MIN_TOKEN_LENGTH } from './users.ts';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { Store, type GitspaceRecord, type GitspaceSpecInput, type TaskKind, type TaskRecord } from './store.ts';
import { Tokens } from './tokens.ts';

export interface ControlPlaneOptions {
  dbPath: string;
  port: number;
  address?: string;
  /** The URL the gateway knows this issuer by (`iss`, and where the JWKS is). */
  issuer: string;
  audience?: string;
  delegateToken: string;
  /** API token → user (the `sub` of their access tokens). */
  users: Record<string, string>;
  /** Access token lifetime (default 900). */
  tokenTtlSeconds?: number;
  /** Refresh token lifetime: each refresh hands out a new one for this long again (default 12 h). */
  refreshTtlSeconds?: number;
  /** The clock, in milliseconds since the epoch, for tokens (tests move it). */
  now?: () => number;
  /** An acknowledged task without a result is offered again after this long. */
  redeliverMs?: number;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
}

export interface DelegateTask {
  id: string;
  gitspaceId: string;
  kind: TaskKind;
  revision: number;
  owner: string;
  spec: GitspaceSpecInput & { state: string };
  deleted: boolean;
}

const ID = /^[a-z][a-z0-9]{2,30}$/;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function fail(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

export class ControlPlane {
  readonly store: Store;
  private readonly o: Required<Omit<ControlPlaneOptions, 'address' | 'tls'>> & Pick<ControlPlaneOptions, 'address' | 'tls'>;
  private server: Server | undefined;
  private readonly waiters = new Set<() => void>();
  private signing: { kid: string; key: CryptoKey | Uint8Array; jwk: JWK } | undefined;
  private readonly tokens: Tokens;

  constructor(o: ControlPlaneOptions) {
    // An empty or short token would match a bare "Bearer " (or be guessed): refused, whoever builds us.
    if (Object.keys(o.users).some((t) => t.length < MIN_TOKEN_LENGTH) || o.delegateToken.length < MIN_TOKEN_LENGTH) {
      throw new Error(`control plane: every user token and the delegate token need at least ${String(MIN_TOKEN_LENGTH)} characters`);
    }
    this.o = { audience: 'gitspaces', tokenTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: Date.now, redeliverMs: 60_000, ...o };
    for (const k of ['tokenTtlSeconds', 'refreshTtlSeconds'] as const) {
      if (!Number.isInteger(this.o[k]) || this.o[k] < 1) throw new Error(`control plane: ${k} must be a positive whole number of seconds`);
    }
    this.store = new Store(o.dbPath);
    const subjects = new Set(Object.values(o.users));
    this.tokens = new Tokens(this.store, this.o, () => this.key(), (sub) => subjects.has(sub));
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** The token signing key: made once and kept in the store, so tokens outlive restarts. */
  private async key(): Promise<NonNullable<ControlPlane['signing']>> {
    if (this.signing) return this.signing;
    let stored = this.store.setting('signing-key');
    if (!stored) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(privateKey)), kid: randomBytes(8).toString('hex'), alg: 'ES256' };
      stored = JSON.stringify(jwk);
      this.store.setSetting('signing-key', stored);
    }
    const priv = JSON.parse(stored) as JWK;
    const { d: _private, ...pub } = priv;
    this.signing = { kid: priv.kid ?? '', key: await importJWK(priv, 'ES256'), jwk: { ...pub, use: 'sig' } };
    return this.signing;
  }

  private notify(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private taskView(t: TaskRecord): DelegateTask | undefined {
    const g = this.store.getGitspace(t.gitspaceId);
    if (!g) return undefined;
    return { id: t.id, gitspaceId: g.id, kind: t.kind, revision: t.revision, owner: g.owner, spec: { ...g.spec, state: g.state }, deleted: g.deleted };
  }

  private gitspaceView(g: GitspaceRecord) {
    return { id: g.id, owner: g.owner, spec: g.spec, state: g.state, deleted: g.deleted, revision: g.revision, status: g.status ?? {} };
  }

  app(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    // Before the 1 MB JSON parser: the unauthenticated token endpoints parse small bodies only.
    app.use(this.tokens.router());
    app.use(express.json({ limit: '1mb' }));

    app.get('/.well-known/jwks.json', (_req, res, next) => {
      this.key().then((k) => res.json({ keys: [k.jwk] }), next);
    });
    app.get('/healthz', (_req, res) => {
      res.type('text/plain').send('ok\n');
    });

    // --- users ---------------------------------------------------------------------------------
    const user = (req: Request, res: Response, next: NextFunction) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const sub = Object.entries(this.o.users).find(([t]) => sameSecret(t, token))?.[1];
      if (!sub) {
        fail(res, 401, 'unauthenticated', 'an API token is required');
        return;
      }
      res.locals.user = sub;
      next();
    };
    const own = (req: Request, res: Response): GitspaceRecord | undefined => {
      const g = this.store.getGitspace(String(req.params.id));
      if (!g || g.deleted || g.owner !== res.locals.user) {
        fail(res, 404, 'not_found', 'no such Gitspace');
        return undefined;
      }
      return g;
    };
    app.post('/api/v1/gitspaces', user, (req, res) => {
      const b = (req.body ?? {}) as Partial<GitspaceSpecInput> & { id?: string; state?: string };
      const problem =
        typeof b.infra !== 'string' || !b.infra ? 'infra is required'
        : typeof b.repository?.url !== 'string' || !b.repository.url ? 'repository.url is required'
        : typeof b.machineType !== 'string' || !b.machineType ? 'machineType is required'
        : b.id !== undefined && !ID.test(b.id) ? 'id must be 3-31 lowercase letters and digits, starting with a letter'
        : b.ports !== undefined && (!Array.isArray(b.ports) || !b.ports.every((p) => Number.isInteger(p.port))) ? 'ports must be a list of { port, name?, visibility?, protocol? }'
        : undefined;
      if (problem) {
        fail(res, 400, 'invalid', problem);
        return;
      }
      const id = b.id ?? `gs${randomBytes(6).toString('hex')}`;
      if (this.store.getGitspace(id)) {
        fail(res, 409, 'conflict', `Gitspace ${id} exists`);
        return;
      }
      const spec: GitspaceSpecInput = {
        infra: b.infra ?? '', repository: { url: b.repository?.url ?? '', ...(b.repository?.ref ? { ref: b.repository.ref } : {}) }, machineType: b.machineType ?? '',
        ...(b.ide ? { ide: b.ide } : {}), ...(b.sshPublicKeys ? { sshPublicKeys: b.sshPublicKeys } : {}), ...(b.ports ? { ports: b.ports } : {}),
      };
      const owner = String(res.locals.user);
      const { gitspace, task } = this.store.change(id, 'apply', () => ({ id, owner, spec, state: b.state === 'Stopped' ? 'Stopped' : 'Running', deleted: false, revision: 0, createdAt: new Date().toISOString() }));
      this.notify();
      res.status(201).json({ ...this.gitspaceView(gitspace), task: task.id });
    });
    app.get('/api/v1/gitspaces', user, (_req, res) => {
      res.json({ gitspaces: this.store.listGitspaces(String(res.locals.user)).map((g) => this.gitspaceView(g)) });
    });
    app.get('/api/v1/gitspaces/:id', user, (req, res) => {
      const g = own(req, res);
      if (g) res.json(this.gitspaceView(g));
    });
    const desire = (kind: TaskKind) => (req: Request, res: Response) => {
      const g = own(req, res);
      if (!g) return;
      const { gitspace, task } = this.store.change(g.id, kind, (cur) => ({ ...(cur ?? g), ...(kind === 'start' ? { state: 'Running' as const } : kind === 'stop' ? { state: 'Stopped' as const } : { deleted: true }) }));
      this.notify();
      res.status(202).json({ ...this.gitspaceView(gitspace), task: task.id });
    };
    app.post('/api/v1/gitspaces/:id/start', user, desire('start'));
    app.post('/api/v1/gitspaces/:id/stop', user, desire('stop'));
    app.delete('/api/v1/gitspaces/:id', user, desire('delete'));
    app.get('/api/v1/tasks/:id', user, (req, res) => {
      const t = this.store.getTask(String(req.params.id));
      const g = t ? this.store.getGitspace(t.gitspaceId) : undefined;
      if (!t || (g && g.owner !== res.locals.user)) {
        fail(res, 404, 'not_found', 'no such task');
        return;
      }
      res.json(t);
    });
    app.post('/api/v1/gitspaces/:id/token', user, (req, res, next) => {
      const g = own(req, res);
      if (!g) return;
      this.tokens.issue(g).then((t) => {
        res.set('cache-control', 'no-store').json({ ...t, urls: (g.status?.urls as Record<string, unknown> | undefined) ?? {} });
      }, next);
    });

    // --- the delegate --------------------------------------------------------------------------
    const delegate = (req: Request, res: Response, next: NextFunction) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!sameSecret(this.o.delegateToken, token)) {
        fail(res, 401, 'unauthenticated', 'a valid delegate token is required');
        return;
      }
      next();
    };
    const d = '/api/delegate/v1';
    app.post(`${d}/register`, delegate, (req, res) => {
      const b = (req.body ?? {}) as { name?: string; version?: string; infras?: unknown };
      if (typeof b.name !== 'string' || !b.name) {
        fail(res, 400, 'invalid', 'name is required');
        return;
      }
      this.store.registerDelegate(b.name, typeof b.version === 'string' ? b.version : '', b.infras ?? []);
      res.json({ heartbeatSeconds: 10, pollSeconds: 25 });
    });
    app.post(`${d}/heartbeat`, delegate, (req, res) => {
      const name = (req.body as { name?: unknown } | undefined)?.name;
      // An unknown delegate (our store was lost) is asked to register and resync.
      res.json({ resync: typeof name !== 'string' || !this.store.heartbeat(name) });
    });
    app.get(`${d}/tasks`, delegate, (req, res) => {
      const wait = Math.min(30, Math.max(0, Number(req.query.wait ?? 25))) * 1000;
      const answer = () => {
        const tasks = this.store.openTasks(this.o.redeliverMs).map((t) => this.taskView(t)).filter((t) => t !== undefined);
        if (tasks.length || res.writableEnded) {
          if (!res.writableEnded) res.json({ tasks });
          return true;
        }
        return false;
      };
      if (answer()) return;
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        if (!res.writableEnded) res.json({ tasks: [] });
      }, wait);
      const wake = () => {
        clearTimeout(timer);
        if (!answer()) {
          this.waiters.add(wake);
        }
      };
      this.waiters.add(wake);
      req.on('close', () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      });
    });
    app.post(`${d}/tasks/:id/ack`, delegate, (req, res) => {
      if (!this.store.ack(String(req.params.id))) {
        fail(res, 404, 'not_found', 'no such task');
        return;
      }
      res.status(204).end();
    });
    app.post(`${d}/tasks/:id/result`, delegate, (req, res) => {
      const b = (req.body ?? {}) as { outcome?: string; reason?: string; message?: string };
      if (b.outcome !== 'succeeded' && b.outcome !== 'failed') {
        fail(res, 400, 'invalid', 'outcome must be succeeded or failed');
        return;
      }
      const before = this.store.getTask(String(req.params.id));
      if (!before) {
        fail(res, 404, 'not_found', 'no such task');
        return;
      }
      if (before.state === 'done' && before.outcome !== b.outcome && before.reason !== 'Superseded') {
        fail(res, 409, 'conflict', `the task already ${before.outcome ?? 'finished'}`);
        return;
      }
      const t = this.store.result(before.id, b.outcome, b.reason, b.message);
      if (t?.kind === 'delete' && t.outcome === 'succeeded') this.store.purge(t.gitspaceId);
      res.status(204).end();
    });
    app.post(`${d}/status`, delegate, (req, res) => {
      const reports = ((req.body ?? {}) as { reports?: { gitspaceId?: string }[] }).reports;
      if (!Array.isArray(reports)) {
        fail(res, 400, 'invalid', 'reports must be a list');
        return;
      }
      for (const r of reports) {
        if (typeof r.gitspaceId !== 'string') continue;
        // Events accumulate (the last 50); everything else is the latest report.
        const before = this.store.getGitspace(r.gitspaceId)?.status?.events;
        const added = (r as { events?: unknown }).events;
        const events = [...(Array.isArray(before) ? (before as unknown[]) : []), ...(Array.isArray(added) ? (added as unknown[]) : [])].slice(-50);
        this.store.setStatus(r.gitspaceId, { ...r, events });
      }
      res.status(204).end();
    });
    app.get(`${d}/gitspaces`, delegate, (_req, res) => {
      res.json({
        gitspaces: this.store.listGitspaces().map((g) => {
          const t = this.store.openTaskOf(g.id);
          return { gitspaceId: g.id, owner: g.owner, spec: { ...g.spec, state: g.state }, deleted: g.deleted, revision: g.revision, ...(t ? { openTask: { id: t.id, kind: t.kind, revision: t.revision } } : {}) };
        }),
      });
    });

    app.use((_req: Request, res: Response) => {
      fail(res, 404, 'not_found', 'not found');
    });
    // Errors: a short body, never a stack trace.
    app.use((e: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const status = (e as { status?: number }).status ?? 500;
      fail(res, status, status < 500 ? 'invalid' : 'unavailable', status < 500 ? 'the request is not valid JSON or too large' : 'internal error');
    });
    return app;
  }

  async start(): Promise<void> {
    await this.key();
    const app = this.app();
    const server = this.o.tls ? createHttpsServer({ cert: this.o.tls.cert, key: this.o.tls.key }, app) : createHttpServer(app);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.address ?? '0.0.0.0', resolve);
    });
  }

  async stop(): Promise<void> {
    for (const w of this.waiters) w();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
    this.store.close();
  }
}
