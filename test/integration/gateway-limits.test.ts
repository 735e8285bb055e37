// The gateway's limits against the real API server (a Gitspace whose status the test writes, a fake
// agent that records what reaches it): the failed-credential limit keyed by the client a trusted
// proxy names and blind to requests without a token; the Origin check on cookie-authenticated
// state changes and WebSocket upgrades; `__Host-` session cookies on host routes over TLS; header,
// request and idle timeouts; and a connection cap answered with 503.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Gateway, type GatewayOptions } from '../../src/gateway/server.ts';
import { MESSAGES } from '../../src/gateway/pages.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { createHopKey, FakeAgent, gitspaceWithStatus, tokenFor } from '../support/fake-agent.ts';
import { infraManifest, k8s } from '../support/gitspaces.ts';
import { TestIssuer } from '../support/issuer.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const KEYS_NS = 'gwl-keys';
const INFRA = 'gwl-local';
const HOST = 'beta--default.gwl.localhost';
const OWNER = 'alice@example.com';
const KEY = 'hop-key-of-the-limits-test-0123456789';

interface Reply { status: number; body: string; headers: Record<string, string | string[] | undefined> }

function send(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', hostHeader = HOST): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: hostHeader, ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, headers: res.headers }); });
    });
    req.on('error', reject);
    req.end();
  });
}

