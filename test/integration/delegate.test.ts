// The whole loop on one machine: the reference control plane (a real `gitspaces control-plane`
// process with its SQLite file), the operator process with its delegate controller, the local
// provider, and the gateway. Create/stop/start/delete go through the control plane's user API;
// the control plane's access token opens the Gitspace through the gateway; killing either side
// mid-task converges without duplicates; a wrong delegate token and a malformed task create nothing.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { DELEGATE_FIELD_MANAGER, LABELS, OPERATOR_FIELD_MANAGER, type Gitspace } from '../../src/api/index.ts';
import { Delegate } from '../../src/controllers/delegate/delegate.ts';
import { GITSPACE_INFRAS, GITSPACES, NAMESPACES } from '../../src/controllers/resources.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { Informer } from '../../src/runtime/informer.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey } from '../support/fixtures.ts';
import { infraManifest, k8s } from '../support/gitspaces.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const DELEGATE_TOKEN = 'delegate-secret-0123456789';
const ALICE = { token: 'alice-api-token', sub: 'alice@example.com' };
const INFRA = 'cp-local';

interface CpGitspace { id: string; state: string; deleted: boolean; revision: number; status: { phase?: string; message?: string; urls?: { ide?: string }; stopsAt?: string; startedAt?: string; lastActivity?: { at: string; source?: string } }; task?: string }
interface CpTask { id: string; state: string; outcome?: string; reason?: string; message?: string }

