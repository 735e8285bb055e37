// Single sign-on's sessions over time: made from a login's tokens, looked up per request, refreshed
// with the refresh token before they go stale (ahead of time for sessions in use on this replica,
// on demand for one coming back after a pause), and ended — logout, a refresh the issuer refuses,
// the infra's sessionMaxAge — on every replica at once, with the refresh token revoked at the issuer.
import * as oidc from 'openid-client';
import type { GitspaceInfra } from '../../api/index.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Audit } from '../audit.ts';
import type { Identity } from '../auth.ts';
import type { Sealer } from './seal.ts';
import { userOf } from '../claims.ts';
import type { Client, OidcClients } from './oidc.ts';
import { refreshDue, SessionStore, staleAt, type EndReason, type Session, type SessionRecord } from './sessions.ts';

interface Tokens {
  refreshToken?: string;
  idToken?: string;
}

/** When a token response's tokens go stale: the access token's expiry, else the ID token's. */
function freshUntil(t: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers, now: number): number {
  const ttl = t.expiresIn();
  if (ttl !== undefined) return now + ttl * 1000;
  const exp = t.claims()?.exp;
  return exp ? exp * 1000 : now + 5 * 60_000;
}

export interface SingleSignOnOptions {
  kube: KubeClient;
  namespace: string;
  log: Logger;
  infras: Informer<GitspaceInfra>;
  clients: OidcClients;
  audit: Audit;
  /** The sealer of the moment (the hop key's), or undefined before the gateway has it. */
  sealer: () => Sealer | undefined;
  /** This replica's name, for refresh leases. */
  replica: string;
  onError: (e: unknown) => void;
}

/** Who a session stands for, and the infra whose sign-in made it (it opens that infra's Gitspaces only). */
export interface SessionIdentity extends Identity {
  session: string;
  infra: string;
}

export class SingleSignOn {
  readonly sessions: SessionStore;
  private readonly o: SingleSignOnOptions;
  /** Sessions used through this replica lately (hash → last use), refreshed ahead of time. */
  private readonly inUse = new Map<string, number>();
  private readonly refreshing = new Map<string, Promise<Session | undefined>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(o: SingleSignOnOptions) {
    this.o = o;
    this.sessions = new SessionStore(o.kube, o.namespace, o.onError);
  }

  infra(name: string): GitspaceInfra | undefined {
    return this.o.infras.get(name);
  }

  /** The infra whose gateway domain this host is, when it has single sign-on. */
  loginHostOf(host: string): GitspaceInfra | undefined {
    return this.o.infras.list().find((i) => i.spec.gateway.domain === host && i.spec.auth?.oidc);
  }

  enabled(infra: string): boolean {
    return Boolean(this.o.infras.get(infra)?.spec.auth?.oidc);
  }

