// Single sign-on's HTTP side. A browser that opens a Gitspace without a session is sent to the
// login host (the infra's gateway domain: one redirect URI to register, whatever the Gitspace),
// which runs the authorization-code flow with PKCE, state and nonce (openid-client checks the ID
// token: signature, iss, aud, nonce, expiry), keeps the session in its own cookie, and hands it to
// the Gitspace's host with a short sealed hand-off (the ID token never travels in a URL). A
// second Gitspace host is handed the same session without another login. Logout ends the session
// on every host and replica, revokes its refresh token and signs out at the issuer too.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as oidc from 'openid-client';
import type { Counter } from 'prom-client';
import type { GitspaceInfra } from '../../api/index.ts';
import type { Logger } from '../../runtime/log.ts';
import { sameOrigin, sessionCookie, SSO_COOKIE } from '../access.ts';
import type { Audit } from '../audit.ts';
import { plain } from '../pages.ts';
import { normaliseHost, type Match, type RouteTable } from '../routes.ts';
import { CALLBACK_PATH, LoginError, SIGNED_OUT_PATH, type OidcClients } from './oidc.ts';
import type { Sealer } from './seal.ts';
import type { SingleSignOn } from './sso.ts';

export const LOGIN_PATH = '/.gitspaces/login';
export const LOGOUT_PATH = '/.gitspaces/logout';
export const HANDOFF_PATH = '/.gitspaces/oidc/handoff';
const FLOW_TTL_MS = 10 * 60_000;
const HANDOFF_TTL_MS = 60_000;

interface Flow {
  state: string;
  nonce: string;
  verifier: string;
  rd: string;
}

interface Handoff {
  sid: string;
  host: string;
  cookiePath: string;
  rd: string;
  n: string;
}

export interface LoginOptions {
  sso: SingleSignOn;
  clients: OidcClients;
  routes: RouteTable;
  audit: Audit;
  log: Logger;
  sealer: () => Sealer | undefined;
  loginFailures: Counter<'reason'>;
}

function cookieHeader(name: string, value: string, o: { path: string; maxAgeSec: number }): string {
  return `${name}=${value}; Path=${o.path}; Max-Age=${String(Math.max(0, Math.floor(o.maxAgeSec)))}; HttpOnly; Secure; SameSite=Lax`;
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(/;\s*/)) if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
  return undefined;
}

function redirect(res: ServerResponse, location: string, cookies: string[] = []): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'content-length': '0', ...(cookies.length ? { 'set-cookie': cookies } : {}) });
  res.end();
}

