// The gateway against the real API server, with Gitspaces whose status the test writes as anyone
// with gitspaces/status could (no operator serves their infras) and fake agents that record what
// reaches them. Routes come from derived facts only: the host from name, namespace and domain, the
// upstream from the instance's private address on the agent port, the hop token from one key
// Secret in the gateway's namespace — status.route.host / ports[].host / upstream are ignored.
// Also: preflights on non-public ports, the SSH bridge on the main host only, and backpressure.
import { expect } from 'chai';
import { request } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { Gitspace } from '../../src/api/index.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { MESSAGES } from '../../src/gateway/pages.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { createHopKey, FakeAgent, gitspaceWithStatus, tokenFor } from '../support/fake-agent.ts';
import { infraManifest, k8s } from '../support/gitspaces.ts';
import { TestIssuer } from '../support/issuer.ts';
import { loadManifests, ROOT, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const KEYS_NS = 'gwr-keys';
const LOCAL = 'gwr-local';
const GCP = 'gwr-gcp';
const DOMAIN = 'gwr.localhost';
const OWNER = 'alice@example.com';
const KEY = 'hop-key-of-the-routes-test-0123456789';
const host = (name: string, port?: number) => `${port ? `${String(port)}--` : ''}${name}--default.${DOMAIN}`;

interface Reply { status: number; body: string }

function send(port: number, hostHeader: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: hostHeader, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }); });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket through the gateway; resolves with it, or with the refusal's status. */
function openWs(port: number, hostHeader: string, path: string, headers: Record<string, string>): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${String(port)}${path}`, { headers: { host: hostHeader, ...headers }, perMessageDeflate: false });
    ws.once('open', () => {
      ws.on('error', () => undefined); // a reset after the test is done with it
      resolve(ws);
    });
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.once('error', reject);
  });
}

function gitspace(name: string, infra: string, ports: { port: number; visibility?: string }[] = []): Manifest {
  return {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: 'default' },
    spec: { infraRef: { name: infra }, owner: OWNER, repository: { url: 'https://example.com/app.git' }, machineType: 'small', ...(ports.length ? { ports } : {}) },
  };
}

describe('gateway routes from derived facts (real API server, fake agents)', function () {
  this.timeout(120_000);
  let issuer: TestIssuer;
  let gw: Gateway;
  const agents: Record<string, FakeAgent> = {};
  const made: Manifest[] = [];
  let alpha: Gitspace;
  let owner: Record<string, string>;

  before(async () => {
    issuer = await TestIssuer.start();
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: KEYS_NS } } });
    const auth = { issuer: issuer.url, audience: issuer.audience };
    const local = infraManifest(LOCAL, '');
    Object.assign(local.spec as object, { auth, gateway: { domain: DOMAIN, allowPublicPorts: true } });
    const gcp = loadManifests(join(ROOT, 'examples/infra-gcp.yaml'))[0] as Manifest;
    gcp.metadata = { name: GCP };
    const gcpSpec = gcp.spec as Record<string, unknown>;
    delete gcpSpec.pool;
    Object.assign(gcpSpec, { auth, gateway: { ...(gcpSpec.gateway as object), domain: `gcp.${DOMAIN}`, tlsSecretRef: undefined } });
    for (const i of [local, gcp]) await k8s.apply(JSON.parse(JSON.stringify(i)) as Manifest);
    for (const [n, a] of [['alpha', '127.14.0.1'], ['mallet', '127.14.0.2'], ['other', '127.14.0.3']] as const) agents[n] = await FakeAgent.start(a);
    // The gateway starts before the operator has made the hop key.
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', namespace: KEYS_NS, drainDelayMs: 0, authFailureBurst: 1_000 });
    await gw.start();
    owner = { authorization: `Bearer ${await issuer.token(OWNER)}` };
    const running = (ip: string, extra: Record<string, unknown> = {}) => ({ phase: 'Running' as const, instance: { provider: 'local' as const, name: 'vm', privateIP: ip }, ...extra });
    const am = gitspace('alpha', LOCAL, [{ port: 3000 }, { port: 3001, visibility: 'public' }, { port: 3002, visibility: 'shared' }]);
    // Its status names mallet's agent as the upstream: only privateIP may count.
    alpha = await gitspaceWithStatus(am, running('127.14.0.1', {
      route: { upstream: 'http://127.14.0.2:47100', ports: [{ port: 3000, visibility: 'private' }, { port: 3001, visibility: 'public' }, { port: 3002, visibility: 'shared' }] },
    }));
    // mallet's status claims alpha's host and alpha's port host for itself.
    const mm = gitspace('mallet', LOCAL);
    const mallet = await gitspaceWithStatus(mm, running('127.14.0.2', { route: { host: host('alpha'), upstream: 'http://127.14.0.2:47100', ports: [{ port: 4000, host: host('alpha', 3000) }] } }));
    // A cloud infra's instance on loopback, and a local one at the cloud metadata address.
    const cm = gitspace('cloudy', GCP);
    const cloudy = await gitspaceWithStatus(cm, running('127.14.0.3', { route: { upstream: 'http://127.14.0.3:47100' } }));
    const xm = gitspace('metadata', LOCAL);
    await gitspaceWithStatus(xm, running('169.254.169.254', { route: { upstream: 'http://127.14.0.3:47100' } }));
    made.push(am, mm, cm, xm);
    for (const a of Object.values(agents)) a.token = tokenFor(KEY, alpha);
    (agents.mallet as FakeAgent).token = tokenFor(KEY, mallet);
    (agents.other as FakeAgent).token = tokenFor(KEY, cloudy);
  });

  after(async () => {
    await gw.stop();
    for (const m of made) await k8s.deleteAndWait(m);
    for (const i of [LOCAL, GCP]) await k8s.deleteAndWait(infraManifest(i, ''));
    for (const a of Object.values(agents)) await a.stop();
    await issuer.stop();
  });

  const reached = (a: string, pred: (s: FakeAgent['seen'][number]) => boolean = () => true) => (agents[a] as FakeAgent).seen.filter(pred).length;

  it('answers 503 with a short body until the hop key Secret exists, then derives each hop token from it', async () => {
    const before = await eventually('alpha routed', 5_000, async () => { const r = await send(gw.port, host('alpha'), '/', owner); return r.status === 503 ? r : undefined; });
    expect(before.body).to.equal(`${MESSAGES.noHopKey}\n`);
    expect(reached('alpha')).to.equal(0);
    await createHopKey(KEYS_NS, KEY);
    const r = await eventually('the key to be watched', 5_000, async () => { const x = await send(gw.port, host('alpha'), '/x1', owner); return x.status === 200 ? x : undefined; });
    // The fake agent accepted the token: HMAC(key, alpha's UID).
    expect(r.body).to.equal('fake agent 127.14.0.1 GET /x1 port=-\n');
  });

  it('computes hosts from name, namespace and domain: a status naming another Gitspace\'s host or port host takes nothing', async () => {
    expect((await send(gw.port, host('alpha'), '/x2', owner)).body).to.include('fake agent 127.14.0.1 GET /x2');
    const port = await send(gw.port, host('alpha', 3000), '/x3', owner);
    expect(port.body).to.equal('fake agent 127.14.0.1 GET /x3 port=3000\n');
    // mallet is served at its own host, its port 4000 at its own port host.
    expect((await send(gw.port, host('mallet'), '/x4', owner)).body).to.include('fake agent 127.14.0.2 GET /x4');
    expect((await send(gw.port, host('mallet', 4000), '/x5', owner)).body).to.equal('fake agent 127.14.0.2 GET /x5 port=4000\n');
    expect(reached('mallet', (s) => ['/x1', '/x2', '/x3'].includes(s.path)), 'alpha\'s requests at mallet\'s agent').to.equal(0);
  });

  it('dials only the instance\'s private address on the agent port: never route.upstream, never loopback for a cloud infra or a link-local address', async () => {
    const seenBefore = reached('other');
    const cloudy = await send(gw.port, `cloudy--default.gcp.${DOMAIN}`, '/y1', owner);
    expect(cloudy.status, cloudy.body).to.equal(503);
    const meta = await send(gw.port, host('metadata'), '/y2', owner);
    expect(meta.status, meta.body).to.equal(503);
    expect(reached('other') - seenBefore, 'requests at the address status.route.upstream names').to.equal(0);
  });

  it('answers CORS preflights itself on private and shared ports; only a public port\'s server sees them', async () => {
    const preflight = { origin: 'http://app.example', 'access-control-request-method': 'POST' };
    for (const p of [3000, 3002]) {
      const r = await send(gw.port, host('alpha', p), '/pf', preflight, 'OPTIONS');
      expect(r.status, `port ${String(p)}`).to.equal(403);
      expect(r.body).to.equal(`${MESSAGES.preflight}\n`);
    }
    expect(reached('alpha', (s) => s.method === 'OPTIONS')).to.equal(0);
    const pub = await send(gw.port, host('alpha', 3001), '/pf', preflight, 'OPTIONS');
    expect(pub.body).to.equal('fake agent 127.14.0.1 OPTIONS /pf port=3001\n');
  });

  it('bridges SSH only on the Gitspace\'s own host, not on its port hosts or path route', async () => {
    const ws = await openWs(gw.port, host('alpha'), '/.gitspaces/ssh', owner);
    expect(ws).to.be.instanceOf(WebSocket);
    const echoed = new Promise<string>((resolve) => (ws as WebSocket).once('message', (d: Buffer) => { resolve(d.toString()); }));
    (ws as WebSocket).send(Buffer.from('SSH-2.0-test\r\n'));
    expect(await echoed).to.equal('SSH-2.0-test\r\n');
    (ws as WebSocket).close();
    const sshAtAgent = reached('alpha', (s) => s.path === '/v1/ssh');
    for (const [h, path] of [[host('alpha', 3000), '/.gitspaces/ssh'], [host('alpha', 3001), '/.gitspaces/ssh'], ['gateway.internal', '/gitspaces/default/alpha/.gitspaces/ssh']] as const) {
      expect(await openWs(gw.port, h, path, owner), `${h}${path}`).to.equal(404);
    }
    expect(reached('alpha', (s) => s.path === '/v1/ssh')).to.equal(sshAtAgent);
  });

  it('holds back an SSH agent that floods a client which does not read, and a client that floods an agent which does not read', async () => {
    const a = agents.alpha as FakeAgent;
    a.ssh = 'flood';
    const reader = (await openWs(gw.port, host('alpha'), '/.gitspaces/ssh', owner)) as WebSocket;
    reader.pause(); // reads nothing
    await new Promise((r) => setTimeout(r, 2_000));
    const flooded = a.flooded;
    reader.terminate();
    expect(flooded, `bytes the agent could hand to the gateway (${String(flooded >> 20)} MiB)`).to.be.below(48 << 20);

    a.ssh = 'sink';
    const writer = (await openWs(gw.port, host('alpha'), '/.gitspaces/ssh', owner)) as WebSocket;
    let flushed = 0;
    const frame = Buffer.alloc(512 << 10, 0x62);
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && flushed < 256 << 20) {
      if (writer.bufferedAmount < 4 << 20) writer.send(frame, () => { flushed += frame.length; });
      else await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setImmediate(r));
    }
    writer.terminate();
    a.ssh = 'echo';
    expect(flushed, `bytes the gateway took from the client (${String(flushed >> 20)} MiB)`).to.be.below(48 << 20);
  });
});
