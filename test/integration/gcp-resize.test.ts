// Resize against the GCE fake through the real @google-cloud/compute client (instances.setMachineType,
// disks.resize), with the real agent booted by the fake: a stopped Gitspace is resized at once, a
// running one shows pendingChanges until it stops, a smaller disk is refused, and a machine type
// the cloud refuses leaves it stopped with the cloud's message.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { ProviderError } from '../../src/providers/types.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeRepo, makeSshKey, type SshKey } from '../support/fixtures.ts';
import { gceInfra, gceProvider, startGceFake } from '../support/gce.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-resize';
const ZONE = 'europe-west1-b';
const INFRA = 'gcp-resize';

const infra = gceInfra(INFRA, {
  project: PROJECT,
  zones: [ZONE],
  machineTypes: [
    { name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 },
    { name: 'large', providerType: 'e2-standard-4', diskSizeGB: 40 },
    { name: 'large-thin', providerType: 'e2-standard-4', diskSizeGB: 20 },
    // Allowed by the schema, unknown to GCE: the cloud refuses it.
    { name: 'mega', providerType: 'e2-mega-4', diskSizeGB: 20 },
    // The spot test turns this one into spot and back.
    { name: 'flex', providerType: 'e2-standard-2', diskSizeGB: 20 },
  ],
});
const machineTypes = (infra.spec as { machineTypes: Record<string, unknown>[] }).machineTypes;
/** The infra with machine type flex spot or not (as a platform team would edit it). */
const flexSpot = (spot: boolean) => k8s.patch(infra, { spec: { machineTypes: machineTypes.map((t) => (t.name === 'flex' ? { ...t, spot } : t)) } });

const condition = (g: Gitspace | undefined, type = 'MachineUpToDate') => g?.status?.conditions?.find((c) => c.type === type);

