// The GCP provider through the real @google-cloud/compute client against our GCE REST fake, which
// boots each instance by running its startup-script (so the real agent comes up): the full
// lifecycle, idempotent create (lookup, 409, requestId), zone fallback on exhausted capacity, and
// a bad image reported against spec.image.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { AGENT_SSH_PORT, LABELS, MANAGED_BY } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { testCluster } from '../cluster/current.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gceImage, gceInfra, gceProvider, startGceFake } from '../support/gce.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { startInProcessOperator, testCreateRequest } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-devenvs';
const IMAGE = gceImage(PROJECT);
const ZONES = ['europe-west1-b', 'europe-west1-c'];

const gcpInfra = (name: string): Manifest => gceInfra(name, { project: PROJECT, zones: ZONES });

describe('GCP provider against the GCE fake', function () {
  this.timeout(120_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let fake: GceFake;
  let port: number;
  let op: Operator;

  const provider = () => gceProvider({ project: PROJECT, zones: ZONES, port });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-gcp-'));
    repo = makeRepo(work);
    key = makeSshKey();
    ({ fake, port } = await startGceFake({ project: PROJECT, bootMs: 300, stopMs: 200, agentsIn: join(work, 'vms') }));
    const gcp = provider();
    await k8s.apply(gcpInfra('gcp'));
    op = await startInProcessOperator({ provider: gcp, realAgent: true, sweep: { intervalMs: 500, graceMs: 0 } });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('gcp');
    } finally {
      await op.manager.stop();
      await fake.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('runs the lifecycle: VM created with our labels and no external IP, agent up, stop keeps the VM, start resumes it, delete removes it', async () => {
    const m = gitspaceManifest('gcp-life', { infra: 'gcp', repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const inst = running.status!.instance!;
    expect(inst).to.include({ provider: 'gcp', zone: 'europe-west1-b', machineType: 'e2-standard-2', name: `gs-${running.metadata.uid ?? ''}` });
    const vm = fake.instances.get(`europe-west1-b/${inst.name ?? ''}`)!;
    expect(vm.labels).to.deep.include({ 'gitspaces-dev_gitspace-uid': running.metadata.uid, 'gitspaces-dev_infra': 'gcp', 'app-kubernetes-io_managed-by': 'gitspaces-operator' });
    const nic = (vm.body.networkInterfaces as Record<string, unknown>[])[0]!;
    expect(nic).to.not.have.property('accessConfigs');
    expect(nic.subnetwork).to.equal('regions/europe-west1/subnetworks/gitspaces-ew1');
    expect((vm.body.tags as { items: string[] }).items).to.deep.equal(['gitspaces-vm']);
    const r = await sshExec(inst.privateIP!, AGENT_SSH_PORT, key, 'cat README.md; echo "TEAM=$TEAM"');
    expect(r.stdout).to.include('# sample').and.include('TEAM=platform');

    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(vm.status).to.equal('TERMINATED');
    await k8s.patch(m, { spec: { state: 'Running' } });
    const resumed = await k8s.waitPhase(m, 'Running', 30_000);
    expect(resumed.status?.instance?.id).to.equal(inst.id);
    expect(fake.count('POST', '/instances')).to.be.at.least(1);
    expect(fake.calls.filter((c) => c.method === 'POST' && /\/zones\/[^/]+\/instances$/.test(c.path))).to.have.length(1);

    await k8s.deleteAndWait(m);
    expect(fake.instances.has(`europe-west1-b/${inst.name ?? ''}`)).to.equal(false);
  });

  it('observes instances through one shared list per interval, not a get per Gitspace per reconcile', async () => {
    const ms = Array.from({ length: 4 }, (_, i) => gitspaceManifest(`gcp-batch-${i}`, { infra: 'gcp', repo, key }));
    await Promise.all(ms.map((m) => k8s.apply(m)));
    await Promise.all(ms.map((m) => k8s.waitPhase(m, 'Running', 60_000)));
    await new Promise((r) => setTimeout(r, 1_500));
    const from = fake.calls.length;
    const reconcilesBefore = op.runner.counts.success + op.runner.counts.requeue;
    for (const round of [1, 2, 3]) {
      await Promise.all(ms.map((m) => k8s.patch(m, { metadata: { annotations: { poke: String(round) } } })));
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const window = fake.calls.slice(from);
    const reconciles = op.runner.counts.success + op.runner.counts.requeue - reconcilesBefore;
    expect(reconciles, 'reconciles in the window').to.be.at.least(12);
    expect(window.filter((c) => c.method === 'GET' && /\/instances\/gs-/.test(c.path)), 'per-instance gets').to.have.length(0);
    // one list per second for the runner, plus the orphan sweep's (every 500 ms in this test)
    expect(window.filter((c) => c.method === 'GET' && /aggregated\/instances/.test(c.path)).length).to.be.at.most(12);
    await Promise.all(ms.map((m) => k8s.deleteAndWait(m)));
  });

  it('creates idempotently: a second create finds the first VM, a repeated insert is 409, a repeated requestId is the same operation', async () => {
    const p = provider();
    const req = testCreateRequest('gs-idem-1', { machineType: { providerType: 'e2-standard-2' }, image: IMAGE, labels: { 'gitspaces.dev/infra': 'direct' } });
    const [a, b] = await Promise.all([p.create(req), p.create(req)]);
    expect(a.id).to.equal(b.id);
    expect([...fake.instances.keys()].filter((k) => k.endsWith('/gs-idem-1'))).to.have.length(1);
    expect((await p.listOwned({ 'gitspaces.dev/infra': 'direct' })).map((i) => i.name)).to.deep.equal(['gs-idem-1']);
    await p.delete(a);
    await p.delete(a); // already gone: fine
    expect(await p.find('gs-idem-1')).to.equal(undefined);
    await p.close();
  });

  it('falls over to the next zone when the first has no capacity', async () => {
    fake.faults.exhaustedZones = new Set(['europe-west1-b']);
    try {
      const m = gitspaceManifest('gcp-zone', { infra: 'gcp', repo, key });
      await k8s.apply(m);
      const running = await k8s.waitPhase(m, 'Running', 60_000);
      expect(running.status?.instance?.zone).to.equal('europe-west1-c');
      await k8s.deleteAndWait(m);
    } finally {
      fake.faults.exhaustedZones = undefined;
    }
  });

  it('converges with 20 % of calls throttled or failing, within the rate policy', async () => {
    fake.faults.throttleRate = 0.1;
    fake.faults.errorRate = 0.1;
    // Random faults may all land on calls the client retries by itself: a few sure ones too.
    fake.faults.throttleNext = 3;
    const from = fake.calls.length;
    try {
      const ms = Array.from({ length: 8 }, (_, i) => gitspaceManifest(`gcp-fault-${i}`, { infra: 'gcp', repo, key }));
      await Promise.all(ms.map((m) => k8s.apply(m)));
      const all = await Promise.all(ms.map((m) => k8s.waitPhase(m, 'Running', 90_000)));
      expect(new Set(all.map((g) => g.status?.instance?.name)).size).to.equal(8);
      fake.faults.throttleRate = 0;
      fake.faults.errorRate = 0;
      await Promise.all(ms.map((m) => k8s.deleteAndWait(m)));
    } finally {
      fake.faults.throttleRate = 0;
      fake.faults.errorRate = 0;
    }
    // Inserts never outran the run bucket (burst 5, then 2/s), whatever the errors.
    const inserts = fake.calls.slice(from).filter((c) => c.method === 'POST' && /\/zones\/[^/]+\/instances$/.test(c.path)).map((c) => c.at);
    for (const t of inserts) expect(inserts.filter((u) => u >= t && u < t + 1_000).length, 'inserts in one second').to.be.at.most(7);
    const text = await op.manager.metrics.registry.getSingleMetricAsString('gitspaces_provider_operations_total');
    expect(text).to.match(/outcome="(throttled|error)"/);
    expect(text).to.include('provider="gcp",operation="create",outcome="success"');
  });

  it('sweeps a VM labelled as ours whose Gitspace is gone, and never touches an unlabelled VM', async () => {
    const p = provider();
    const base = testCreateRequest('gs-ghost', { machineType: { providerType: 'e2-standard-2' }, image: IMAGE, labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: 'gcp', [LABELS.gitspaceUID]: 'dead-beef-0000', [LABELS.gitspaceName]: 'ghost', [LABELS.gitspaceNamespace]: 'default' } });
    // The sweep runs every 500 ms with no grace, so it may delete the orphan before create's own
    // look after the insert: then create says it is not visible, which is the sweep doing its job.
    await p.create(base).catch((e: unknown) => {
      if (!(e instanceof Error) || !e.message.includes('not visible after its insert finished')) throw e;
    });
    await p.create({ ...base, name: 'not-ours', labels: { team: 'data' } });
    await eventually('the orphan to be swept', 20_000, () => !fake.instances.has('europe-west1-b/gs-ghost'));
    await new Promise((r) => setTimeout(r, 1_200)); // more sweeps pass
    expect(fake.instances.has('europe-west1-b/not-ours')).to.equal(true);
    const infra = await k8s.get<GitspaceInfra>(gcpInfra('gcp'));
    expect(await k8s.eventReasons(infra!)).to.include('OrphanDeleted');
    expect(await op.manager.metrics.registry.getSingleMetricAsString('gitspaces_orphans_deleted_total')).to.include('gitspaces_orphans_deleted_total{provider="gcp"} 1');
    await p.delete((await p.find('not-ours'))!);
    await p.close();
  });

  it('fails naming spec.image when the image does not exist', async () => {
    fake.images.delete(IMAGE);
    try {
      const m = gitspaceManifest('gcp-image', { infra: 'gcp', repo, key });
      await k8s.apply(m);
      const failed = await k8s.waitPhase(m, 'Failed', 30_000);
      expect(failed.status?.message).to.match(/^spec\.image: .*projects\/acme-devenvs\/global\/images\/family\/gitspaces' was not found/);
      await k8s.deleteAndWait(m);
    } finally {
      fake.images.add(IMAGE);
    }
  });
});

describe('GCP provider: operator killed (-9) around the cloud create', function () {
  this.timeout(240_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let fake: GceFake;
  let endpoint: string;
  const ops: OperatorProcess[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-gcp-crash-'));
    repo = makeRepo(work);
    key = makeSshKey();
    // Slow operations widen the window between the insert call and the status write.
    let port: number;
    ({ fake, port } = await startGceFake({ project: PROJECT, bootMs: 1_500, agentsIn: join(work, 'vms') }));
    endpoint = `http://127.0.0.1:${String(port)}`;
    await k8s.apply(gcpInfra('gcp-crash'));
  });

  after(async () => {
    for (const o of ops) await o.kill();
    const op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--gce-endpoint', endpoint] });
    try {
      await k8s.cleanUpInfra('gcp-crash');
    } finally {
      await op.kill('SIGTERM');
      await fake.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('leaves exactly one VM per Gitspace when killed right after the insert call, 8 rounds', async () => {
    const ms: Manifest[] = [];
    for (let round = 0; round < 8; round++) {
      const op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--gce-endpoint', endpoint], name: `gcp-crash-${round}` });
      ops.push(op);
      const m = gitspaceManifest(`gcp-crash-${round}`, { infra: 'gcp-crash', repo, key });
      ms.push(m);
      const inserts = fake.calls.length;
      await k8s.apply(m);
      // Kill as soon as the insert for this Gitspace reached the cloud (or after 3 s).
      await eventually('the insert call', 3_000, () => fake.calls.slice(inserts).some((c) => c.method === 'POST' && /\/instances$/.test(c.path))).catch(() => undefined);
      await op.kill('SIGKILL');
    }
    const final = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--gce-endpoint', endpoint], name: 'gcp-crash-final' });
    ops.push(final);
    const all = await Promise.all(ms.map((m) => k8s.waitPhase(m, 'Running', 120_000)));
    const names = all.map((g) => g.status?.instance?.name ?? '');
    const vms = [...fake.instances.values()].filter((i) => names.includes(i.name));
    expect(vms.map((v) => v.name).sort(), 'one VM per Gitspace').to.deep.equal([...names].sort());
    await Promise.all(ms.map((m) => k8s.deleteAndWait(m, 90_000)));
    expect([...fake.instances.values()].filter((i) => names.includes(i.name))).to.have.length(0);
  });
});
