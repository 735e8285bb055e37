// Single sign-on at the gateway against a real, certified OpenID provider (panva's oidc-provider,
// demo/idp.ts) on loopback, with Debian's Chromium: a bare Gitspace URL lands on the provider's
// sign-in page and then on VS Code; a second Gitspace host needs no second sign-in; a user who is
// neither owner nor shared with gets 403; a group in sharedWith admits its member; the session is
// refreshed across access-token expiries with VS Code's WebSocket open; logout ends it (and the
// WebSocket) on the spot. Without a browser: tampered state, a replayed code, a wrong nonce and a
// wrong audience are refused. The gateway's audit lines for these runs are checked field by field.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DOMAIN, Stack, type OpenedGitspace } from '../../demo/stack.ts';
import { Idp } from '../../demo/idp.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey } from '../support/fixtures.ts';
import { ROOT } from '../support/resources.ts';
import { screenshot } from '../support/screenshot.ts';
import { eventually, sleep } from '../support/wait.ts';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const NS = 'sso';
const TOKEN_TTL_SEC = 10;
const OWNER = 'dev@example.com';
/** Another infra's domain (*.localhost resolves to this machine). */
const OTHER_DOMAIN = 'other.localhost';
const PASSWORD = 'correct horse';

interface Line { audit: string; event: string; time: string; [k: string]: unknown }

/** A bare HTTP client with a cookie jar per host: a browser's part of the flow, step by step. */
class Client {
  readonly jar = new Map<string, Map<string, string>>();

  async get(url: string, o: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; location: string; body: string }> {
    const u = new URL(url);
    const cookies = [...(this.jar.get(u.hostname) ?? new Map<string, string>()).entries()].map(([k, v]) => `${k}=${v}`).join('; ');
    return new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1', port: u.port, method: o.method ?? 'GET', path: u.pathname + u.search,
        headers: { host: u.host, accept: 'text/html', ...(cookies ? { cookie: cookies } : {}), ...(o.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...o.headers },
      }, (res) => {
        for (const c of res.headers['set-cookie'] ?? []) {
          const [pair = '', ...attrs] = c.split(';');
          const i = pair.indexOf('=');
          const jar = this.jar.get(u.hostname) ?? new Map<string, string>();
          if (attrs.some((a) => /max-age=0\b/i.test(a.trim())) || pair.slice(i + 1) === '') jar.delete(pair.slice(0, i));
          else jar.set(pair.slice(0, i), pair.slice(i + 1));
          this.jar.set(u.hostname, jar);
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, location: res.headers.location ? new URL(res.headers.location, url).href : '', body }); });
      });
      req.on('error', reject);
      req.end(o.body);
    });
  }

  /** Follows redirects from `url` until one leaves for a URL `stop` accepts (or a non-redirect). */
  async follow(url: string, stop: (u: string) => boolean = () => false): Promise<{ status: number; url: string; body: string }> {
    let at = url;
    for (let i = 0; i < 20; i++) {
      const r = await this.get(at);
      if (r.status < 300 || r.status >= 400 || !r.location) return { status: r.status, url: at, body: r.body };
      if (stop(r.location)) return { status: r.status, url: r.location, body: r.body };
      at = r.location;
    }
    throw new Error('too many redirects');
  }
}

