// A small OpenID provider for the demo and the tests: panva's oidc-provider (OpenID Certified) on
// loopback, with a login page of its own (user name and password), consent granted at sign-in,
// refresh tokens, revocation and RP-initiated logout. Tests may rewrite the ID token the token
// endpoint returns (re-signed with the provider's own key) to play a provider that answers wrongly.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import Provider, { type ClientMetadata } from 'oidc-provider';

export interface IdpUser {
  /** The sub, also the name typed at sign-in. */
  id: string;
  password: string;
  email?: string;
  groups?: string[];
}

export interface IdpOptions {
  users: IdpUser[];
  clients: ClientMetadata[];
  port?: number;
  /** Access and ID token lifetime, seconds (default 300). */
  tokenTtlSec?: number;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 65_536) req.destroy();
    });
    req.on('end', () => { resolve(body); });
    req.on('error', reject);
  });
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`);

export class Idp {
  url = '';
  /** Token endpoint calls by grant type. */
  readonly grants: Record<string, number> = {};
  /** Set by a test: changes the claims of the next ID tokens the token endpoint returns. */
  rewriteIdToken: ((claims: Record<string, unknown>) => Record<string, unknown>) | undefined;
  private provider!: Provider;
  private front!: Server;
  private back!: Server;
  private key!: JWK;
  private readonly o: IdpOptions;

  private constructor(o: IdpOptions) {
    this.o = o;
  }

  static async start(o: IdpOptions): Promise<Idp> {
    const idp = new Idp(o);
    await idp.listen();
    return idp;
  }

  private async listen(): Promise<void> {
    this.front = createServer((req, res) => {
      void this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((r) => this.front.listen(this.o.port ?? 0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${String((this.front.address() as AddressInfo).port)}`;
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    this.key = { ...(await exportJWK(privateKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
    const ttl = this.o.tokenTtlSec ?? 300;
    const users = new Map(this.o.users.map((u) => [u.id, u]));
    this.provider = new Provider(this.url, {
      clients: this.o.clients,
      jwks: { keys: [this.key] },
      findAccount: (_ctx, id) => {
        const u = users.get(id);
        return u ? { accountId: id, claims: () => ({ sub: id, email: u.email ?? id, name: id, groups: u.groups ?? [] }) } : undefined;
      },
      claims: { openid: ['sub'], email: ['email'], profile: ['name', 'groups'] },
      conformIdTokenClaims: false,
      scopes: ['openid', 'offline_access', 'profile', 'email'],
      issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      ttl: { AccessToken: ttl, IdToken: ttl, AuthorizationCode: 60, RefreshToken: 86_400, Grant: 86_400, Session: 86_400, Interaction: 600 },
      features: {
        devInteractions: { enabled: false },
        revocation: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          // Sign out without the confirmation click.
          logoutSource: (ctx, form) => {
            ctx.body = `<!doctype html><title>Signing out</title>${form.replace('</form>', '<input type="hidden" name="logout" value="yes"></form>')}<script>document.forms[0].submit()</script>`;
          },
        },
      },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      cookies: { keys: ['gitspaces-demo-idp-cookie-key'] },
    });
    this.provider.on('grant.success', (ctx) => {
      const t = ctx.oidc.params?.grant_type;
      const g = typeof t === 'string' ? t : '';
      this.grants[g] = (this.grants[g] ?? 0) + 1;
    });
    const callback = this.provider.callback();
    this.back = createServer((req, res) => {
      void callback(req, res);
    });
    await new Promise<void>((r) => this.back.listen(0, '127.0.0.1', r));
  }

  async stop(): Promise<void> {
    for (const s of [this.front, this.back]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => { r(); }));
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(url.pathname);
    if (m) {
      await this.interaction(req, res, Boolean(m[2]));
      return;
    }
    this.pass(req, res);
  }

  /** The sign-in page, and its form: the user, then consent to what the client asked for. */
  private async interaction(req: IncomingMessage, res: ServerResponse, submitted: boolean): Promise<void> {
    const details = await this.provider.interactionDetails(req, res);
    if (!submitted || req.method !== 'POST') {
      const body = `<!doctype html><meta charset="utf-8"><title>Sign in - Test IdP</title><h1>Sign in to the Test IdP</h1>
<form method="post" action="/interaction/${esc(details.uid)}/login"><label>User <input name="username" autofocus></label>
<label>Password <input name="password" type="password"></label><button type="submit">Sign in</button></form>\n`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const user = this.o.users.find((u) => u.id === form.get('username') && u.password === form.get('password'));
    if (!user) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><p>Wrong user or password. Go back and try again.</p>\n');
      return;
    }
    const grant = new this.provider.Grant({ accountId: user.id, clientId: String(details.params.client_id) });
    grant.addOIDCScope(typeof details.params.scope === 'string' ? details.params.scope : 'openid');
    const grantId = await grant.save();
    await this.provider.interactionFinished(req, res, { login: { accountId: user.id }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  /** Everything else goes to the provider; the token endpoint's ID token may be rewritten on the way. */
  private pass(req: IncomingMessage, res: ServerResponse): void {
    const back = (this.back.address() as AddressInfo).port;
    const rewrite = req.method === 'POST' && new URL(req.url ?? '/', this.url).pathname === '/token' && this.rewriteIdToken;
    const up = request({ host: '127.0.0.1', port: back, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      if (!rewrite) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        void this.rewritten(Buffer.concat(chunks).toString('utf8'), rewrite).then((body) => {
          const { 'content-length': _len, ...headers } = ur.headers;
          res.writeHead(ur.statusCode ?? 502, { ...headers, 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
      });
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }

  private async rewritten(text: string, change: (c: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
    const json = JSON.parse(text) as { id_token?: string };
    if (!json.id_token) return text;
    const claims = change(decodeJwt(json.id_token));
    json.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: this.key.kid }).sign(await importJWK(this.key, 'RS256'));
    return JSON.stringify(json);
  }
}
