// Resize against moto through the real @aws-sdk/client-ec2 (ModifyInstanceAttribute InstanceType,
// ModifyVolume Size on the root volume). moto carries both out in any state and size; the fault
// proxy in front of it keeps EC2's rules (type change only when stopped, volumes only grow), so
// these tests see EC2's refusals. moto boots nothing: an agent double answers for the VMs.
import { expect } from 'chai';
import { DescribeInstancesCommand, DescribeVolumesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { Gitspace, GitspaceInfra } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import type { AwsProvider } from '../../src/providers/aws/provider.ts';
import { ProviderError } from '../../src/providers/types.ts';
import type { Ec2FaultProxy } from '../fakes/ec2-proxy.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { motoInfra, motoPeer, motoProvider, type MotoPeer } from '../support/moto.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'aws-resize';

const condition = (g: Gitspace | undefined) => g?.status?.conditions?.find((c) => c.type === 'MachineUpToDate');

describe('Resize on AWS (moto, EC2 rules in the proxy)', function () {
  this.timeout(120_000);
  let peer: MotoPeer;
  let proxy: Ec2FaultProxy;
  let ec2: EC2Client;
  let op: Operator;
  let provider: () => AwsProvider;
  const key = makeSshKey();

  /** What EC2 says of the instance: type, state and root volume size. */
  const cloud = async (id: string) => {
    const i = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
    const volumeId = i?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId ?? '';
    const v = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0];
    return { type: i?.InstanceType, state: i?.State?.Name, size: v?.Size, mappings: i?.BlockDeviceMappings?.length };
  };

  before(async () => {
    peer = await motoPeer(71, ['eu-west-1a']);
    ({ proxy, ec2 } = peer);
    await k8s.apply(motoInfra(INFRA, peer.network, {
      machineTypes: [
        { name: 'small', providerType: 't3.medium', diskSizeGB: 30, diskType: 'gp3' },
        { name: 'large', providerType: 't3.large', diskSizeGB: 60, diskType: 'gp3' },
        { name: 'large-thin', providerType: 't3.large', diskSizeGB: 20, diskType: 'gp3' },
        { name: 'spotty', providerType: 't3.medium', diskSizeGB: 30, diskType: 'gp3', spot: true },
      ],
    }));
    provider = () => motoProvider(peer.network, peer.endpoint);
    op = await startInProcessOperator({ provider: provider(), sweep: false });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await op.manager.stop();
      await peer.stop();
    }
  });

  it('resizes a Stopped Gitspace in place (same instance, new type, bigger root volume, Event), then starts it with the new type', async () => {
    const m = gitspaceManifest('aws-resize-stopped', { infra: INFRA, repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const id = running.status?.instance?.id ?? '';
    expect(running.status?.instance).to.include({ machineType: 't3.medium', diskSizeGB: 30 });
    expect(await cloud(id)).to.include({ type: 't3.medium', size: 30, mappings: 1 });
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);

    await k8s.patch(m, { spec: { machineType: 'large' } });
    const resized = await k8s.waitFor(m, (g) => g.status?.instance?.machineType === 't3.large' && g.status.instance.diskSizeGB === 60, 30_000);
    expect(resized.status?.phase).to.equal('Stopped');
    expect(resized.status?.instance?.id).to.equal(id);
    expect(resized.status?.pendingChanges).to.equal(undefined);
    expect(condition(resized)).to.include({ status: 'True', reason: 'Resized', message: 't3.medium → t3.large, disk 30 → 60 GB' });
    expect(await cloud(id)).to.include({ type: 't3.large', state: 'stopped', size: 60 });
    await eventually('the Resized Event', 10_000, async () => (await k8s.events(resized)).some(([r, n]) => r === 'Resized' && n === 't3.medium → t3.large, disk 30 → 60 GB'));

    await k8s.patch(m, { spec: { state: 'Running' } });
    const again = await k8s.waitPhase(m, 'Running', 30_000);
    expect(again.status?.instance).to.include({ id, machineType: 't3.large', diskSizeGB: 60 });
    expect(await cloud(id)).to.include({ type: 't3.large', state: 'running' });
    await k8s.deleteAndWait(m);
  });

  it('leaves a Running Gitspace alone, with pendingChanges, and resizes it at the next stop', async () => {
    const m = gitspaceManifest('aws-resize-running', { infra: INFRA, repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const id = running.status?.instance?.id ?? '';
    const modifies = () => proxy.count('ModifyInstanceAttribute') + proxy.count('ModifyVolume');
    const before = modifies();

    await k8s.patch(m, { spec: { machineType: 'large' } });
    const pending = await k8s.waitFor(m, (g) => (g.status?.pendingChanges?.length ?? 0) > 0, 20_000);
    expect(pending.status?.pendingChanges?.map((c) => c.message)).to.deep.equal([
      'machineType small → large (t3.medium → t3.large) is applied at the next stop',
      'disk 30 → 60 GB is applied at the next stop',
    ]);
    expect(condition(pending)).to.include({ status: 'False', reason: 'ResizePending' });
    expect(pending.status?.phase).to.equal('Running');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await cloud(id)).to.include({ type: 't3.medium', state: 'running', size: 30 });
    expect(modifies()).to.equal(before);

    await k8s.patch(m, { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitFor(m, (g) => g.status?.phase === 'Stopped' && g.status.instance?.machineType === 't3.large', 30_000);
    expect(stopped.status?.pendingChanges).to.equal(undefined);
    expect(await cloud(id)).to.include({ type: 't3.large', size: 60 });

    await k8s.patch(m, { spec: { state: 'Running' } });
    const again = await k8s.waitPhase(m, 'Running', 30_000);
    expect(again.status?.instance).to.include({ id, machineType: 't3.large', diskSizeGB: 60 });
    await k8s.deleteAndWait(m);
  });

  it('refuses a smaller disk: ResizeRefused, the VM keeps running as it is, and the stop resizes nothing', async () => {
    const m = gitspaceManifest('aws-resize-shrink', { infra: INFRA, repo: '/nowhere', key, machineType: 'large' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const id = running.status?.instance?.id ?? '';
    const before = proxy.count('ModifyInstanceAttribute') + proxy.count('ModifyVolume');

    await k8s.patch(m, { spec: { machineType: 'large-thin' } });
    const refused = await k8s.waitFor(m, (g) => condition(g)?.reason === 'ResizeRefused', 20_000);
    expect(condition(refused)?.message).to.match(/^disks only grow: 60 → 20 GB/);
    expect(refused.status?.pendingChanges).to.equal(undefined);
    await eventually('the ResizeRefused Event', 10_000, async () => (await k8s.events(refused)).some(([r]) => r === 'ResizeRefused'));
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await cloud(id)).to.include({ type: 't3.large', size: 60 });
    expect(proxy.count('ModifyInstanceAttribute') + proxy.count('ModifyVolume')).to.equal(before);
    await k8s.deleteAndWait(m);
  });

  it('refuses to turn a spot instance standard (EC2 cannot change its market): ResizeRefused says it stays spot, and the stop changes nothing', async () => {
    const m = gitspaceManifest('aws-resize-spot', { infra: INFRA, repo: '/nowhere', key, machineType: 'spotty' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const id = running.status?.instance?.id ?? '';
    const lifecycle = async () => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]?.InstanceLifecycle;
    expect(await lifecycle()).to.equal('spot');
    const infra: Manifest = { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: INFRA } };
    const types = (await k8s.get<GitspaceInfra>(infra))?.spec.machineTypes ?? [];
    const before = proxy.count('ModifyInstanceAttribute') + proxy.count('ModifyVolume');
    try {
      await k8s.patch(infra, { spec: { machineTypes: types.map((t) => (t.name === 'spotty' ? { ...t, spot: false } : t)) } });
      const refused = await k8s.waitFor(m, (g) => condition(g)?.reason === 'ResizeRefused', 20_000);
      expect(condition(refused)?.message).to.equal('machine type spotty is now standard but this cloud cannot switch an existing instance between spot and standard: it stays spot until it is archived or re-created');
      expect(refused.status?.pendingChanges).to.equal(undefined);
      await k8s.patch(m, { spec: { state: 'Stopped' } });
      await k8s.waitPhase(m, 'Stopped', 30_000);
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await k8s.get(m))?.status?.phase, 'stays stopped, not stuck').to.equal('Stopped');
      expect(await lifecycle()).to.equal('spot');
      expect(proxy.count('ModifyInstanceAttribute') + proxy.count('ModifyVolume')).to.equal(before);
      await k8s.patch(m, { spec: { state: 'Running' } });
      await k8s.waitPhase(m, 'Running', 30_000);
      await k8s.deleteAndWait(m);
    } finally {
      await k8s.patch(infra, { spec: { machineTypes: types } });
    }
  });

  it('EC2 (the proxy\'s rules) refuses what the runner never asks: a type change on a running instance, a smaller volume', async () => {
    const m = gitspaceManifest('aws-resize-direct', { infra: INFRA, repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const p = provider();
    const inst = (await p.find(running.status?.instance?.name ?? ''))!;
    expect(inst).to.include({ state: 'running', machineType: 't3.medium', diskSizeGB: 30 });
    const err = await p.resize(inst, { providerType: 't3.large', requestKey: 'direct' }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ProviderError);
    expect((err as ProviderError).message).to.match(/IncorrectInstanceState: The instance 'i-[0-9a-f]+' is not in the 'stopped' state/);
    const shrink = await p.resize(inst, { diskSizeGB: 10, requestKey: 'direct' }).then(() => undefined, (e: unknown) => e);
    expect((shrink as ProviderError).message).to.match(/InvalidParameterValue: New size cannot be smaller than existing size/);
    expect(await cloud(inst.id)).to.include({ type: 't3.medium', size: 30 });
    p.close();
    await k8s.deleteAndWait(m);
  });
});