  start(intervalMs = 5_000): void {
    this.timer = setInterval(() => {
      void this.tick().catch((e: unknown) => {
        this.o.log.warn('session upkeep failed', { error: e });
      });
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tokens(s: Session): Tokens {
    return this.o.sealer()?.open('session-tokens', s.tokens) as Tokens | undefined ?? {};
  }

  /** Stores the session a login's tokens make; undefined (and a reason) when they name no user. */
  async create(c: Client, t: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers, client: string): Promise<{ sid: string; session: Session }> {
    const sealer = this.o.sealer();
    if (!sealer) throw new Error('no hop key yet');
    const claims: Record<string, unknown> = t.claims() ?? {};
    const { user, groups } = userOf(claims, c.usernameClaim, c.groupsClaim);
    if (!user) throw new Error(`the ID token has no ${c.usernameClaim} claim`);
    const now = Date.now();
    const expiresAt = now + c.sessionMaxAgeMs;
    const rec: SessionRecord = {
      infra: c.infra, user, groups, subject: typeof claims.sub === 'string' ? claims.sub : '', client, createdAt: now, expiresAt,
      freshUntil: Math.min(freshUntil(t, now), expiresAt), refreshedAt: now,
      tokens: sealer.seal('session-tokens', { refreshToken: t.refresh_token, idToken: t.id_token } satisfies Tokens, c.sessionMaxAgeMs + 60_000),
    };
    return this.sessions.create(rec);
  }

  /**
   * Who a session cookie stands for, refreshing a stale session first; undefined when the session
   * is gone, past its end, or stale and cannot be refreshed.
   */
  async identity(sid: string): Promise<SessionIdentity | undefined> {
    let s = await this.sessions.get(sid);
    if (!s) return undefined;
    const now = Date.now();
    if (now >= s.expiresAt) {
      await this.end(s, 'expired');
      return undefined;
    }
    this.inUse.set(s.id, now);
    if (now >= staleAt(s)) s = await this.refresh(s);
    else if (now >= refreshDue(s)) void this.refresh(s).catch(() => undefined);
    if (!s || Date.now() >= staleAt(s)) return undefined;
    return { sub: s.user, groups: s.groups, exp: Math.floor(s.expiresAt / 1000), session: s.id, infra: s.infra };
  }

  /** Whether the session by this hash may still carry traffic (connections check it). */
  alive(id: string): boolean {
    const s = this.sessions.byHash(id);
    const now = Date.now();
    return s !== undefined && now < s.expiresAt && now < staleAt(s);
  }

  /** Marks sessions with open connections as in use, so they are refreshed ahead of time. */
  touch(id: string): void {
    this.inUse.set(id, Date.now());
  }

  /** One refresh per session at a time on this replica; a lease keeps other replicas out. */
  refresh(s: Session): Promise<Session | undefined> {
    let p = this.refreshing.get(s.id);
    if (!p) {
      p = this.doRefresh(s).finally(() => this.refreshing.delete(s.id));
      this.refreshing.set(s.id, p);
    }
    return p;
  }

  private async doRefresh(s: Session): Promise<Session | undefined> {
    const now = Date.now();
    const { refreshToken, idToken } = this.tokens(s);
    const infra = this.o.infras.get(s.infra);
    if (!refreshToken || !infra) return s; // stale for good: it lapses at freshUntil + grace
    if (s.refreshing && s.refreshing.until > now && s.refreshing.by !== this.o.replica) return this.awaitOther(s);
    const leased = await this.sessions.update(s, { ...record(s), refreshing: { by: this.o.replica, until: now + 15_000 } });
    if (!leased) return this.awaitOther(s);
    const sealer = this.o.sealer();
    let c: Client;
    try {
      c = await this.o.clients.client(infra);
      const t = await oidc.refreshTokenGrant(c.config, refreshToken);
      const claims = t.claims();
      const { user, groups } = claims ? userOf(claims, c.usernameClaim, c.groupsClaim) : { user: s.user, groups: s.groups };
      if (user !== s.user || !sealer) throw new Error('the refreshed ID token names another user');
      const next: SessionRecord = {
        ...record(s), groups,
        freshUntil: Math.min(freshUntil(t, Date.now()), s.expiresAt), refreshedAt: Date.now(),
        tokens: sealer.seal('session-tokens', { refreshToken: t.refresh_token ?? refreshToken, idToken: t.id_token ?? idToken } satisfies Tokens, s.expiresAt - Date.now() + 60_000),
      };
      delete next.refreshing;
      return await this.sessions.update(leased, next);
    } catch (e) {
      const refused = e instanceof oidc.ResponseBodyError || (e instanceof Error && /another user/.test(e.message));
      if (refused) {
        this.o.log.info('the issuer refused to refresh a session: it ends', { session: s.id, user: s.user, error: e });
        await this.end(leased, 'refresh_failed');
        return undefined;
      }
      this.o.log.warn('session refresh failed; trying again', { session: s.id, error: e });
      const rec = record(leased);
      delete rec.refreshing;
      return (await this.sessions.update(leased, rec)) ?? leased;
    }
  }

  /** Another replica is refreshing: its result, once the watch brings it (up to 15 s). */
  private async awaitOther(s: Session): Promise<Session | undefined> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      const now = this.sessions.byHash(s.id);
      if (!now) return undefined;
      if (now.resourceVersion !== s.resourceVersion && !now.refreshing) return now;
    }
    return this.sessions.byHash(s.id);
  }

  /** Ends a session everywhere, revokes its refresh token, and writes its audit line; returns its ID token (for the issuer's logout). */
  async end(s: Session, reason: EndReason): Promise<string | undefined> {
    const { refreshToken, idToken } = this.tokens(s);
    this.inUse.delete(s.id);
    if (!(await this.sessions.end(s, reason))) return idToken;
    this.o.audit.write('session.end', { session: s.id, user: s.user, infra: s.infra, client: s.client, start: new Date(s.createdAt).toISOString(), end: new Date().toISOString(), result: reason });
    const infra = this.o.infras.get(s.infra);
    if (refreshToken && infra && reason !== 'refresh_failed') {
      void this.o.clients.client(infra)
        .then((c) => (c.config.serverMetadata().revocation_endpoint ? oidc.tokenRevocation(c.config, refreshToken, { token_type_hint: 'refresh_token' }) : undefined))
        .catch((e: unknown) => {
          this.o.log.warn('could not revoke a refresh token at the issuer', { session: s.id, error: e });
        });
    }
    return idToken;
  }

  /** Refreshes sessions in use here ahead of time; ends those past their end. */
  private async tick(): Promise<void> {
    const now = Date.now();
    for (const [id, at] of this.inUse) {
      if (now - at > 5 * 60_000) this.inUse.delete(id);
      const s = this.sessions.byHash(id);
      if (s && now >= refreshDue(s) && now < s.expiresAt) await this.refresh(s);
    }
    for (const s of this.sessions.all()) if (now >= s.expiresAt || (now >= s.freshUntil + 10 * 60_000 && !this.tokens(s).refreshToken)) await this.end(s, 'expired');
  }
}

function record(s: Session): SessionRecord {
  const { id: _id, resourceVersion: _rv, ...rest } = s;
  return rest;
}