describe('Resize on GCP (GCE fake)', function () {
  this.timeout(180_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let fake: GceFake;
  let port: number;
  let op: Operator;

  const provider = () => gceProvider({ project: PROJECT, zones: [ZONE], port });
  const vm = (g: Gitspace) => fake.instances.get(`${ZONE}/${g.status?.instance?.name ?? ''}`)!;
  const vmType = (g: Gitspace) => String(vm(g).body.machineType).split('/').pop();
  const setMachineTypeCalls = () => fake.calls.filter((c) => c.method === 'POST' && c.path.endsWith('/setMachineType'));

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-gcp-resize-'));
    repo = makeRepo(work);
    key = makeSshKey();
    ({ fake, port } = await startGceFake({ project: PROJECT, bootMs: 300, stopMs: 200, agentsIn: join(work, 'vms') }));
    await k8s.apply(infra);
    op = await startInProcessOperator({ provider: provider(), realAgent: true, sweep: false });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await op.manager.stop();
      await fake.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('resizes a Stopped Gitspace in place (same instance, new type, bigger disk, Event), then starts it with the new type', async () => {
    const m = gitspaceManifest('gcp-resize-stopped', { infra: INFRA, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    expect(running.status?.instance).to.include({ machineType: 'e2-standard-2', diskSizeGB: 20 });
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);

    await k8s.patch(m, { spec: { machineType: 'large' } });
    const resized = await k8s.waitFor(m, (g) => g.status?.instance?.machineType === 'e2-standard-4' && g.status.instance.diskSizeGB === 40, 30_000);
    expect(resized.status?.phase).to.equal('Stopped');
    expect(resized.status?.instance?.id).to.equal(running.status?.instance?.id);
    expect(resized.status?.pendingChanges).to.equal(undefined);
    expect(condition(resized)).to.include({ status: 'True', reason: 'Resized', message: 'e2-standard-2 → e2-standard-4, disk 20 → 40 GB' });
    expect(vmType(resized)).to.equal('e2-standard-4');
    expect(vm(resized).diskSizeGb).to.equal(40);
    expect(vm(resized).status).to.equal('TERMINATED');
    await eventually('the Resized Event', 10_000, async () => (await k8s.events(resized)).some(([r, n]) => r === 'Resized' && n === 'e2-standard-2 → e2-standard-4, disk 20 → 40 GB'));

    await k8s.patch(m, { spec: { state: 'Running' } });
    const again = await k8s.waitPhase(m, 'Running', 60_000);
    expect(again.status?.instance).to.include({ id: running.status?.instance?.id, machineType: 'e2-standard-4', diskSizeGB: 40 });
    expect(vm(again).status).to.equal('RUNNING');
    expect([...fake.instances.keys()].filter((k) => k.endsWith(running.status?.instance?.name ?? '-'))).to.have.length(1);
    await k8s.deleteAndWait(m);
  });

  it('turns a running standard VM into a spot VM at its next stop (setScheduling) when its machine type becomes spot, and back while stopped', async () => {
    const m = gitspaceManifest('gcp-resize-spot', { infra: INFRA, repo, key });
    (m.spec as Record<string, unknown>).machineType = 'flex';
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const scheduling = (g: Gitspace) => vm(g).body.scheduling as { provisioningModel?: string; instanceTerminationAction?: string } | undefined;
    expect(scheduling(running)?.provisioningModel ?? 'STANDARD').to.equal('STANDARD');
    try {
      await flexSpot(true);
      const pending = await k8s.waitFor(m, (g) => (g.status?.pendingChanges?.length ?? 0) > 0, 20_000);
      expect(pending.status?.pendingChanges).to.deep.equal([{ field: 'spot', from: 'standard', to: 'spot', message: 'standard → spot VM is applied at the next stop' }]);
      expect(vm(pending).status, 'a running VM is left alone').to.equal('RUNNING');

      await k8s.patch(m, { spec: { state: 'Stopped' } });
      const stopped = await k8s.waitFor(m, (g) => g.status?.phase === 'Stopped' && condition(g)?.reason === 'Resized', 30_000);
      expect(condition(stopped)?.message).to.equal('standard → spot');
      expect(stopped.status?.pendingChanges).to.equal(undefined);
      expect(scheduling(stopped)).to.include({ provisioningModel: 'SPOT', instanceTerminationAction: 'STOP' });
      expect(fake.calls.filter((c) => c.path.endsWith(`/${running.status?.instance?.name ?? ''}/setScheduling`))).to.have.length(1);

      // Back to standard while it is stopped: changed before it may start.
      await flexSpot(false);
      const standard = await k8s.waitFor(m, (g) => condition(g)?.message === 'spot → standard', 30_000);
      expect(scheduling(standard)?.provisioningModel).to.equal('STANDARD');
      await k8s.patch(m, { spec: { state: 'Running' } });
      const again = await k8s.waitPhase(m, 'Running', 60_000);
      expect(again.status?.instance?.id, 'the same instance').to.equal(running.status?.instance?.id);
      await k8s.deleteAndWait(m);
    } finally {
      await flexSpot(false);
    }
  });

  it('leaves a Running Gitspace alone, with pendingChanges, and resizes it at the next stop', async () => {
    const m = gitspaceManifest('gcp-resize-running', { infra: INFRA, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const calls = setMachineTypeCalls().length;

    await k8s.patch(m, { spec: { machineType: 'large' } });
    const pending = await k8s.waitFor(m, (g) => (g.status?.pendingChanges?.length ?? 0) > 0, 20_000);
    expect(pending.status?.pendingChanges).to.deep.equal([
      { field: 'machineType', from: 'e2-standard-2', to: 'e2-standard-4', message: 'machineType small → large (e2-standard-2 → e2-standard-4) is applied at the next stop' },
      { field: 'diskSizeGB', from: '20', to: '40', message: 'disk 20 → 40 GB is applied at the next stop' },
    ]);
    expect(condition(pending)).to.include({ status: 'False', reason: 'ResizePending' });
    expect(pending.status?.phase).to.equal('Running');
    await new Promise((r) => setTimeout(r, 1_500)); // more reconciles pass: still untouched
    expect(vm(pending).status).to.equal('RUNNING');
    expect(vmType(pending)).to.equal('e2-standard-2');
    expect(vm(pending).diskSizeGb).to.equal(20);
    expect(setMachineTypeCalls()).to.have.length(calls);
    expect((await k8s.events(pending)).map(([r]) => r)).to.include('ResizePending');

    await k8s.patch(m, { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitFor(m, (g) => g.status?.phase === 'Stopped' && g.status.instance?.machineType === 'e2-standard-4', 30_000);
    expect(stopped.status?.pendingChanges).to.equal(undefined);
    expect(stopped.status?.instance).to.include({ id: running.status?.instance?.id, diskSizeGB: 40 });
    expect(condition(stopped)).to.include({ status: 'True', reason: 'Resized' });

    await k8s.patch(m, { spec: { state: 'Running' } });
    const again = await k8s.waitPhase(m, 'Running', 60_000);
    expect(again.status?.instance).to.include({ id: running.status?.instance?.id, machineType: 'e2-standard-4' });
    expect(vmType(again)).to.equal('e2-standard-4');
    await k8s.deleteAndWait(m);
  });

  it('refuses a smaller disk: ResizeRefused, the VM keeps running as it is, and no resize at the stop', async () => {
    const m = gitspaceManifest('gcp-resize-shrink', { infra: INFRA, repo, key, machineType: 'large' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    expect(running.status?.instance).to.include({ machineType: 'e2-standard-4', diskSizeGB: 40 });
    const calls = fake.calls.length;

    await k8s.patch(m, { spec: { machineType: 'large-thin' } });
    const refused = await k8s.waitFor(m, (g) => condition(g)?.reason === 'ResizeRefused', 20_000);
    expect(condition(refused)?.status).to.equal('False');
    expect(condition(refused)?.message).to.match(/^disks only grow: 40 → 20 GB/);
    expect(refused.status?.pendingChanges).to.equal(undefined);
    expect(refused.status?.phase).to.equal('Running');
    await eventually('the ResizeRefused Event', 10_000, async () => (await k8s.events(refused)).some(([r, n]) => r === 'ResizeRefused' && n.startsWith('disks only grow: 40 → 20 GB')));

    await k8s.patch(m, { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(stopped.status?.instance?.diskSizeGB).to.equal(40);
    expect(vm(stopped).diskSizeGb).to.equal(40);
    expect(fake.calls.slice(calls).filter((c) => c.method === 'POST' && /\/(resize|setMachineType)$/.test(c.path)), 'resize calls').to.have.length(0);
    expect(condition(await k8s.get(m))?.reason).to.equal('ResizeRefused');
    await k8s.deleteAndWait(m);
  });

  it('keeps a Gitspace Stopped with the cloud\'s message when GCE refuses the machine type, backs off, and starts once the spec is fixed', async () => {
    const m = gitspaceManifest('gcp-resize-refused', { infra: INFRA, repo, key });
    await k8s.apply(m);
    await k8s.waitPhase(m, 'Running', 60_000);
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    const calls = setMachineTypeCalls().length;

    // A new type and a start in one change: the resize comes first, and fails.
    await k8s.patch(m, { spec: { machineType: 'mega', state: 'Running' } });
    const failed = await k8s.waitFor(m, (g) => condition(g)?.reason === 'ResizeFailed', 20_000);
    expect(condition(failed)?.message).to.include("Machine type with name 'e2-mega-4' does not exist in zone");
    expect(failed.status?.phase).to.equal('Stopped');
    expect(failed.status?.message).to.match(/^resize failed: /);
    await new Promise((r) => setTimeout(r, 3_000));
    // The first attempt, and at most one more within the 5 s backoff; never started meanwhile.
    expect(setMachineTypeCalls().length - calls).to.be.within(1, 2);
    expect(vm(failed).status).to.equal('TERMINATED');
    expect((await k8s.get(m))?.status?.phase).to.equal('Stopped');
    expect((await k8s.events(failed)).map(([r]) => r)).to.include('ResizeFailed');

    await k8s.patch(m, { spec: { machineType: 'small' } });
    const back = await k8s.waitPhase(m, 'Running', 60_000);
    expect(back.status?.instance?.machineType).to.equal('e2-standard-2');
    expect(condition(back)).to.include({ status: 'True', reason: 'UpToDate' });
    await k8s.deleteAndWait(m);
  });

  it('GCE refuses what the runner never asks: a machine type change on a running VM, a smaller disk', async () => {
    const p = provider();
    const m = gitspaceManifest('gcp-resize-direct', { infra: INFRA, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const inst = (await p.find(running.status?.instance?.name ?? ''))!;
    expect(inst).to.include({ state: 'running', machineType: 'e2-standard-2', diskSizeGB: 20 });
    const err = await p.resize(inst, { providerType: 'e2-standard-4', requestKey: 'direct-1' }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ProviderError);
    expect((err as ProviderError).message).to.match(/must be stopped/);
    const shrink = await p.resize(inst, { diskSizeGB: 10, requestKey: 'direct-2' }).then(() => undefined, (e: unknown) => e);
    expect((shrink as ProviderError).message).to.match(/must be larger than existing size '20' GB/);
    expect(vmType(running)).to.equal('e2-standard-2');
    expect(vm(running).diskSizeGb).to.equal(20);
    await k8s.deleteAndWait(m);
    await p.close();
  });
});