function upgrade(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${String(port)}/ws`, { headers: { host: HOST, ...headers } });
    ws.once('open', () => { ws.close(); resolve(101); });
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.once('error', reject);
  });
}

/** A raw connection; resolves how long until the gateway closed it, and what it said. */
function closedAfter(port: number, write: (s: Socket) => void, limitMs: number): Promise<{ ms: number; text: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = '';
    const s = connect(port, '127.0.0.1', () => { write(s); });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', () => undefined);
    s.on('close', () => { resolve({ ms: Date.now() - t0, text }); });
    setTimeout(() => { s.destroy(); }, limitMs);
  });
}

describe('gateway limits: failed credentials, Origin, cookies, timeouts, connection cap', function () {
  this.timeout(120_000);
  let issuer: TestIssuer;
  let agent: FakeAgent;
  let owner: string;
  const gateways: Gateway[] = [];
  const m: Manifest = {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: 'beta', namespace: 'default' },
    spec: { infraRef: { name: INFRA }, owner: OWNER, repository: { url: 'https://example.com/app.git' }, machineType: 'small' },
  };

  const gateway = async (o: Partial<GatewayOptions> = {}): Promise<Gateway> => {
    const gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', namespace: KEYS_NS, drainDelayMs: 0, drainMs: 200, ...o });
    gateways.push(gw);
    await gw.start();
    await eventually('the Gitspace routed', 5_000, async () => (await send(gw.port, '/', { authorization: `Bearer ${owner}` })).status === 200);
    return gw;
  };

  before(async () => {
    issuer = await TestIssuer.start();
    owner = await issuer.token(OWNER);
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: KEYS_NS } } });
    await createHopKey(KEYS_NS, KEY);
    const infra = infraManifest(INFRA, '');
    Object.assign(infra.spec as object, { auth: { issuer: issuer.url, audience: issuer.audience }, gateway: { domain: 'gwl.localhost' } });
    await k8s.apply(infra);
    agent = await FakeAgent.start('127.15.0.1');
    const g = await gitspaceWithStatus(m, { phase: 'Running', instance: { provider: 'local', name: 'vm', privateIP: '127.15.0.1' } });
    agent.token = tokenFor(KEY, g);
  });

  after(async () => {
    for (const gw of gateways) await gw.stop();
    await k8s.deleteAndWait(m);
    await k8s.deleteAndWait(infraManifest(INFRA, ''));
    await agent.stop();
    await issuer.stop();
  });

  it('counts only failed credentials, per client: anonymous requests lock nobody out, and behind a trusted proxy each client has its own budget', async () => {
    const gw = await gateway({ authFailureBurst: 3, authFailureRate: 0.01, trustedProxies: ['127.0.0.1'] });
    for (let i = 0; i < 25; i++) expect((await send(gw.port, `/anon${String(i)}`)).status).to.equal(401);
    expect((await send(gw.port, '/', { authorization: `Bearer ${owner}` })).status, 'the owner after 25 anonymous requests').to.equal(200);
    const from = (ip: string, token: string) => send(gw.port, '/', { 'x-forwarded-for': `198.51.100.1, ${ip}`, authorization: `Bearer ${token}` });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await from('203.0.113.7', 'nope')).status);
    expect(codes).to.deep.equal([401, 401, 401, 429, 429]);
    expect((await from('203.0.113.7', owner)).status, 'the blocked client').to.equal(429);
    expect((await from('203.0.113.8', owner)).status, 'another client behind the same proxy').to.equal(200);

    // Without trust in the peer, X-Forwarded-For is the client's own claim and changes nothing.
    const plain = await gateway({ authFailureBurst: 3, authFailureRate: 0.01, trustedProxies: ['10.0.0.0/8'] });
    const spoofed: number[] = [];
    for (let i = 0; i < 5; i++) spoofed.push((await send(plain.port, '/', { 'x-forwarded-for': `203.0.113.${String(i + 20)}`, authorization: 'Bearer nope' })).status);
    expect(spoofed).to.deep.equal([401, 401, 401, 429, 429]);
  });

  it('refuses cookie-authenticated state changes and WebSocket upgrades from another origin; Bearer requests need no Origin', async () => {
    const gw = await gateway();
    const exchanged = await send(gw.port, `/?token=${owner}`);
    const cookie = String(exchanged.headers['set-cookie']).split(';')[0] ?? '';
    expect(cookie).to.match(/^gitspaces_session=/);
    const before = agent.seen.length;
    const evil = await send(gw.port, '/change', { cookie, origin: 'http://evil.example' }, 'POST');
    expect(evil.status).to.equal(403);
    expect(evil.body).to.equal(`${MESSAGES.crossOrigin}\n`);
    expect((await send(gw.port, '/change', { cookie, origin: 'null' }, 'DELETE')).status).to.equal(403);
    expect((await send(gw.port, '/change', { cookie, origin: `https://${HOST}` }, 'PUT')).status, 'another scheme').to.equal(403);
    expect(agent.seen.length - before, 'refused requests at the agent').to.equal(0);
    expect((await send(gw.port, '/change', { cookie, origin: `http://${HOST}` }, 'POST')).status, 'same origin').to.equal(200);
    expect((await send(gw.port, '/change', { cookie }, 'POST')).status, 'no Origin (not a browser)').to.equal(200);
    expect((await send(gw.port, '/read', { cookie, origin: 'http://evil.example' })).status, 'a GET').to.equal(200);
    expect((await send(gw.port, '/change', { authorization: `Bearer ${owner}`, origin: 'http://evil.example' }, 'POST')).status, 'Bearer').to.equal(200);

    expect(await upgrade(gw.port, { cookie, origin: 'http://evil.example' }), 'cross-site WebSocket with the cookie').to.equal(403);
    expect(await upgrade(gw.port, { cookie, origin: `http://${HOST}` })).to.equal(101);
    expect(await upgrade(gw.port, { authorization: `Bearer ${owner}`, origin: 'http://evil.example' })).to.equal(101);
  });

  it('sets a __Host- session cookie on host routes over TLS (or behind a trusted https proxy), and reads only that one there', async () => {
    const work = mkdtempSync(join(tmpdir(), 'gitspaces-gwl-'));
    try {
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${HOST}`, '-keyout', join(work, 'k'), '-out', join(work, 'c')], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      const ca = readFileSync(join(work, 'c'));
      const tls = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', namespace: KEYS_NS, drainDelayMs: 0, drainMs: 200, tls: { cert: ca.toString(), key: readFileSync(join(work, 'k'), 'utf8') } });
      gateways.push(tls);
      await tls.start();
      const get = (path: string, headers: Record<string, string> = {}, hostHeader = HOST) => new Promise<Reply>((resolve, reject) => {
        const q = httpsRequest({ host: '127.0.0.1', port: tls.port, path, headers: { host: hostHeader, ...headers }, ca, servername: HOST, agent: false }, (res) => {
          res.resume();
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: '', headers: res.headers }); });
        });
        q.on('error', reject);
        q.end();
      });
      await eventually('routed over TLS', 5_000, async () => (await get('/', { authorization: `Bearer ${owner}` })).status === 200);
      const hostCookie = String((await get(`/?token=${owner}`)).headers['set-cookie']);
      expect(hostCookie).to.match(/^__Host-gitspaces_session=[\w.-]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Lax$/);
      const pathCookie = String((await get(`/gitspaces/default/beta/?token=${owner}`, {}, 'gateway.internal')).headers['set-cookie']);
      expect(pathCookie).to.match(/^gitspaces_session=[\w.-]+; Path=\/gitspaces\/default\/beta\/;/);
      expect((await get('/', { cookie: hostCookie.split(';')[0] ?? '' })).status).to.equal(200);
      expect((await get('/', { cookie: `gitspaces_session=${owner}` })).status, 'the unprefixed cookie on a host route over TLS').to.equal(401);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // Behind a proxy that terminates TLS: only a trusted one's X-Forwarded-Proto counts.
    const behind = await gateway({ trustedProxies: ['127.0.0.0/8'] });
    expect(String((await send(behind.port, `/?token=${owner}`, { 'x-forwarded-proto': 'https' })).headers['set-cookie'])).to.match(/^__Host-gitspaces_session=/);
    const untrusting = await gateway();
    expect(String((await send(untrusting.port, `/?token=${owner}`, { 'x-forwarded-proto': 'https' })).headers['set-cookie'])).to.match(/^gitspaces_session=/);
  });

  it('closes connections that send headers or a body too slowly or sit idle', async () => {
    const gw = await gateway({ headersTimeoutMs: 500, requestTimeoutMs: 1_000, httpIdleMs: 1_000 });
    const slowHeaders = await closedAfter(gw.port, (s) => s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n`), 5_000);
    expect(slowHeaders.ms, 'headers never finished').to.be.below(3_000);
    const slowBody = await closedAfter(gw.port, (s) => {
      s.write(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nAuthorization: Bearer ${owner}\r\nContent-Length: 100\r\n\r\n`);
      const t = setInterval(() => { if (!s.destroyed) s.write('x'); else clearInterval(t); }, 200);
      s.once('close', () => { clearInterval(t); });
    }, 6_000);
    expect(slowBody.ms, 'a body dripped a byte per 200 ms').to.be.below(4_000);
    const idle = await closedAfter(gw.port, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: gateway.internal\r\n\r\n`), 5_000);
    expect(idle.text).to.match(/^HTTP\/1\.1 200/);
    expect(idle.ms, 'an idle kept-alive connection').to.be.below(3_000);
  });

  it('answers 503 beyond its connection cap, and serves again when connections close', async () => {
    const gw = await gateway({ maxConnections: 3 });
    await new Promise((r) => setTimeout(r, 200)); // the readiness probe's connection is gone
    const held: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(gw.port, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      held.push(s);
    }
    await new Promise((r) => setTimeout(r, 100));
    const over = await send(gw.port, '/', { authorization: `Bearer ${owner}` });
    expect(over.status).to.equal(503);
    expect(over.body).to.equal(`${MESSAGES.busy}\n`);
    for (const s of held) s.destroy();
    await eventually('served again', 3_000, async () => (await send(gw.port, '/', { authorization: `Bearer ${owner}` })).status === 200);
  });
});
