// Login and session: who a request is (a Bearer token, or the session cookie a one-time `?token=`
// exchange set), whether they may use this Gitspace or port, and the limits around that — a
// per-client budget of failed credentials, and the Origin check that keeps other sites from using
// a browser's cookie.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import type { JSONWebKeySet } from 'jose';
import { GROUP_PREFIX, SECRETS } from '../api/index.ts';
import { TokenBucket } from '../runtime/backoff.ts';
import type { KubeClient, KubeObject } from '../runtime/kube.ts';
import type { Logger } from '../runtime/log.ts';
import { AuthError, type AuthFailureReason, type Identity, type IssuerConfig, type TokenVerifier } from './auth.ts';
import type { Audit } from './audit.ts';
import { plain } from './pages.ts';
import { isSessionId } from './sso/sessions.ts';
import type { SingleSignOn } from './sso/sso.ts';
import type { Match, RouteTable, Target } from './routes.ts';

export const SESSION_COOKIE = 'gitspaces_session';
/** On the login host (the infra's gateway domain): the single sign-on session a second Gitspace host is handed without another login. */
export const SSO_COOKIE = 'gitspaces_sso';
/**
 * On host routes served over TLS: a `__Host-` cookie is Secure, host-only and Path=/, and a
 * browser refuses it from any other host — so a sibling host under the same domain (another
 * Gitspace's forwarded port) cannot plant or shadow it.
 */
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;

/** Who a public port's requests come from: nobody in particular. */
export const ANONYMOUS: Identity = { sub: '', exp: 0 };

export function sessionCookie(m: Match, secure: boolean): string {
  return m.kind !== 'path' && secure ? HOST_SESSION_COOKIE : SESSION_COOKIE;
}

export interface Credential {
  token: string | undefined;
  /** A cookie rides along with any request a browser makes, even one another site starts. */
  from: 'bearer' | 'cookie' | 'none';
}

export function credential(req: IncomingMessage, cookieName: string): Credential {
  const h = req.headers.authorization;
  if (h) return { token: /^Bearer\s+(\S+)$/i.exec(h)?.[1] ?? '', from: 'bearer' };
  for (const part of (req.headers.cookie ?? '').split(/;\s*/)) if (part.startsWith(`${cookieName}=`)) return { token: part.slice(cookieName.length + 1), from: 'cookie' };
  return { token: undefined, from: 'none' };
}

/** The Origin a browser sent, if any, is this very host and scheme. */
export function sameOrigin(req: IncomingMessage, secure: boolean): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).origin === new URL(`${secure ? 'https' : 'http'}://${req.headers.host ?? ''}`).origin;
  } catch {
    return false; // "null" (sandboxed frames, file:) or garbage
  }
}

/** The owner, a user sharedWith names, or a member of a group it names (group:<name>). */
export function mayUse(id: Identity, t: Pick<Target, 'owner' | 'sharedWith'>): boolean {
  // A group entry matches members only: a user whose name reads group:x (some issuers let users
  // pick their preferred_username) matches nothing.
  const user = !id.sub.startsWith(GROUP_PREFIX);
  if (user && id.sub === t.owner) return true;
  for (const s of t.sharedWith) {
    if (s.startsWith(GROUP_PREFIX)) {
      if (id.groups?.includes(s.slice(GROUP_PREFIX.length))) return true;
    } else if (user && s === id.sub) return true;
  }
  return false;
}

function claimsOf(auth: { usernameClaim?: string; groupsClaim?: string }): Pick<IssuerConfig, 'usernameClaim' | 'groupsClaim'> {
  return { ...(auth.usernameClaim ? { usernameClaim: auth.usernameClaim } : {}), ...(auth.groupsClaim ? { groupsClaim: auth.groupsClaim } : {}) };
}

/** A per-client bucket of allowed failed credentials. */
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

