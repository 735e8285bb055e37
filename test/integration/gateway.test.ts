// The gateway against the real API server and a real agent (local provider): routes from
// Gitspace.status, JWTs from a test issuer (JWKS over HTTP), owner/sharedWith authorisation, the
// token→cookie exchange, WebSocket and SSH-over-WebSocket (a real `ssh` through `gitspaces ssh`
// as ProxyCommand), batched activity, and a table of hostile requests none of which reaches the
// agent (it counts every request by path).
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { AGENT_HTTP_PORT, PORT_HEADER, SECRET_HEADER, type Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, sshViaGateway, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { hopTokenOf } from '../support/hop.ts';
import { hmacWithPublicKey, tamper, TestIssuer, unsignedToken } from '../support/issuer.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { ROOT, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'gw';
const DOMAIN = 'gitspaces.localhost';
const HOST = `gw-app--default.${DOMAIN}`;
const OWNER = 'alice@example.com';
const FRIEND = 'bob@example.com';
const STRANGER = 'mallory@example.com';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('gateway (real API server, real agent, test issuer)', function () {
  this.timeout(120_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let issuer: TestIssuer;
  let op: Operator;
  let gw: Gateway;
  let app: Manifest;
  let running: Gitspace;
  let agentSecret: string;
  /** A public forwarded port's server on the "VM" (its loopback is the host's). */
  let devPort: number;
  let devServer: Server;

  const send = (path: string, o: { host?: string; headers?: Record<string, string>; method?: string; port?: number } = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: o.port ?? gw.port, path, method: o.method ?? 'GET', headers: { host: o.host ?? HOST, ...o.headers } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      });
      req.on('error', reject);
      req.end();
    });
  /** A raw request (for what a well-behaved client library would refuse to send). */
  const raw = (text: string, port = gw.port): Promise<string> =>
    new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write(text));
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        out += d;
        if (out.includes('\r\n\r\n')) s.end();
      });
      s.on('close', () => {
        resolve(out);
      });
      s.on('error', () => {
        resolve(out);
      });
      s.setTimeout(5_000, () => s.destroy());
    });
  const statusOf = (rawReply: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(rawReply)?.[1] ?? 0);
  const bearer = async (sub: string) => ({ authorization: `Bearer ${await issuer.token(sub)}` });
  const agentStats = async (): Promise<Record<string, number>> => {
    const ip = running.status?.instance?.privateIP ?? '';
    const r = await fetch(`http://${ip}:${AGENT_HTTP_PORT}/v1/stats`, { headers: { [SECRET_HEADER]: agentSecret } });
    return ((await r.json()) as { requests: Record<string, number> }).requests;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-gw-'));
    repo = makeRepo(work);
    key = makeSshKey();
    issuer = await TestIssuer.start();
    const infra = infraManifest(INFRA, join(work, 'instances'));
    (infra.spec as Record<string, unknown>).auth = { issuer: issuer.url, audience: issuer.audience };
    (infra.spec as { gateway: Record<string, unknown> }).gateway.allowPublicPorts = true;
    devPort = await freePort();
    devServer = createServer((req, res) => {
      req.resume();
      res.end(`dev server ${req.method ?? ''} ${req.url ?? ''}\n`);
    });
    await new Promise<void>((r) => devServer.listen(devPort, '127.0.0.1', r));
    await k8s.apply(infra);
    const provider = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider, realAgent: true, sweep: false });
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', activityIntervalMs: 300, jwksCooldownMs: 0, authFailureBurst: 1_000, drainDelayMs: 0 });
    await gw.start();
    app = gitspaceManifest('gw-app', { infra: INFRA, repo, key });
    Object.assign(app.spec as Record<string, unknown>, { owner: OWNER, sharedWith: [FRIEND], ports: [{ port: devPort, visibility: 'public' }] });
    await k8s.apply(app);
    running = await k8s.waitPhase(app, 'Running', 60_000);
    agentSecret = await hopTokenOf(running);
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await gw.stop();
      await op.manager.stop();
      await issuer.stop();
      devServer.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('lets the owner and those it is shared with through, by host and by path; others get 403, no token 401, unknown 404', async () => {
    const owner = await send('/', { headers: await bearer(OWNER) });
    expect(owner.status, owner.body).to.equal(200);
    expect(owner.body).to.include('Gitspace default/gw-app').and.include(running.status?.urls?.ide?.includes('folder') ? '' : '/repo');
    const byPath = await send('/gitspaces/default/gw-app/', { host: 'gateway.internal', headers: await bearer(OWNER) });
    expect(byPath.status).to.equal(200);
    expect(byPath.body).to.include('Gitspace default/gw-app');
    expect((await send('/', { headers: await bearer(FRIEND) })).status).to.equal(200);
    const stranger = await send('/', { headers: await bearer(STRANGER) });
    expect(stranger.status).to.equal(403);
    expect(stranger.body).to.equal('this Gitspace belongs to someone else\n');
    const none = await send('/');
    expect(none.status).to.equal(401);
    expect(none.headers['www-authenticate']).to.equal('Bearer realm="gitspaces"');
    expect((await send('/', { host: `nope--default.${DOMAIN}`, headers: await bearer(OWNER) })).status).to.equal(404);
  });

  it('exchanges a one-time ?token= for an HttpOnly session cookie scoped to the host and drops it from the URL', async () => {
    const token = await issuer.token(OWNER);
    const r = await send(`/?token=${token}&tab=2`);
    expect(r.status).to.equal(303);
    expect(r.headers.location).to.equal('/?tab=2');
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).to.match(/^gitspaces_session=[\w.-]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Lax$/);
    expect(cookie).to.not.match(/Domain=/i);
    const session = cookie.split(';')[0] ?? '';
    const page = await send('/?tab=2', { headers: { cookie: session } });
    expect(page.status).to.equal(200);
    expect(page.body).to.not.include(token);
    // path routes scope the cookie to the Gitspace's path
    const p = await send(`/gitspaces/default/gw-app/?token=${token}`, { host: 'gateway.internal' });
    expect(String(p.headers['set-cookie'])).to.include('Path=/gitspaces/default/gw-app/;');
    expect(p.headers.location).to.equal('/gitspaces/default/gw-app/');
  });

  it('proxies a WebSocket with the same authentication', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/v1/events`, { headers: { host: HOST, ...(await bearer(OWNER)) } });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => { resolve(d.toString('utf8')); });
      ws.once('error', reject);
    });
    expect(JSON.parse(first)).to.include({ state: 'ready' });
    expect((await gw.registry.getSingleMetricAsString('gitspaces_gateway_websockets_active'))).to.match(/gitspaces_gateway_websockets_active 1$/m);
    ws.close();
    const refused = await raw(`GET /v1/events HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    expect(statusOf(refused)).to.equal(401);
  });

  it('carries SSH over a WebSocket: a real ssh client with `gitspaces ssh` as ProxyCommand runs a command in the checkout', async () => {
    const keyFile = join(work, 'id_ecdsa');
    writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    const gateway = `http://127.0.0.1:${String(gw.port)}`;
    const { code, out, err } = await sshViaGateway({ gateway, host: HOST, keyFile, token: await issuer.token(OWNER), command: 'pwd; cat README.md' });
    expect(code, err).to.equal(0);
    expect(out).to.include(`${work}/instances`).and.include('/repo\n').and.include('# sample');

    // Without a valid token the ProxyCommand is refused and ssh fails.
    const denied = await sshViaGateway({ gateway, host: HOST, keyFile, token: await issuer.token(STRANGER), command: 'true', options: ['-o', 'ConnectTimeout=10'] });
    expect(denied.code).to.not.equal(0);
    expect(denied.err).to.include('the gateway refused the SSH connection: 403');
  });

  it('`gitspaces ssh-config` prints the entry desktop IDEs use, and ssh connects with it alone', async () => {
    const keyFile = join(work, 'id_ecdsa_cfg');
    writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    const cli = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'ssh-config', '--gateway', `http://127.0.0.1:${gw.port}`, '--identity-file', keyFile, '--command', `${process.execPath} ${join(ROOT, 'src/cli/main.ts')}`, HOST], { encoding: 'utf8' });
    expect(cli.status, cli.stderr).to.equal(0);
    expect(cli.stdout).to.include(`Host ${HOST}\n`).and.include('  User gitspace\n').and.include(' ssh --gateway http://127.0.0.1:');
    const config = join(work, 'ssh_config');
    writeFileSync(config, cli.stdout);
    const child = spawn('ssh', ['-F', config, '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', HOST, 'pwd'], {
      env: { ...process.env, GITSPACES_TOKEN: await issuer.token(OWNER) },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    expect(await new Promise<number | null>((r) => child.on('close', r)), err).to.equal(0);
    expect(out.trim()).to.match(/\/repo$/);
  });

  it('refuses a table of hostile requests with the right status, and none reaches the agent', async () => {
    const owner = await issuer.token(OWNER);
    const stranger = await issuer.token(STRANGER);
    const otherKey = await issuer.addKey('k9', false);
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer.url, aud: issuer.audience, sub: OWNER, iat: now, exp: now + 600 };
    const k1 = issuer.keys[0]!;
    type Row = [name: string, path: string, expected: number, o: { headers?: Record<string, string>; method?: string; host?: string; raw?: string }];
    const rows: Row[] = [
      ['no token', '/t01', 401, {}],
      ['expired', '/t02', 401, { headers: { authorization: `Bearer ${await issuer.token(OWNER, { expSec: -120 })}` } }],
      ['not yet valid', '/t03', 401, { headers: { authorization: `Bearer ${await issuer.token(OWNER, { nbfSec: 600 })}` } }],
      ['wrong audience', '/t04', 401, { headers: { authorization: `Bearer ${await issuer.token(OWNER, { aud: 'other-app' })}` } }],
      ['wrong issuer', '/t05', 401, { headers: { authorization: `Bearer ${await issuer.token(OWNER, { iss: 'https://evil.example.com' })}` } }],
      ['alg none', '/t06', 401, { headers: { authorization: `Bearer ${unsignedToken(claims)}` } }],
      ['HS256 signed with the public key', '/t07', 401, { headers: { authorization: `Bearer ${await hmacWithPublicKey(claims, k1.publicJwk, k1.kid)}` } }],
      ['unknown kid', '/t08', 401, { headers: { authorization: `Bearer ${await issuer.token(OWNER, { key: otherKey })}` } }],
      ['tampered payload', '/t09', 401, { headers: { authorization: `Bearer ${tamper(stranger, { sub: OWNER })}` } }],
      ['garbage token', '/t10', 401, { headers: { authorization: 'Bearer abc' } }],
      ['empty bearer', '/t11', 401, { headers: { authorization: 'Bearer ' } }],
      ['no subject', '/t12', 401, { headers: { authorization: `Bearer ${await issuer.token(undefined)}` } }],
      ['Basic credentials', '/t13', 401, { headers: { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` } }],
      ["someone else's Gitspace", '/t14', 403, { headers: { authorization: `Bearer ${stranger}` } }],
      ['tampered session cookie', '/t15', 401, { headers: { cookie: `gitspaces_session=${tamper(stranger, { sub: OWNER })}` } }],
      ['exchange with a bad token', '/t16?token=bad', 401, {}],
      ['token in the query of a POST', '/t17?token=' + owner, 401, { method: 'POST' }],
      ['spoofed secret header, no token', '/t18', 401, { headers: { [SECRET_HEADER]: agentSecret } }],
      ['path traversal', '/gitspaces/a/b/../../default/gw-app/t19', 400, { host: 'gateway.internal', headers: { authorization: `Bearer ${owner}` } }],
      ['encoded slash', '/gitspaces/default%2fgw-app/t20', 400, { host: 'gateway.internal', headers: { authorization: `Bearer ${owner}` } }],
      ['encoded dot segments', '/%2e%2e/t21', 400, { headers: { authorization: `Bearer ${owner}` } }],
      ['unknown Gitspace host', '/t22', 404, { host: `ghost--default.${DOMAIN}`, headers: { authorization: `Bearer ${owner}` } }],
      ['unknown Gitspace path', '/gitspaces/default/ghost/t23', 404, { host: 'gateway.internal', headers: { authorization: `Bearer ${owner}` } }],
      ['Host naming the agent directly', '/t24', 404, { host: `${running.status?.instance?.privateIP ?? ''}:${AGENT_HTTP_PORT}`, headers: { authorization: `Bearer ${owner}` } }],
      ['X-Forwarded-Host spoofing a Gitspace', '/t25', 404, { host: 'gateway.internal', headers: { 'x-forwarded-host': HOST, authorization: `Bearer ${owner}` } }],
      ['absolute-URI request target', '', 400, { raw: `GET http://${running.status?.instance?.privateIP ?? ''}:${AGENT_HTTP_PORT}/t26 HTTP/1.1\r\nHost: ${HOST}\r\nAuthorization: Bearer ${owner}\r\n\r\n` }],
      ['backslash in the path', '', 400, { raw: `GET /a\\..\\t27 HTTP/1.1\r\nHost: ${HOST}\r\nAuthorization: Bearer ${owner}\r\n\r\n` }],
      ['request smuggling (Transfer-Encoding + Content-Length)', '', 400, { raw: `POST /t28 HTTP/1.1\r\nHost: ${HOST}\r\nAuthorization: Bearer ${owner}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /t28b HTTP/1.1\r\nHost: ${HOST}\r\n\r\n` }],
      ['two Host headers', '', 400, { raw: `GET /t29 HTTP/1.1\r\nHost: ${HOST}\r\nHost: gateway.internal\r\nAuthorization: Bearer ${owner}\r\n\r\n` }],
      ['WebSocket upgrade without a token', '', 401, { raw: `GET /t30 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n` }],
    ];
    expect(rows.length).to.be.at.least(25);
    for (const [name, path, expected, o] of rows) {
      const status = o.raw !== undefined ? statusOf(await raw(o.raw)) : (await send(path, { ...(o.host ? { host: o.host } : {}), ...(o.headers ? { headers: o.headers } : {}), ...(o.method ? { method: o.method } : {}) })).status;
      expect(status, name).to.equal(expected);
    }
    const seen = Object.keys(await agentStats()).filter((p) => /t\d\d/.test(p));
    expect(seen, 'paths of the table that reached the agent').to.deep.equal([]);
    const failures = await gw.registry.getSingleMetricAsString('gitspaces_gateway_auth_failures_total');
    for (const reason of ['missing', 'expired', 'not_yet_valid', 'wrong_audience', 'wrong_issuer', 'bad_algorithm', 'unknown_key', 'bad_signature', 'malformed', 'not_owner']) expect(failures, reason).to.include(`reason="${reason}"`);
  });

  it('tells the agent about use in batches, not per request', async () => {
    const h = await bearer(OWNER);
    const sentBefore = gw.activity.sent;
    const ip = running.status?.instance?.privateIP ?? '';
    const activityOf = async () => (await (await fetch(`http://${ip}:${AGENT_HTTP_PORT}/activity`, { headers: { [SECRET_HEADER]: agentSecret } })).json()) as { lastActivityTime: string };
    const t0 = Date.now();
    for (let i = 0; i < 40; i++) await send('/healthz', { headers: h });
    await eventually('the batched report', 5_000, async () => Date.parse((await activityOf()).lastActivityTime) >= t0 && gw.activity.sent > sentBefore);
    expect(gw.activity.sent - sentBefore, 'reports for 40 requests').to.be.at.most(4);
  });

  it('sends a forwarded port\'s requests to that port whatever the path, never to the agent\'s own endpoints; anonymous visitors keep nothing awake', async () => {
    const portHost = `${String(devPort)}--gw-app--default.${DOMAIN}`;
    const ip = running.status?.instance?.privateIP ?? '';
    const activityOf = async () => ((await (await fetch(`http://${ip}:${AGENT_HTTP_PORT}/activity`, { headers: { [SECRET_HEADER]: agentSecret } })).json()) as { lastActivityTime: string }).lastActivityTime;
    await gw.activity.flush();
    await new Promise((r) => setTimeout(r, 400)); // reports of earlier tests' requests are out
    const t0 = await activityOf();
    for (const [method, path] of [['GET', '/healthz'], ['POST', '/activity'], ['GET', '/activity'], ['GET', '/v1/stats'], ['GET', '/']] as const) {
      const r = await send(path, { host: portHost, method });
      expect(r.body, `${method} ${path} on the public port`).to.equal(`dev server ${method} ${path}\n`);
    }
    await gw.activity.flush();
    expect(await activityOf(), 'last activity after anonymous use of the public port').to.equal(t0);
    // At the agent itself, with the hop token: a port it does not forward is 404, not its health.
    const direct = await fetch(`http://${ip}:${AGENT_HTTP_PORT}/healthz`, { headers: { [SECRET_HEADER]: agentSecret, [PORT_HEADER]: '1' } });
    expect(direct.status).to.equal(404);
    expect(await direct.text()).to.equal('this port is not forwarded\n');
  });

  it('picks up a new signing key (rotation) on an unknown kid', async () => {
    const k2 = await issuer.addKey('k2');
    const fetches = issuer.fetches;
    const r = await send('/', { headers: { authorization: `Bearer ${await issuer.token(OWNER, { key: k2 })}` } });
    expect(r.status).to.equal(200);
    expect(issuer.fetches).to.equal(fetches + 1);
  });

  it('verifies with a static key set from a Secret instead of fetching the JWKS', async () => {
    const offline = await issuer.addKey('k-static', false); // never published at the JWKS URI
    const jwks = { keys: [offline.publicJwk] };
    await testCluster().request('POST', '/api/v1/namespaces/default/secrets', { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'static-jwks' }, data: { 'jwks.json': Buffer.from(JSON.stringify(jwks)).toString('base64') } } });
    const infra = infraManifest(INFRA, '');
    const original = { issuer: issuer.url, audience: issuer.audience };
    await k8s.patch(infra, { spec: { auth: { ...original, jwksSecretRef: { name: 'static-jwks' } } } });
    try {
      const fetches = issuer.fetches;
      const signedOffline = `Bearer ${await issuer.token(OWNER, { key: offline })}`;
      await eventually('the static key set to be used', 5_000, async () => (await send('/', { headers: { authorization: signedOffline } })).status === 200);
      expect((await send('/', { headers: { authorization: `Bearer ${await issuer.token(OWNER)}` } })).status, 'a key only at the JWKS URI').to.equal(401);
      expect(issuer.fetches, 'JWKS fetches').to.equal(fetches);
    } finally {
      await k8s.patch(infra, { spec: { auth: { ...original, jwksSecretRef: null } } });
    }
    await eventually('the JWKS URI to be used again', 5_000, async () => (await send('/', { headers: { authorization: `Bearer ${await issuer.token(OWNER)}` } })).status === 200);
  });

  it('answers 503 with Retry-After within a second of the Gitspace stopping, and routes again when it runs', async () => {
    const h = await bearer(OWNER);
    await k8s.patch(app, { spec: { state: 'Stopped' } });
    await k8s.waitFor(app, (g) => g.status?.phase === 'Stopping' || g.status?.phase === 'Stopped', 30_000);
    const seenStopped = Date.now();
    await eventually('503', 1_000, async () => (await send('/', { headers: h })).status === 503);
    expect(Date.now() - seenStopped).to.be.below(1_000);
    const r = await send('/', { headers: h });
    expect(r.headers['retry-after']).to.be.oneOf(['5', '30']);
    expect(r.body).to.include('gw-app');
    await k8s.waitPhase(app, 'Stopped', 30_000);
    await k8s.patch(app, { spec: { state: 'Running' } });
    running = await k8s.waitPhase(app, 'Running', 60_000);
    await eventually('200 again', 2_000, async () => (await send('/', { headers: h })).status === 200);
  });

  it('serves TLS, and drains on stop: not ready at once, open connections served until the end', async () => {
    const cert = join(work, 'tls.crt');
    const keyPem = join(work, 'tls.key');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=*.${DOMAIN}`, '-keyout', keyPem, '-out', cert], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const tls = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(keyPem, 'utf8') }, drainDelayMs: 800 });
    await tls.start();
    const get = (path: string, headers: Record<string, string> = {}, host = HOST) => new Promise<number>((resolve, reject) => {
      const q = httpsRequest({ host: '127.0.0.1', port: tls.port, path, headers: { host, ...headers }, ca: readFileSync(cert), servername: HOST, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      q.on('error', reject);
      q.end();
    });
    expect(await get('/', await bearer(OWNER))).to.equal(200);
    const ws = new WebSocket(`wss://127.0.0.1:${tls.port}/v1/events`, { headers: { host: HOST, ...(await bearer(OWNER)) }, rejectUnauthorized: false });
    await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
    let wsClosedAt = 0;
    ws.on('close', () => (wsClosedAt = Date.now()));
    const stopping = tls.stop();
    const stopAsked = Date.now();
    expect(await get('/readyz', {}, 'gateway.internal'), 'readyz while draining').to.equal(503);
    expect(await get('/', await bearer(OWNER)), 'still serving during the drain delay').to.equal(200);
    await stopping;
    await eventually('the WebSocket to be closed', 2_000, () => wsClosedAt > 0);
    expect(wsClosedAt - stopAsked).to.be.at.least(700);
  });

  it('keeps busy long-lived connections and reaps idle ones', async () => {
    const reaper = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', idleMs: 800, drainDelayMs: 0 });
    await reaper.start();
    try {
      const headers = { host: HOST, ...(await bearer(OWNER)) };
      const open = async (path: string) => {
        const ws = new WebSocket(`ws://127.0.0.1:${reaper.port}${path}`, { headers, perMessageDeflate: false });
        await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
        let closedAt = 0;
        ws.on('close', () => (closedAt = Date.now()));
        return { ws, closedAt: () => closedAt };
      };
      const t0 = Date.now();
      const busy = await open('/v1/events'); // the agent sends a snapshot every 2 s; we talk every 300 ms
      const talk = setInterval(() => { busy.ws.send('ping'); }, 300);
      const silent = await open('/.gitspaces/ssh'); // an SSH session nobody types into
      await new Promise((r) => setTimeout(r, 2_500));
      clearInterval(talk);
      expect(busy.closedAt(), 'busy connection').to.equal(0);
      expect(silent.closedAt(), 'idle connection reaped').to.be.above(0);
      expect(silent.closedAt() - t0).to.be.below(2_000);
      busy.ws.close();
    } finally {
      await reaper.stop();
    }
  });

  it('answers 502 when the agent does not answer', async () => {
    const dir = join(work, 'instances', running.status?.instance?.name ?? '');
    const pid = Number(readFileSync(join(dir, 'agent.pid'), 'utf8'));
    process.kill(-pid, 'SIGKILL');
    const r = await send('/', { headers: await bearer(OWNER) });
    expect([502, 503]).to.include(r.status);
    if (r.status === 502) expect(r.body).to.equal('the Gitspace did not answer\n');
  });

  it('serves /healthz, /readyz and /metrics on its own host (its limits: gateway-limits.test.ts)', async () => {
    expect((await send('/healthz', { host: 'gateway.internal' })).body).to.equal('ok\n');
    expect((await send('/readyz', { host: 'gateway.internal' })).status).to.equal(200);
    const metrics = await send('/metrics', { host: 'gateway.internal' });
    expect(metrics.body).to.include('gitspaces_gateway_requests_total{host_class="host",code="200"}').and.include('gitspaces_gateway_request_duration_seconds_bucket');
  });
});
