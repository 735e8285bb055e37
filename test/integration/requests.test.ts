// Who asked for a start, stop or delete, against the real API server with the local provider: a
// change made with field manager kubectl-edit is named by that manager (Kubernetes records no
// user); a stop the delegate applies for a control-plane task names that control plane's user; an
// idle stop names the operator. Each request gives one Event and status.lastRequest, once.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gitspace } from '../../src/api/index.ts';
import { ControlPlane } from '../../src/controlplane/server.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { resourcePath, statusMessage, type Manifest } from '../support/resources.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'requests';
const DELEGATE_TOKEN = 'requests-delegate-token-0123';
const ALICE = { token: 'alice-requests-api-token', sub: 'alice@example.com' };
const AUDIT = 'Kubernetes does not record the user — see the API server audit log';

interface Event { reason: string; note: string; series?: unknown }

/** The Events recorded for an object (by UID: they outlive it), of one reason. */
async function events(uid: string, reason: string): Promise<Event[]> {
  const r = await testCluster().request('GET', `/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=${encodeURIComponent(`regarding.uid=${uid}`)}`);
  return (r.json as { items: Event[] }).items.filter((e) => e.reason === reason);
}

const oneEvent = (uid: string, reason: string) =>
  eventually(`a ${reason} Event`, 10_000, async () => { const e = await events(uid, reason); return e.length > 0 ? e : undefined; });

/** A merge patch as a given field manager writes it (kubectl edit sends ?fieldManager=kubectl-edit). */
async function patchAs(m: Manifest, fieldManager: string, patch: unknown): Promise<void> {
  const r = await testCluster().request('PATCH', `${resourcePath(m, true)}?fieldManager=${fieldManager}`, { body: patch, headers: { 'content-type': 'application/merge-patch+json' } });
  expect(r.status, statusMessage(r)).to.equal(200);
}