describe('delegate controller and the reference control plane', function () {
  this.timeout(180_000);
  let work: string;
  let repo: string;
  let cpPort: number;
  let cp: ChildProcess | undefined;
  let op: OperatorProcess | undefined;
  let gw: Gateway;
  const key = makeSshKey();
  const cpURL = () => `http://127.0.0.1:${cpPort}`;

  const startCP = async () => {
    const child = spawn(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'control-plane', '--port', String(cpPort), '--address', '127.0.0.1', '--db', join(work, 'cp.db'), '--issuer', cpURL(), '--redeliver-ms', '3000', '--token-ttl', '2m'], {
      env: { ...process.env, GITSPACES_DELEGATE_TOKEN: DELEGATE_TOKEN, GITSPACES_USERS: `${ALICE.token}=${ALICE.sub}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
      child.once('exit', (c) => { reject(new Error(`control plane exited ${String(c)}`)); });
    });
    cp = child;
  };
  const killCP = async () => {
    if (!cp || cp.exitCode !== null) return;
    const exited = new Promise((r) => cp?.once('exit', r));
    cp.kill('SIGKILL');
    await exited;
  };
  const startOp = async () => {
    const tokenFile = join(work, 'delegate-token');
    writeFileSync(tokenFile, DELEGATE_TOKEN);
    op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, name: 'delegate-op', args: ['--control-plane-url', cpURL(), '--delegate-token-file', tokenFile, '--delegate-namespace', 'default', '--delegate-name', 'test-cluster'] });
  };
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the JSON shape it expects
  const api = async <T>(method: string, path: string, body?: unknown, token = ALICE.token): Promise<{ status: number; json: T }> => {
    const r = await fetch(`${cpURL()}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, json: (text ? JSON.parse(text) : undefined) as T };
  };
  const create = async (id: string, over: Record<string, unknown> = {}) => {
    const r = await api<CpGitspace>('POST', '/api/v1/gitspaces', { id, infra: INFRA, repository: { url: `file://${repo}` }, machineType: 'small', ide: { type: 'ssh' }, sshPublicKeys: [key.publicLine], ...over });
    expect(r.status, JSON.stringify(r.json)).to.equal(201);
    return r.json;
  };
  const task = async (id: string) => (await api<CpTask>('GET', `/api/v1/tasks/${id}`)).json;
  const taskDone = (id: string, ms = 60_000) => eventually(`task ${id} to finish`, ms, async () => { const t = await task(id); return t.state === 'done' ? t : undefined; });
  const inCluster = async (): Promise<Gitspace[]> => {
    const r = await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces?labelSelector=${encodeURIComponent(LABELS.controlPlaneId)}`);
    return (r.json as { items: Gitspace[] }).items;
  };
  const manifest = (id: string) => ({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: id, namespace: 'default' }, spec: {} });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-delegate-'));
    repo = makeRepo(work);
    cpPort = await freePort();
    await startCP();
    const infra = infraManifest(INFRA, join(work, 'instances'));
    (infra.spec as Record<string, unknown>).auth = { issuer: cpURL(), audience: 'gitspaces' };
    await k8s.apply(infra);
    await startOp();
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), port: 0, address: '127.0.0.1', drainDelayMs: 0 });
    await gw.start();
  });

  after(async () => {
    try {
      for (const g of await inCluster()) await k8s.deleteAndWait(manifest(g.metadata.name ?? ''));
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await gw.stop();
      await op?.kill('SIGTERM');
      await killCP();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('creates through the control plane; status and URL come back; its token opens the Gitspace through the gateway', async () => {
    const g = await create('alpha');
    const done = await taskDone(g.task ?? '');
    expect(done).to.include({ outcome: 'succeeded' });
    const [gs] = (await inCluster()).filter((x) => x.metadata.name === 'alpha');
    expect(gs?.status?.phase).to.equal('Running');
    expect(gs?.spec.owner).to.equal(ALICE.sub);
    expect(gs?.metadata.labels).to.include({ [LABELS.controlPlaneId]: 'alpha' });
    const seen = await eventually('status in the control plane', 10_000, async () => {
      const r = await api<CpGitspace>('GET', '/api/v1/gitspaces/alpha');
      return r.json.status.phase === 'Running' ? r.json : undefined;
    });
    expect(seen.status.urls?.ide).to.include('alpha--default.gitspaces.localhost');
    // Why it runs and when it stops, as kubectl describe says it.
    const timed = await eventually('stop time in the control plane', 10_000, async () => {
      const r = await api<CpGitspace>('GET', '/api/v1/gitspaces/alpha');
      return r.json.status.stopsAt ? r.json : undefined;
    });
    expect(timed.status.stopsAt).to.equal((await k8s.get(manifest('alpha')))?.status?.stopsAt);
    expect(timed.status.startedAt).to.be.a('string');
    expect(timed.status.lastActivity?.source).to.equal('api');
    expect(timed.status.message).to.match(/stops at (?:[A-Z][a-z]{2} \d{1,2} )?\d\d:\d\d UTC \(idle timeout /);
    // Who wrote what, as the operator binary names itself: the delegate the spec, the operator only status and metadata.
    const full = (await testCluster().request('GET', '/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces/alpha')).json as { metadata: { managedFields?: { manager: string; subresource?: string; fieldsV1?: Record<string, unknown> }[] } };
    const owners = (field: string) => (full.metadata.managedFields ?? []).filter((f) => Object.keys(f.fieldsV1 ?? {}).includes(field)).map((f) => `${f.manager}${f.subresource ? `/${f.subresource}` : ''}`).sort();
    expect(owners('f:spec')).to.deep.equal([DELEGATE_FIELD_MANAGER]);
    expect(owners('f:status')).to.deep.equal([`${OPERATOR_FIELD_MANAGER}/status`]);
    // The operator's Events for it come back through the delegate's status reports.
    const withEvents = await eventually('Events in the control plane', 10_000, async () => {
      const r = await api<CpGitspace & { status: { events?: { reason: string }[] } }>('GET', '/api/v1/gitspaces/alpha');
      const reasons = (r.json.status.events ?? []).map((e) => e.reason);
      return reasons.includes('IDEReady') ? reasons : undefined;
    });
    expect(withEvents).to.include('InfraProvisioningStarted');
    const { json: tok } = await api<{ token: string; refreshToken: string }>('POST', '/api/v1/gitspaces/alpha/token');
    const open = (token: string) => new Promise<number>((resolve, reject) => {
      const q = request({ host: '127.0.0.1', port: gw.port, path: '/', headers: { host: 'alpha--default.gitspaces.localhost', authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      q.on('error', reject);
      q.end();
    });
    expect(await open(tok.token)).to.equal(200);
    // --token-ttl reached the server; the refresh token, with no API token, gets a new one the gateway takes too.
    const claims = decodeJwt(tok.token);
    expect(claims.exp! - claims.iat!).to.equal(120);
    const refreshed = await fetch(`${cpURL()}/api/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tok.refreshToken }).toString() });
    expect(refreshed.status).to.equal(200);
    expect(await open(((await refreshed.json()) as { access_token: string }).access_token)).to.equal(200);
  });

  it('stops, starts and deletes through the control plane', async () => {
    const stop = await api<CpGitspace>('POST', '/api/v1/gitspaces/alpha/stop');
    expect(stop.status).to.equal(202);
    expect(await taskDone(stop.json.task ?? '')).to.include({ outcome: 'succeeded' });
    expect((await k8s.get(manifest('alpha')))?.status?.phase).to.equal('Stopped');
    const start = await api<CpGitspace>('POST', '/api/v1/gitspaces/alpha/start');
    expect(await taskDone(start.json.task ?? '')).to.include({ outcome: 'succeeded' });
    expect((await k8s.get(manifest('alpha')))?.status?.phase).to.equal('Running');
    const del = await api<CpGitspace>('DELETE', '/api/v1/gitspaces/alpha');
    expect(await taskDone(del.json.task ?? '')).to.include({ outcome: 'succeeded' });
    expect(await k8s.get(manifest('alpha'))).to.equal(undefined);
    expect((await api('GET', '/api/v1/gitspaces/alpha')).status).to.equal(404);
  });

  it('answers a malformed task with a failed result and a reason, and creates nothing', async () => {
    const g = await create('badinfra', { infra: 'no-such-infra' });
    const t = await taskDone(g.task ?? '');
    expect(t).to.include({ outcome: 'failed', reason: 'Invalid' });
    expect(t.message).to.include('GitspaceInfra "no-such-infra" does not exist');
    expect(await k8s.get(manifest('badinfra'))).to.equal(undefined);
    const r = await api<{ error: { message: string } }>('POST', '/api/v1/gitspaces', { infra: INFRA, machineType: 'small' });
    expect(r.status).to.equal(400);
    expect(r.json.error.message).to.equal('repository.url is required');
  });

  it('refuses a task for an infra that does not admit its namespace, and creates nothing', async () => {
    const closed = infraManifest('cp-closed', join(work, 'closed'));
    (closed.spec as { allowedNamespaces?: unknown }).allowedNamespaces = { matchLabels: { team: 'elsewhere' } };
    await k8s.apply(closed);
    try {
      const g = await create('closedinfra', { infra: 'cp-closed' });
      const t = await taskDone(g.task ?? '');
      expect(t).to.include({ outcome: 'failed', reason: 'Invalid' });
      expect(t.message).to.equal('spec.infra: namespace default does not match GitspaceInfra "cp-closed" spec.allowedNamespaces {"matchLabels":{"team":"elsewhere"}}');
      expect(await k8s.get(manifest('closedinfra'))).to.equal(undefined);
    } finally {
      await k8s.deleteAndWait(closed);
    }
  });

  it('rejects a wrong delegate token, and a delegate holding one creates nothing', async () => {
    const r = await fetch(`${cpURL()}/api/delegate/v1/tasks?wait=0`, { headers: { authorization: 'Bearer wrong' } });
    expect(r.status).to.equal(401);
    expect(await r.json()).to.deep.equal({ error: { code: 'unauthenticated', message: 'a valid delegate token is required' } });
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'impostor' } } });
    const client = new KubeClient(testCluster().access());
    const gitspaces = new Informer<Gitspace>(client, GITSPACES, {});
    const infras = new Informer(client, GITSPACE_INFRAS, {});
    const namespaces = new Informer(client, NAMESPACES, {});
    gitspaces.start();
    infras.start();
    namespaces.start();
    const impostor = new Delegate({ url: cpURL(), token: 'wrong-token', namespace: 'impostor', name: 'impostor', version: 'test', client, gitspaces, infras: infras as never, namespaces, log: createLogger({}, 'error'), pollSeconds: 1 });
    impostor.start();
    try {
      const g = await create('bystander');
      await taskDone(g.task ?? '');
      await new Promise((res) => setTimeout(res, 1_000));
      const r2 = await testCluster().request('GET', '/apis/gitspaces.dev/v1alpha1/namespaces/impostor/gitspaces');
      expect((r2.json as { items: unknown[] }).items).to.have.length(0);
      expect(impostor.applied).to.equal(0);
    } finally {
      await impostor.stop();
      gitspaces.stop();
      infras.stop();
      namespaces.stop();
      await api('DELETE', '/api/v1/gitspaces/bystander');
    }
  });

  it('converges without duplicates when the control plane is killed mid-task and restarted', async () => {
    const g = await create('beta');
    await killCP();
    await new Promise((r) => setTimeout(r, 1_500));
    await startCP();
    expect(await taskDone(g.task ?? '', 90_000)).to.include({ outcome: 'succeeded' });
    const all = (await inCluster()).filter((x) => x.metadata.name === 'beta');
    expect(all).to.have.length(1);
    expect(all[0]?.status?.phase).to.equal('Running');
  });

  it('finishes a task exactly once when the operator (delegate) is killed mid-task', async () => {
    const g = await create('gamma');
    // Kill as soon as the Gitspace exists (applied, result not yet sent), then start again.
    const first = await eventually('the Gitspace to be created', 30_000, async () => (await k8s.get(manifest('gamma'))) ?? undefined);
    await op?.kill('SIGKILL');
    await startOp();
    const t = await taskDone(g.task ?? '', 90_000);
    expect(t).to.include({ outcome: 'succeeded' });
    const all = (await inCluster()).filter((x) => x.metadata.name === 'gamma');
    expect(all).to.have.length(1);
    expect(all[0]?.metadata.uid, 'the same object, not a second one').to.equal(first.metadata.uid);
    expect(all[0]?.status?.phase).to.equal('Running');
  });
});