export interface AccessOptions {
  client: KubeClient;
  log: Logger;
  routes: RouteTable;
  verifier: TokenVerifier;
  /** Where key-set Secrets named without a namespace live (the gateway's own). */
  namespace: string;
  authFailureBurst: number;
  authFailureRate: number;
  authFailures: Counter<'reason'>;
  /** Single sign-on, whose session ids a cookie may hold instead of a token. */
  sso?: SingleSignOn;
  audit: Audit;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export class Access {
  private readonly o: AccessOptions;
  private readonly limiter: FailureLimiter;
  /** Static key sets by Secret: the read (or the one in flight) and when it started. */
  private readonly staticKeys = new Map<string, { at: number; read: Promise<{ keys: JSONWebKeySet; version: string }> }>();

  constructor(o: AccessOptions) {
    this.o = o;
    this.limiter = new FailureLimiter(o.authFailureBurst, o.authFailureRate);
  }

  /** The infra's issuer, with its static key set read from its Secret (once per 30 s, however many requests ask). */
  private async issuer(t: Target): Promise<IssuerConfig | undefined> {
    const auth = this.o.routes.issuerFor(t);
    if (!auth?.jwksSecretRef) return auth && { issuer: auth.issuer, audience: auth.audience, ...(auth.jwksURI ? { jwksURI: auth.jwksURI } : {}), ...claimsOf(auth) };
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
    return { issuer: auth.issuer, audience: auth.audience, keys, keysVersion: version, ...claimsOf(auth) };
  }

  private async readKeySet(ns: string, name: string, key: string, id: string): Promise<{ keys: JSONWebKeySet; version: string }> {
    try {
      const s = await this.o.client.get<SecretObject>(SECRETS, ns, name);
      const raw = s.data?.[key];
      // Without readable keys nothing verifies: an empty set, not a fallback to fetching.
      return { keys: raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as JSONWebKeySet) : { keys: [] }, version: `${id}@${s.metadata.resourceVersion ?? ''}` };
    } catch (e) {
      this.o.log.warn('cannot read the static key set (the gateway may read only the Secrets the chart lists in gateway.keySetSecrets)', { secret: id, error: e });
      return { keys: { keys: [] }, version: `${id}@unreadable` };
    }
  }

  private refuse(reason: AuthFailureReason): void {
    this.o.authFailures.inc({ reason });
  }

  /**
   * Who the token belongs to, if they may use this Gitspace (or this forwarded port); else the
   * status to answer. A public port needs no token; a shared port takes any valid token of the
   * issuer. Only a credential that fails to verify counts against the client: a request without
   * one (a browser's first visit, a health check behind a load balancer) costs nobody anything.
   */
  async authorise(token: string | undefined, m: Match, client: string): Promise<Identity | number> {
    const t = m.target;
    if (m.port?.visibility === 'public') return ANONYMOUS;
    if (!token) {
      this.refuse('missing');
      return 401;
    }
    if (this.limiter.blocked(client)) {
      this.refuse('rate_limited');
      return 429;
    }
    let id: Identity;
    if (isSessionId(token) && this.o.sso) {
      // A single sign-on session (the cookie holds its id; a JWT always has dots).
      const s = await this.o.sso.identity(token);
      if (!s || s.infra !== t.infra) {
        this.refuse('no_session');
        this.limiter.fail(client);
        return 401;
      }
      id = s;
    } else {
      const issuer = await this.issuer(t);
      if (!issuer) {
        this.refuse('no_issuer');
        return 401;
      }
      try {
        id = await this.o.verifier.verify(token, issuer);
      } catch (e) {
        const reason = e instanceof AuthError ? e.reason : 'malformed';
        this.refuse(reason);
        if (reason === 'jwks_unavailable') return 503; // the issuer's fault, not the client's
        this.limiter.fail(client);
        return 401;
      }
    }
    if (m.port?.visibility !== 'shared' && !mayUse(id, t)) {
      this.refuse('not_owner');
      return 403;
    }
    return id;
  }

  /**
   * `?token=…` on a navigation: verify it, set it as an HttpOnly session cookie scoped to this
   * Gitspace's host (or path), and redirect to the same URL without it — the token never stays in
   * the address bar, history or a Referer.
   */
  async exchange(req: IncomingMessage, res: ServerResponse, m: Match, token: string, query: URLSearchParams, client: string, secure: boolean): Promise<void> {
    const who = await this.authorise(token, m, client);
    if (typeof who === 'number') {
      plain(res, who);
      return;
    }
    this.o.audit.write('session.open', { user: who.sub, gitspace: m.target.key, hostKind: m.kind, ...(m.port ? { port: m.port.number } : {}), client, via: 'token' });
    query.delete('token');
    const rest = query.toString();
    const base = (req.url ?? '/').split('?')[0] ?? '/';
    const maxAge = Math.max(0, Math.floor(who.exp - Date.now() / 1000));
    res.writeHead(303, {
      location: rest ? `${base}?${rest}` : base,
      'set-cookie': `${sessionCookie(m, secure)}=${token}; Path=${m.cookiePath}; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Lax`,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'content-length': '0',
    });
    res.end();
  }
}