function page(res: ServerResponse, status: number, title: string, text: string, cookies: string[] = []): void {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`);
  const body = `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title><p>${esc(text)}</p>\n`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...(cookies.length ? { 'set-cookie': cookies } : {}) });
  res.end(body);
}

/** A browser loading a page (not a script's fetch, not a WebSocket). */
export function isNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' || req.headers.authorization) return false;
  const mode = req.headers['sec-fetch-mode'];
  return mode === 'navigate' || (mode === undefined && (req.headers.accept ?? '').includes('text/html'));
}

/**
 * Another site's page may link to logout (signing the user out is all it could do): such a request
 * gets a button instead, whose POST a browser sends only from this origin (and with SameSite=Lax
 * cookies only from this site).
 */
function crossSiteLogout(req: IncomingMessage, res: ServerResponse, secure: boolean): boolean {
  if (req.method === 'POST' ? sameOrigin(req, secure) : req.headers['sec-fetch-site'] !== 'cross-site') return false;
  const body = '<!doctype html><meta charset="utf-8"><title>Sign out</title><form method="post"><p>Sign out of your Gitspaces?</p><button type="submit">Sign out</button></form>\n';
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
  return true;
}

const flowCookie = (state: string) => `gitspaces_flow_${createHash('sha256').update(state).digest('hex').slice(0, 16)}`;
const ssoCookie = (secure: boolean) => (secure ? `__Host-${SSO_COOKIE}` : SSO_COOKIE);

export class Login {
  private readonly o: LoginOptions;
  /** Hand-offs used on this replica (nonce → expiry): each works once. */
  private readonly used = new Map<string, number>();

  constructor(o: LoginOptions) {
    this.o = o;
  }

  /** The login host's origin for a request to any host of this infra (same scheme and port). */
  private loginOrigin(req: IncomingMessage, infra: GitspaceInfra, secure: boolean): string {
    const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1];
    return `${secure ? 'https' : 'http'}://${infra.spec.gateway.domain}${port ? `:${port}` : ''}`;
  }

  private fail(res: ServerResponse, e: unknown, fields: Record<string, unknown>): void {
    const err = e instanceof LoginError ? e : new LoginError('idp_error', 502, 'the login failed');
    this.o.loginFailures.inc({ reason: err.reason });
    this.o.audit.write('login', { ...fields, result: err.reason, message: (e instanceof Error ? e.message : String(e)).slice(0, 200) });
    page(res, err.status, 'Sign-in failed', err.message);
  }

  /** On a Gitspace's host: send a browser without a usable session to sign in. */
  toLogin(req: IncomingMessage, res: ServerResponse, m: Match, secure: boolean): void {
    const infra = this.o.sso.infra(m.target.infra);
    if (!infra) {
      plain(res, 401);
      return;
    }
    const here = `${secure ? 'https' : 'http'}://${req.headers.host ?? m.host}${req.url ?? '/'}`;
    redirect(res, `${this.loginOrigin(req, infra, secure)}${LOGIN_PATH}?rd=${encodeURIComponent(here)}`);
  }

  /** The Gitspace a return URL names, if it is one of this infra's (no open redirect). */
  private returnTarget(rd: string | null, infra: GitspaceInfra, req: IncomingMessage, secure: boolean): { url: URL; m: Match } {
    let url: URL;
    try {
      url = new URL(rd ?? '');
    } catch {
      throw new LoginError('bad_return_url', 400, 'the address to return to is not valid');
    }
    const origin = new URL(this.loginOrigin(req, infra, secure));
    const m = this.o.routes.match(normaliseHost(url.host), url.pathname + url.search);
    if (url.protocol !== origin.protocol || url.port !== origin.port || !m || m.target.infra !== infra.metadata.name || url.username || url.password) {
      throw new LoginError('bad_return_url', 400, 'the address to return to is not a Gitspace of this gateway');
    }
    return { url, m };
  }

  /** The redirect that hands a session to the Gitspace's host. */
  private handoff(sid: string, url: URL, m: Match): string {
    const sealer = this.o.sealer();
    if (!sealer) throw new LoginError('no_client', 503, 'the gateway is not ready');
    const h: Handoff = { sid, host: m.host, cookiePath: m.cookiePath, rd: url.pathname + url.search, n: oidc.randomNonce() };
    const prefix = m.kind === 'path' ? m.cookiePath.replace(/\/$/, '') : '';
    return `${url.origin}${prefix}${HANDOFF_PATH}?h=${sealer.seal('handoff', h, HANDOFF_TTL_MS)}`;
  }

  /** Requests to the login host's own paths; false when the path is not one of them. */
  async loginHost(req: IncomingMessage, res: ServerResponse, infra: GitspaceInfra, client: string, secure: boolean): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://x');
    const fields = { infra: infra.metadata.name, client };
    try {
      switch (url.pathname) {
        case LOGIN_PATH:
          await this.start(req, res, infra, url, secure);
          return true;
        case CALLBACK_PATH:
          await this.callback(req, res, infra, url, client, secure);
          return true;
        case LOGOUT_PATH:
          await this.logoutAtLoginHost(req, res, infra, url, secure);
          return true;
        case SIGNED_OUT_PATH:
          page(res, 200, 'Signed out', 'You are signed out of your Gitspaces.');
          return true;
        default:
          return false;
      }
    } catch (e) {
      this.fail(res, e, fields);
      return true;
    }
  }

  private async start(req: IncomingMessage, res: ServerResponse, infra: GitspaceInfra, url: URL, secure: boolean): Promise<void> {
    const { url: rd, m } = this.returnTarget(url.searchParams.get('rd'), infra, req, secure);
    // Signed in already (another Gitspace of this infra): hand the session over, no new login.
    const sid = readCookie(req, ssoCookie(secure));
    const id = sid ? await this.o.sso.identity(sid) : undefined;
    if (sid && id?.infra === infra.metadata.name) {
      redirect(res, this.handoff(sid, rd, m));
      return;
    }
    const c = await this.o.clients.client(infra);
    const sealer = this.o.sealer();
    if (!sealer) throw new LoginError('no_client', 503, 'the gateway is not ready');
    const flow: Flow = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier(), rd: rd.href };
    const authorize = oidc.buildAuthorizationUrl(c.config, {
      ...c.params,
      redirect_uri: `${this.loginOrigin(req, infra, secure)}${CALLBACK_PATH}`,
      scope: c.scopes,
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: 'S256',
    });
    redirect(res, authorize.href, [cookieHeader(flowCookie(flow.state), sealer.seal('login-flow', flow, FLOW_TTL_MS), { path: '/.gitspaces/oidc/', maxAgeSec: FLOW_TTL_MS / 1000 })]);
  }

  private async callback(req: IncomingMessage, res: ServerResponse, infra: GitspaceInfra, url: URL, client: string, secure: boolean): Promise<void> {
    const state = url.searchParams.get('state') ?? '';
    const sealed = state ? readCookie(req, flowCookie(state)) : undefined;
    const flow = sealed ? this.o.sealer()?.open('login-flow', sealed) as Flow | undefined : undefined;
    if (!flow || flow.state.length !== state.length || !timingSafeEqual(Buffer.from(flow.state), Buffer.from(state))) {
      throw new LoginError('bad_state', 400, 'this sign-in was not started here or has expired: open the Gitspace again');
    }
    const clear = cookieHeader(flowCookie(state), '', { path: '/.gitspaces/oidc/', maxAgeSec: 0 });
    const error = url.searchParams.get('error');
    if (error) throw new LoginError('idp_error', 401, `the identity provider refused the sign-in: ${error.slice(0, 100)}`);
    const c = await this.o.clients.client(infra);
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(c.config, new URL(`${this.loginOrigin(req, infra, secure)}${CALLBACK_PATH}${url.search}`), {
        pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce, idTokenExpected: true,
      });
    } catch (e) {
      // The issuer refused the code (used twice, expired, another client's) or its ID token did not verify.
      if (e instanceof oidc.ResponseBodyError) throw new LoginError('idp_error', 401, `the identity provider refused the sign-in: ${e.error}`);
      throw new LoginError('token_rejected', 401, `the identity provider's answer did not verify: ${e instanceof Error ? e.message : String(e)}`);
    }
    let created: Awaited<ReturnType<SingleSignOn['create']>>;
    try {
      created = await this.o.sso.create(c, tokens, client);
    } catch (e) {
      throw new LoginError('no_username', 403, e instanceof Error ? e.message : 'the ID token names no user');
    }
    const { sid, session } = created;
    this.o.audit.write('login', { infra: infra.metadata.name, client, result: 'ok', user: session.user, subject: session.subject, groups: session.groups, session: session.id });
    const { url: rd, m } = this.returnTarget(flow.rd, infra, req, secure);
    redirect(res, this.handoff(sid, rd, m), [clear, cookieHeader(ssoCookie(secure), sid, { path: '/', maxAgeSec: (session.expiresAt - Date.now()) / 1000 })]);
  }

  /** On a Gitspace's host: the hand-off and logout paths; false for any other path. */
  async gitspaceHost(req: IncomingMessage, res: ServerResponse, m: Match, client: string, secure: boolean): Promise<boolean> {
    const path = m.path.split('?')[0];
    if (path !== HANDOFF_PATH && path !== LOGOUT_PATH) return false;
    const infra = this.o.sso.infra(m.target.infra);
    if (!infra) return false;
    const cookie = sessionCookie(m, secure);
    if (path === LOGOUT_PATH) {
      if (crossSiteLogout(req, res, secure)) return true;
      const sid = readCookie(req, cookie);
      const s = sid ? await this.o.sso.sessions.get(sid) : undefined;
      const idToken = s ? await this.o.sso.end(s, 'logout') : undefined;
      const hint = idToken ? `?h=${this.o.sealer()?.seal('handoff', { idToken }, HANDOFF_TTL_MS) ?? ''}` : '';
      redirect(res, `${this.loginOrigin(req, infra, secure)}${LOGOUT_PATH}${hint}`, [cookieHeader(cookie, '', { path: m.cookiePath, maxAgeSec: 0 })]);
      return true;
    }
    const q = new URLSearchParams(m.path.slice(m.path.indexOf('?') + 1));
    const h = this.o.sealer()?.open('handoff', q.get('h') ?? '') as Handoff | undefined;
    const now = Date.now();
    for (const [n, exp] of this.used) if (exp < now) this.used.delete(n);
    const id = h && h.host === m.host && h.cookiePath === m.cookiePath && !this.used.has(h.n) ? await this.o.sso.identity(h.sid) : undefined;
    if (!h || !id) {
      this.o.loginFailures.inc({ reason: 'bad_handoff' });
      page(res, 400, 'Sign-in expired', 'This sign-in link has expired or was used already: open the Gitspace again.');
      return true;
    }
    this.used.set(h.n, now + HANDOFF_TTL_MS);
    this.o.audit.write('session.open', { session: id.session, user: id.sub, gitspace: m.target.key, hostKind: m.kind, ...(m.port ? { port: m.port.number } : {}), client, via: 'sso' });
    redirect(res, h.rd.startsWith('/') && !h.rd.startsWith('//') ? h.rd : '/', [cookieHeader(cookie, h.sid, { path: m.cookiePath, maxAgeSec: id.exp - now / 1000 })]);
    return true;
  }

  private async logoutAtLoginHost(req: IncomingMessage, res: ServerResponse, infra: GitspaceInfra, url: URL, secure: boolean): Promise<void> {
    if (crossSiteLogout(req, res, secure)) return;
    const sid = readCookie(req, ssoCookie(secure));
    const s = sid ? await this.o.sso.sessions.get(sid) : undefined;
    const hint = (this.o.sealer()?.open('handoff', url.searchParams.get('h') ?? '') as { idToken?: string } | undefined)?.idToken;
    const idToken = (s ? await this.o.sso.end(s, 'logout') : undefined) ?? hint;
    const clear = [cookieHeader(ssoCookie(secure), '', { path: '/', maxAgeSec: 0 })];
    const signedOut = `${this.loginOrigin(req, infra, secure)}${SIGNED_OUT_PATH}`;
    let c: Awaited<ReturnType<OidcClients['client']>> | undefined;
    try {
      c = await this.o.clients.client(infra);
    } catch {
      c = undefined; // signed out here; the issuer's own session stays
    }
    if (c?.config.serverMetadata().end_session_endpoint) {
      redirect(res, oidc.buildEndSessionUrl(c.config, { post_logout_redirect_uri: signedOut, client_id: c.config.clientMetadata().client_id, ...(idToken ? { id_token_hint: idToken } : {}) }).href, clear);
      return;
    }
    redirect(res, signedOut, clear);
  }
}