describe('single sign-on at the gateway (oidc-provider, Chromium)', function () {
  this.timeout(300_000);
  let work: string;
  let stack: Stack;
  let idp: Idp;
  let browser: Browser;
  let a: OpenedGitspace;
  let repo: string;
  let gatewayPort: number;
  const host = (id: string) => `${id}--${NS}.${DOMAIN}`;
  const url = (id: string, path = '/') => `http://${host(id)}:${String(gatewayPort)}${path}`;
  const audit = (): Line[] => readFileSync(stack.logOf('gateway'), 'utf8').split('\n').filter((l) => l.startsWith('{"audit"')).map((l) => JSON.parse(l) as Line);

  before(async () => {
    const cs = spawnSync('bash', [join(ROOT, 'scripts/fetch-code-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    expect(cs.status, 'scripts/fetch-code-server.sh').to.equal(0);
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'gitspaces-sso-'));
    gatewayPort = await freePort();
    const login = `http://${DOMAIN}:${String(gatewayPort)}`;
    idp = await Idp.start({
      tokenTtlSec: TOKEN_TTL_SEC,
      users: [
        { id: OWNER, password: PASSWORD },
        { id: 'bob@example.com', password: PASSWORD },
        { id: 'carol@example.com', password: PASSWORD, groups: ['platform'] },
      ],
      clients: [{
        client_id: 'gitspaces-gateway', client_secret: 'gateway-client-secret-for-tests', grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [`${login}/.gitspaces/oidc/callback`], post_logout_redirect_uris: [`${login}/.gitspaces/signed-out`],
      }],
    });
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
    stack = new Stack({
      work: join(work, 'stack'), kubeconfig: testCluster().kubeconfigPath, namespace: NS, infraName: 'sso', sessionCheckMs: 1_000,
      sso: { issuer: idp.url, clientId: 'gitspaces-gateway', clientSecret: 'gateway-client-secret-for-tests' },
      ports: { controlPlane: await freePort(), gateway: gatewayPort, operatorHealth: await freePort() },
    });
    await stack.start();
    repo = makeRepo(work);
    a = await stack.createGitspace('ssoa', `file://${repo}`, makeSshKey().publicLine);
    // The second Gitspace, shared with a group: applied straight to Kubernetes.
    const b = {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: 'ssob', namespace: NS },
      spec: { infraRef: { name: 'sso' }, owner: OWNER, sharedWith: ['group:platform'], repository: { url: `file://${repo}` }, machineType: 'small', ide: { type: 'ssh' } },
    };
    expect((await testCluster().request('POST', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`, { body: b })).status).to.equal(201);
    await eventually('Gitspace ssob to run', 120_000, async () => ((await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/ssob`)).json as { status?: { phase?: string } }).status?.phase === 'Running' || undefined);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    try {
      await browser?.close();
      await stack.api('DELETE', `/api/v1/gitspaces/${a.id}`).catch(() => undefined);
      await testCluster().request('DELETE', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/ssob`);
      await eventually('the Gitspaces to be gone', 60_000, async () => ((await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`)).json as { items: unknown[] }).items.length === 0 || undefined).catch(() => undefined);
      await testCluster().request('DELETE', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/sso');
    } finally {
      // Whatever failed above, no process of the test is left (the local VMs' agents among them).
      await stack.stop();
      await idp.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  /** Signs in on the provider's page the browser was sent to. */
  async function signIn(page: Page, user: string): Promise<void> {
    await page.waitForURL((u) => u.href.startsWith(`${idp.url}/interaction/`), { timeout: 30_000 });
    expect(await page.locator('h1').textContent()).to.equal('Sign in to the Test IdP');
    await page.fill('input[name=username]', user);
    await page.fill('input[name=password]', PASSWORD);
    await page.click('button[type=submit]');
  }

  let owner: Page;
  let ownerSockets: { url: string; closed: boolean }[] = [];

  it('sends a browser from a bare Gitspace URL through the provider\'s sign-in page to VS Code', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    owner = await ctx.newPage();
    ownerSockets = [];
    owner.on('websocket', (ws) => {
      const s = { url: ws.url(), closed: false };
      ownerSockets.push(s);
      ws.on('close', () => { s.closed = true; });
    });
    const codes = idp.grants.authorization_code ?? 0;
    await owner.goto(url(a.id));
    await signIn(owner, OWNER);
    await owner.waitForSelector('.monaco-workbench', { timeout: 90_000 }).catch(async (e: unknown) => {
      await screenshot(owner, join(ARTIFACTS, 'sso-workbench-failed.png'));
      throw e;
    });
    await screenshot(owner, join(ARTIFACTS, 'sso-workbench.png'));
    expect(new URL(owner.url()).host).to.equal(`${host(a.id)}:${String(gatewayPort)}`);
    expect(owner.url()).to.not.match(/[?&](h|code|state)=/);
    expect(idp.grants.authorization_code).to.equal(codes + 1);
    const cookies = await ctx.cookies();
    expect(cookies.find((c) => c.name === 'gitspaces_session' && c.domain === host(a.id))).to.include({ httpOnly: true, sameSite: 'Lax' });
    expect(cookies.find((c) => c.name === 'gitspaces_sso' && c.domain === DOMAIN)).to.include({ httpOnly: true });
    await eventually('VS Code\'s WebSocket', 30_000, () => ownerSockets.some((s) => s.url.startsWith(`ws://${host(a.id)}`)) || undefined);
  });

  it('opens a second Gitspace host of the same user without another sign-in', async () => {
    const page = await owner.context().newPage();
    const visited: string[] = [];
    page.on('request', (r) => visited.push(r.url()));
    const codes = idp.grants.authorization_code ?? 0;
    const r = await page.goto(url('ssob'));
    expect(r?.status()).to.equal(200);
    expect(new URL(page.url()).host).to.equal(`${host('ssob')}:${String(gatewayPort)}`);
    expect(visited.filter((v) => v.startsWith(idp.url))).to.deep.equal([]);
    expect(idp.grants.authorization_code ?? 0).to.equal(codes);
    await page.close();
  });

  it("does not open another infra's Gitspace with this infra's session, even for the same user at the same provider", async () => {
    // Infra sso-other: the same provider and user, its own domain (its own sign-in).
    const base = (await testCluster().request('GET', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/sso')).json as { spec: { gateway: Record<string, unknown> } & Record<string, unknown> };
    const other = { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'sso-other' }, spec: { ...base.spec, gateway: { ...base.spec.gateway, domain: OTHER_DOMAIN } } };
    expect((await testCluster().request('POST', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras', { body: other })).status).to.equal(201);
    const c = {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: 'ssoc', namespace: NS },
      spec: { infraRef: { name: 'sso-other' }, owner: OWNER, repository: { url: `file://${repo}` }, machineType: 'small', ide: { type: 'ssh' } },
    };
    expect((await testCluster().request('POST', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`, { body: c })).status).to.equal(201);
    try {
      await eventually('Gitspace ssoc to run', 120_000, async () => ((await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/ssoc`)).json as { status?: { phase?: string } }).status?.phase === 'Running' || undefined);
      const sid = (await owner.context().cookies()).find((k) => k.name === 'gitspaces_session' && k.domain === host(a.id))?.value ?? '';
      const get = (h: string, accept: string) => new Promise<{ status: number; location?: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port: gatewayPort, path: '/healthz', headers: { host: `${h}:${String(gatewayPort)}`, cookie: `gitspaces_session=${sid}`, accept } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) });
        }).on('error', reject).end();
      });
      expect((await get(host(a.id), 'application/json')).status, 'the session on its own infra (code-server\'s /healthz)').to.equal(200);
      const otherHost = `ssoc--${NS}.${OTHER_DOMAIN}`;
      expect((await get(otherHost, 'application/json')).status, 'a script on the other infra').to.equal(401);
      const nav = await get(otherHost, 'text/html');
      expect(nav.status, 'a page on the other infra').to.equal(303);
      expect(nav.location, 'sent to the other infra\'s own sign-in').to.match(new RegExp(`^http://${OTHER_DOMAIN.replace(/\./g, '\\.')}:${String(gatewayPort)}/`));
    } finally {
      await testCluster().request('DELETE', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/ssoc`);
      await eventually('ssoc to be gone', 60_000, async () => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/ssoc`)).status === 404 || undefined);
      await testCluster().request('DELETE', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/sso-other');
    }
  });

  it('answers 403 after sign-in to a user who is neither owner nor shared with, and admits a member of a shared group', async () => {
    const bob = await (await browser.newContext()).newPage();
    await bob.goto(url(a.id));
    await signIn(bob, 'bob@example.com');
    await bob.waitForURL((u) => u.host === `${host(a.id)}:${String(gatewayPort)}`);
    expect(await bob.locator('body').textContent()).to.include('this Gitspace belongs to someone else');
    const again = await bob.goto(url(a.id));
    expect(again?.status()).to.equal(403);
    await bob.context().close();

    const carol = await (await browser.newContext()).newPage();
    await carol.goto(url('ssob'));
    await signIn(carol, 'carol@example.com');
    await carol.waitForURL((u) => u.host === `${host('ssob')}:${String(gatewayPort)}`);
    expect((await carol.goto(url('ssob')))?.status(), 'group:platform admits carol').to.equal(200);
    expect((await carol.goto(url(a.id)))?.status(), 'no share on the other Gitspace').to.equal(403);
    await carol.context().close();
  });

  it('refreshes the session across access-token expiries while VS Code\'s WebSocket stays open', async () => {
    const refreshes = idp.grants.refresh_token ?? 0;
    const open = ownerSockets.filter((s) => !s.closed && s.url.startsWith(`ws://${host(a.id)}`));
    expect(open.length).to.be.greaterThan(0);
    // Three access-token lifetimes: without refreshes the session would lapse (at most half a lifetime after expiry).
    await sleep(3 * TOKEN_TTL_SEC * 1000);
    expect((idp.grants.refresh_token ?? 0) - refreshes, 'refresh_token grants at the provider').to.be.at.least(2);
    expect(open.every((s) => !s.closed), 'VS Code\'s WebSockets stayed open').to.equal(true);
    // A request now needs the refreshed session too.
    const r = await owner.evaluate(async () => (await fetch('/', { credentials: 'include' })).status);
    expect(r).to.equal(200);
    expect(audit().filter((l) => l.event === 'session.end')).to.deep.equal([]);
  });

  it('ends the session at logout: its WebSocket closes, the provider signs out, and the Gitspace asks for a sign-in again', async () => {
    const open = ownerSockets.filter((s) => !s.closed && s.url.startsWith(`ws://${host(a.id)}`));
    const page = await owner.context().newPage();
    await page.goto(url(a.id, '/.gitspaces/logout'));
    await page.waitForURL(`http://${DOMAIN}:${String(gatewayPort)}/.gitspaces/signed-out`, { timeout: 30_000 });
    expect(await page.locator('body').textContent()).to.include('You are signed out');
    await eventually('VS Code\'s WebSockets to be closed', 10_000, () => open.every((s) => s.closed) || undefined);
    await page.goto(url(a.id));
    await page.waitForURL((u) => u.href.startsWith(`${idp.url}/interaction/`), { timeout: 30_000 });
    await owner.context().close();
  });

  it('writes audit lines for the sign-ins, the Gitspaces opened, the WebSocket and the session\'s end', () => {
    const lines = audit();
    for (const l of lines) {
      expect(l.audit).to.equal('gitspaces.dev/audit/v1');
      expect(Number.isNaN(Date.parse(l.time))).to.equal(false);
    }
    const login = lines.find((l) => l.event === 'login' && l.user === OWNER);
    expect(login).to.include({ infra: 'sso', client: '127.0.0.1', result: 'ok', subject: OWNER });
    const session = String(login?.session);
    expect(session).to.match(/^[0-9a-f]{40}$/);
    expect(lines.filter((l) => l.event === 'session.open' && l.session === session).map((l) => [l.gitspace, l.hostKind, l.user, l.client])).to.deep.include.members([
      [`${NS}/${a.id}`, 'host', OWNER, '127.0.0.1'], [`${NS}/ssob`, 'host', OWNER, '127.0.0.1'],
    ]);
    const ws = lines.find((l) => l.event === 'connection' && l.session === session && l.kind === 'websocket');
    expect(ws).to.include({ user: OWNER, gitspace: `${NS}/${a.id}`, hostKind: 'host', client: '127.0.0.1', result: 'session_ended' });
    expect(ws?.bytesIn).to.be.greaterThan(0);
    expect(ws?.bytesOut).to.be.greaterThan(0);
    expect(Date.parse(String(ws?.end)) - Date.parse(String(ws?.start))).to.be.greaterThan(3 * TOKEN_TTL_SEC * 1000);
    expect(lines.find((l) => l.event === 'session.end' && l.session === session)).to.include({ user: OWNER, infra: 'sso', result: 'logout' });
    const bob = lines.find((l) => l.event === 'login' && l.user === 'bob@example.com');
    expect(bob).to.include({ result: 'ok' });
    expect(lines.find((l) => l.event === 'login' && l.user === 'carol@example.com')?.groups).to.deep.equal(['platform']);
  });

  describe('refusals (no browser)', () => {
    const login = () => `http://${DOMAIN}:${String(gatewayPort)}/.gitspaces/login?rd=${encodeURIComponent(url(a.id))}`;

    /** Runs the flow to the gateway's callback URL (not yet called). */
    async function toCallback(c: Client, user = OWNER): Promise<string> {
      const toIdp = await c.follow(login(), (u) => u.startsWith(`${idp.url}/interaction/`));
      const uid = /interaction\/([\w-]+)/.exec(toIdp.url)?.[1] ?? '';
      await c.get(toIdp.url);
      const done = await c.get(`${idp.url}/interaction/${uid}/login`, { method: 'POST', body: new URLSearchParams({ username: user, password: PASSWORD }).toString() });
      const back = await c.follow(done.location, (u) => u.includes('/.gitspaces/oidc/callback'));
      expect(back.url).to.include('/.gitspaces/oidc/callback?');
      return back.url;
    }

    const failures = (reason: string) => audit().filter((l) => l.event === 'login' && l.result === reason).length;

    it('refuses a callback whose state was tampered with', async () => {
      const c = new Client();
      const cb = new URL(await toCallback(c));
      cb.searchParams.set('state', `${cb.searchParams.get('state') ?? ''}x`);
      const before = failures('bad_state');
      const r = await c.get(cb.href);
      expect(r.status).to.equal(400);
      expect(r.body).to.include('not started here');
      expect(failures('bad_state')).to.equal(before + 1);
    });

    it('refuses a replayed authorization code', async () => {
      const c = new Client();
      const cb = await toCallback(c);
      const flow = new Map(c.jar.get(DOMAIN));
      expect((await c.get(cb)).status).to.equal(303);
      c.jar.set(DOMAIN, flow); // the attacker kept the flow cookie too
      const r = await c.get(cb);
      expect(r.status).to.equal(401);
      expect(r.body).to.include('invalid_grant');
    });

    for (const [what, change] of [
      ['a wrong nonce', (cl: Record<string, unknown>) => ({ ...cl, nonce: 'not-the-one-we-sent' })],
      ['a wrong audience', (cl: Record<string, unknown>) => ({ ...cl, aud: 'another-client' })],
    ] as const) {
      it(`refuses an ID token with ${what}, signed by the provider`, async () => {
        const c = new Client();
        const cb = await toCallback(c);
        const before = failures('token_rejected');
        idp.rewriteIdToken = change;
        try {
          const r = await c.get(cb);
          expect(r.status).to.equal(401);
          expect(r.body).to.include('did not verify');
        } finally {
          idp.rewriteIdToken = undefined;
        }
        expect(failures('token_rejected')).to.equal(before + 1);
        expect(c.jar.get(DOMAIN)?.has('gitspaces_sso') ?? false).to.equal(false);
      });
    }

    it('asks before signing out when another site links to logout; a POST from the Gitspace\'s page signs out', async () => {
      const c = new Client();
      const handoff = await c.get(await toCallback(c));
      expect((await c.follow(handoff.location)).status).to.not.equal(401);
      const use = async () => (await c.get(url(a.id), { headers: { accept: 'application/json' } })).status;
      expect(await use()).to.not.equal(401);
      const asked = await c.get(url(a.id, '/.gitspaces/logout'), { headers: { 'sec-fetch-site': 'cross-site' } });
      expect(asked.status).to.equal(200);
      expect(asked.body).to.include('Sign out of your Gitspaces?');
      expect(await use(), 'still signed in').to.not.equal(401);
      const forged = await c.get(url(a.id, '/.gitspaces/logout'), { method: 'POST', headers: { origin: 'http://evil.example' } });
      expect(forged.status).to.equal(200);
      expect(await use(), 'still signed in').to.not.equal(401);
      const out = await c.get(url(a.id, '/.gitspaces/logout'), { method: 'POST', headers: { origin: `http://${host(a.id)}:${String(gatewayPort)}` } });
      expect(out.status).to.equal(303);
      expect(await use()).to.equal(401);
    });

    it('refuses a return address outside this gateway\'s Gitspaces', async () => {
      const r = await new Client().get(`http://${DOMAIN}:${String(gatewayPort)}/.gitspaces/login?rd=${encodeURIComponent('http://evil.example/')}`);
      expect(r.status).to.equal(400);
    });

    it('answers scripts (no navigation) and WebSockets 401 instead of a redirect, audits the refusal, and counts login failures in metrics', async () => {
      const r = await new Client().get(url(a.id), { headers: { accept: 'application/json' } });
      expect(r.status).to.equal(401);
      const ws = await new Client().get(url(a.id, '/socket'), { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
      expect(ws.status).to.equal(401);
      await eventually('the refusal\'s audit line', 5_000, () => audit().find((l) => l.event === 'connection' && l.result === 'refused_401') ?? undefined);
      expect(audit().find((l) => l.event === 'connection' && l.result === 'refused_401')).to.include({ kind: 'websocket', user: '', gitspace: `${NS}/${a.id}`, client: '127.0.0.1', bytesIn: 0 });
      const metrics = await (await fetch(`http://127.0.0.1:${String(gatewayPort)}/metrics`)).text();
      expect(metrics).to.match(/gitspaces_gateway_login_failures_total\{reason="bad_state"\} [1-9]/);
      expect(metrics).to.match(/gitspaces_gateway_login_failures_total\{reason="token_rejected"\} [2-9]/);
      // The sessions that used the Gitspace lately (the refusal tests' and the browsers').
      expect(Number(new RegExp(`gitspaces_gateway_sessions_active\\{gitspace="${NS}/${a.id}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0)).to.be.at.least(2);
    });
  });
});