describe('who asked for a start, stop or delete (local provider)', function () {
  this.timeout(180_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let op: Operator;
  let cp: ControlPlane;
  let offsetMs = 0;

  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: { task?: string; state?: string } }> => {
    const r = await fetch(`http://127.0.0.1:${String(cp.port)}${path}`, { method, headers: { authorization: `Bearer ${ALICE.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, json: (text ? JSON.parse(text) : {}) as { task?: string; state?: string } };
  };
  const taskDone = (id: string) => eventually(`task ${id} to finish`, 60_000, async () => {
    const t = (await api('GET', `/api/v1/tasks/${id}`)).json as { state?: string; outcome?: string };
    return t.state === 'done' ? t : undefined;
  });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-requests-'));
    repo = makeRepo(work);
    key = makeSshKey();
    const infra = infraManifest(INFRA, join(work, 'instances'));
    (infra.spec as { idleTimeout?: string }).idleTimeout = '0';
    await k8s.apply(infra);
    cp = new ControlPlane({ dbPath: join(work, 'cp.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: DELEGATE_TOKEN, users: { [ALICE.token]: ALICE.sub }, redeliverMs: 3_000 });
    await cp.start();
    const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = createOperator({
      client: new KubeClient(testCluster().access()),
      log: createLogger({ component: 'operator' }, 'error'),
      providerFor: () => local,
      now: () => Date.now() + offsetMs,
      sweep: false,
      delegate: { url: `http://127.0.0.1:${String(cp.port)}`, token: DELEGATE_TOKEN, namespace: 'default', name: 'requests-test', pollSeconds: 1 },
    });
    await op.manager.start();
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await op.manager.stop();
      await cp.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('a stop, start and delete made with kubectl are named by their field manager, each once', async () => {
    const m = gitspaceManifest('edited', { infra: INFRA, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const uid = running.metadata.uid ?? '';
    // Creating it is no request: nothing recorded.
    expect(running.status?.lastRequest).to.equal(undefined);

    await patchAs(m, 'kubectl-edit', { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(stopped.status?.lastRequest).to.include({ action: 'stop', source: 'kubernetes', via: 'kubectl-edit' });
    expect(stopped.status?.lastRequest?.by).to.equal(undefined);
    const [stopEvent] = await oneEvent(uid, 'StopRequested');
    expect(stopEvent?.note).to.equal(`stop requested via kubectl-edit at ${stopped.status?.lastRequest?.at ?? ''} (field manager; ${AUDIT})`);

    // Reconciling again (any change brings a reconcile) records nothing more.
    await patchAs(m, 'test-poke', { metadata: { annotations: { poke: '1' } } });
    await patchAs(m, 'test-poke', { metadata: { annotations: { poke: '2' } } });
    await new Promise((r) => setTimeout(r, 2_000));
    const again = await events(uid, 'StopRequested');
    expect(again).to.have.length(1);
    expect(again[0]?.series, 'not repeated as a series either').to.equal(undefined);
    expect((await k8s.get(m))?.status?.lastRequest).to.deep.equal(stopped.status?.lastRequest);

    await patchAs(m, 'kubectl-edit', { spec: { state: 'Running' } });
    const resumed = await k8s.waitPhase(m, 'Running', 60_000);
    expect(resumed.status?.lastRequest).to.include({ action: 'start', source: 'kubernetes', via: 'kubectl-edit' });
    expect((await oneEvent(uid, 'StartRequested'))[0]?.note).to.match(/^start requested via kubectl-edit at \S+Z \(field manager; /);

    await patchAs(m, 'test-poke', { metadata: { annotations: { poke: '3' } } });
    await k8s.deleteAndWait(m);
    const [deleted] = await oneEvent(uid, 'DeleteRequested');
    expect(deleted?.note).to.match(/^delete requested at \S+Z \(Kubernetes records neither the user nor a field manager for a delete — see the API server audit log; the last change before it was via test-poke at \S+Z\)$/);
  });

  it("a stop and a delete the delegate applies name the control plane's user", async () => {
    const created = await api('POST', '/api/v1/gitspaces', { id: 'asked', infra: INFRA, repository: { url: `file://${repo}` }, machineType: 'small', ide: { type: 'ssh' }, sshPublicKeys: [key.publicLine] });
    expect(created.status).to.equal(201);
    expect(await taskDone(created.json.task ?? '')).to.include({ outcome: 'succeeded' });
    const m: Manifest = { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: 'asked', namespace: 'default' }, spec: {} };
    const uid = (await k8s.get(m))?.metadata.uid ?? '';

    const stop = await api('POST', '/api/v1/gitspaces/asked/stop');
    expect(stop.status).to.equal(202);
    expect(await taskDone(stop.json.task ?? '')).to.include({ outcome: 'succeeded' });
    const stopped = await k8s.waitFor(m, (g: Gitspace) => g.status?.phase === 'Stopped' && g.status.lastRequest?.action === 'stop', 10_000);
    expect(stopped.status?.lastRequest).to.include({ action: 'stop', source: 'control-plane', by: ALICE.sub, via: 'gitspaces-delegate' });
    expect((await oneEvent(uid, 'StopRequested'))[0]?.note).to.equal(`stop requested by ${ALICE.sub} (control plane, via gitspaces-delegate)`);

    const del = await api('DELETE', '/api/v1/gitspaces/asked');
    expect(await taskDone(del.json.task ?? '')).to.include({ outcome: 'succeeded' });
    expect(await k8s.get(m)).to.equal(undefined);
    expect((await oneEvent(uid, 'DeleteRequested'))[0]?.note).to.equal(`delete requested by ${ALICE.sub} (control plane, via gitspaces-delegate)`);
  });

  it('an idle stop names the operator', async () => {
    const m = gitspaceManifest('idler', { infra: INFRA, repo, key, idleTimeout: '5m' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    offsetMs = 6 * 60_000;
    try {
      await patchAs(m, 'test-poke', { metadata: { annotations: { poke: '1' } } });
      const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
      expect(stopped.spec.state).to.equal('Running');
      expect(stopped.status?.lastRequest).to.include({ action: 'stop', source: 'operator', by: 'gitspaces-operator', via: 'idle-timeout' });
      const [auto] = await oneEvent(running.metadata.uid ?? '', 'AutoStopped');
      expect(auto?.note).to.match(/^stopped by the operator: idle since \S+Z \(idleTimeout 5m\)$/);
      // The operator's own stop is not mistaken for someone's request.
      expect(await events(running.metadata.uid ?? '', 'StopRequested')).to.have.length(0);
    } finally {
      offsetMs = 0;
    }
    await k8s.deleteAndWait(m);
  });
});
