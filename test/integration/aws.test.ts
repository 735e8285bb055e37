// The AWS provider through the real @aws-sdk/client-ec2 against moto's EC2 server. moto starts
// instances already running, does not run UserData and does not enforce ClientToken, so these
// tests prove our own lookup-before-create (including stopped instances) and use an agent double.
// The VPCs use loopback CIDRs (127.x): an operator that probes an instance's private address must
// only ever dial this machine.
import { expect } from 'chai';
import {
  DescribeImagesCommand, DescribeInstancesCommand, DescribeVolumesCommand, EC2Client,
} from '@aws-sdk/client-ec2';
import { LABELS, MANAGED_BY } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { INSTANCE_NAME_TAG, type AwsProvider } from '../../src/providers/aws/provider.ts';
import { testCluster } from '../cluster/current.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { MOTO_CREDENTIALS as credentials, MOTO_REGION as REGION, motoInfra, motoNetwork, motoPeer, motoProvider, startMoto, type Moto, type MotoNetwork, type MotoPeer } from '../support/moto.ts';
import { Ec2FaultProxy } from '../fakes/ec2-proxy.ts';
import { startInProcessOperator, testCreateRequest } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { eventually } from '../support/wait.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('AWS provider against moto', function () {
  this.timeout(120_000);
  let moto: Moto;
  let ec2: EC2Client;
  let net: MotoNetwork;
  let op: Operator;
  const key = makeSshKey();

  const provider = (instanceProfile?: string) => motoProvider(net, moto.endpoint, instanceProfile ? { instanceProfile } : {});
  const byName = async (name: string) => {
    const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${INSTANCE_NAME_TAG}`, Values: [name] }] }));
    return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []);
  };

  before(async () => {
    moto = await startMoto();
    ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint, credentials });
    net = await motoNetwork(ec2, 20, ['eu-west-1a', 'eu-west-1b']);
    await k8s.apply(motoInfra('aws', net, {
      aws: { instanceProfile: 'gitspace-vm' },
      machineTypes: [{ name: 'small', providerType: 't3.medium', diskSizeGB: 30, diskType: 'gp3' }],
    }));
    const aws = provider();
    op = await startInProcessOperator({ provider: aws });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('aws');
    } finally {
      await op.manager.stop();
      ec2.destroy();
      await moto.stop();
    }
  });

  it('runs the lifecycle: tagged instance and volume, IMDSv2 required, stop keeps it, start resumes it, delete terminates it', async () => {
    const m = gitspaceManifest('aws-life', { infra: 'aws', repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const inst = running.status!.instance!;
    expect(inst).to.include({ provider: 'aws', zone: 'eu-west-1a', machineType: 't3.medium' });
    expect(inst.id).to.match(/^i-[0-9a-f]+$/);
    expect(inst.privateIP).to.match(/^127\.20\.1\.\d+$/);
    const [vm] = await byName(inst.name!);
    const tags: Record<string, string | undefined> = Object.fromEntries((vm?.Tags ?? []).map((t) => [t.Key ?? '', t.Value]));
    expect(tags).to.include({ [LABELS.gitspaceUID]: running.metadata.uid, [LABELS.infra]: 'aws', [LABELS.managedBy]: MANAGED_BY, Name: inst.name });
    expect(vm?.SubnetId).to.equal(net.subnets[0]!.subnetId);
    expect(vm?.SecurityGroups?.map((g) => g.GroupId)).to.deep.equal([net.securityGroupId]);
    expect(vm?.MetadataOptions?.HttpTokens).to.equal('required');

    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    expect((await byName(inst.name!))[0]?.State?.Name).to.equal('stopped');
    await k8s.patch(m, { spec: { state: 'Running' } });
    const resumed = await k8s.waitPhase(m, 'Running', 30_000);
    expect(resumed.status?.instance?.id).to.equal(inst.id);
    expect(await byName(inst.name!)).to.have.length(1);

    await k8s.deleteAndWait(m);
    expect((await byName(inst.name!)).map((i) => i.State?.Name)).to.deep.equal(['terminated']);
  });

  it('finds its instance before creating, also when it is stopped (moto does not enforce ClientToken)', async () => {
    const p = provider();
    const req = testCreateRequest('gs-aws-idem', { zone: 'eu-west-1b', machineType: { providerType: 't3.medium' }, image: net.ami, labels: { [LABELS.infra]: 'direct' } });
    const a = await p.create(req);
    expect(a.zone).to.equal('eu-west-1b');
    await p.stop(a);
    const b = await p.create(req);
    expect(b.id).to.equal(a.id);
    expect(b.state).to.equal('stopped');
    expect(await byName('gs-aws-idem')).to.have.length(1);
    expect((await p.listOwned({ [LABELS.infra]: 'direct' })).map((i) => i.id)).to.deep.equal([a.id]);
    await p.delete(a);
    await p.delete(a);
    expect(await p.find('gs-aws-idem')).to.equal(undefined);
    p.close();
  });

  it("maps the disk onto the AMI's own root device (/dev/sda1 or /dev/xvda), so the root disk gets the size and no second volume is made", async () => {
    const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images ?? [];
    const p = provider();
    for (const root of ['/dev/sda1', '/dev/xvda']) {
      const image = images.find((i) => i.RootDeviceName === root)?.ImageId ?? '';
      const name = `gs-aws-root${root.replace(/\//g, '-')}`;
      const inst = await p.create(testCreateRequest(name, { machineType: { providerType: 't3.medium', diskSizeGB: 40 }, image }));
      const [vm] = await byName(name);
      expect(vm?.RootDeviceName, image).to.equal(root);
      expect(vm?.BlockDeviceMappings?.map((b) => b.DeviceName), 'one volume, the root').to.deep.equal([root]);
      const volumeId = vm?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId ?? '';
      expect((await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0]?.Size).to.equal(40);
      expect((await p.find(name))?.diskSizeGB).to.equal(40);
      await p.delete(inst);
    }
    p.close();
  });

  it('names the field to fix when the image or the instance profile does not exist', async () => {
    const req = (image: string) => testCreateRequest('gs-aws-bad', { machineType: { providerType: 't3.medium' }, image });
    const failure = (p: AwsProvider, image: string) => p.create(req(image)).then(() => undefined, (e: unknown) => e as Error & { code?: string });
    const badImage = await failure(provider(), 'ami-0123456789abcdef0');
    expect(badImage?.code).to.equal('InvalidConfig');
    expect(badImage?.message).to.match(/^spec\.image: .*ami-0123456789abcdef0/);
    expect(await byName('gs-aws-bad'), 'nothing was run').to.have.length(0);
    const badProfile = await failure(provider('no-such-profile'), net.ami);
    expect(badProfile?.code).to.equal('InvalidConfig');
    expect(badProfile?.message).to.match(/^spec\.provider\.aws\.instanceProfile: .*no-such-profile/);
  });
});

describe('AWS provider: operator killed (-9) right after RunInstances', function () {
  this.timeout(240_000);
  let moto: Moto;
  let ec2: EC2Client;
  let work: string;
  const ops: OperatorProcess[] = [];
  let m0: Manifest;

  before(async () => {
    moto = await startMoto();
    ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint, credentials });
    m0 = motoInfra('aws-crash', await motoNetwork(ec2, 30, ['eu-west-1a']));
    await k8s.apply(m0);
    work = mkdtempSync(join(tmpdir(), 'gitspaces-aws-crash-'));
  });

  after(async () => {
    for (const o of ops) await o.kill();
    const op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--ec2-endpoint', moto.endpoint] });
    try {
      await k8s.cleanUpInfra('aws-crash');
    } finally {
      await op.kill('SIGTERM');
      ec2.destroy();
      await moto.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('finds the instance by its tags after a restart instead of running a second one, 6 rounds', async () => {
    const key = makeSshKey();
    const ms: Manifest[] = [];
    const live = async () => {
      const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }, { Name: `tag:${LABELS.infra}`, Values: ['aws-crash'] }] }));
      return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []);
    };
    for (let round = 0; round < 6; round++) {
      const op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--ec2-endpoint', moto.endpoint], name: `aws-crash-${round}` });
      ops.push(op);
      const m = gitspaceManifest(`aws-crash-${round}`, { infra: 'aws-crash', repo: '/nowhere', key });
      ms.push(m);
      const before = (await live()).length;
      await k8s.apply(m);
      // Kill the moment the instance exists in EC2 — before the operator can record it.
      await eventually('the instance to exist', 10_000, async () => (await live()).length > before, 20).catch(() => undefined);
      await op.kill('SIGKILL');
    }
    const final = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--ec2-endpoint', moto.endpoint], name: 'aws-crash-final' });
    ops.push(final);
    // moto's instances never run an agent, so they stop at Starting; what matters is how many exist.
    const all = await Promise.all(ms.map((m) => k8s.waitFor(m, (g) => Boolean(g.status?.instance?.id), 60_000)));
    const names = all.map((g) => g.status?.instance?.name ?? '').sort();
    const tagged = (await live()).map((i) => i.Tags?.find((t) => t.Key === INSTANCE_NAME_TAG)?.Value ?? '').sort();
    expect(tagged, 'exactly one EC2 instance per Gitspace').to.deep.equal(names);
    await Promise.all(ms.map((m) => k8s.deleteAndWait(m, 90_000)));
    expect(await live()).to.have.length(0);
  });
});

describe('AWS provider through a fault-injecting proxy in front of moto', function () {
  this.timeout(120_000);
  let peer: MotoPeer;
  let proxy: Ec2FaultProxy;
  let ec2: EC2Client;
  let op: Operator;
  let infraM: Manifest;
  const key = makeSshKey();

  before(async () => {
    peer = await motoPeer(40, ['eu-west-1a', 'eu-west-1b']);
    ({ proxy, ec2 } = peer);
    proxy.faults.noCapacitySubnets = new Set([peer.network.subnets[0]!.subnetId]);
    infraM = motoInfra('aws-faults', peer.network);
    await k8s.apply(infraM);
    const aws = motoProvider(peer.network, peer.endpoint);
    op = await startInProcessOperator({ provider: aws, sweep: false });
  });

  after(async () => {
    proxy.faults = {};
    try {
      await k8s.cleanUpInfra('aws-faults');
    } finally {
      await op.manager.stop();
      await peer.stop();
    }
  });

  it('falls over to the next zone on InsufficientInstanceCapacity', async () => {
    const m = gitspaceManifest('aws-zone', { infra: 'aws-faults', repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    expect(running.status?.instance?.zone).to.equal('eu-west-1b');
    expect(proxy.calls.some((c) => c.action === 'RunInstances' && c.faulted === 'InsufficientInstanceCapacity')).to.equal(true);
    await k8s.deleteAndWait(m);
  });

  it('converges with 20 % of calls throttled or failing, one instance each, within the rate policy', async () => {
    proxy.faults = { ...proxy.faults, throttleRate: 0.1, errorRate: 0.1 };
    const from = proxy.calls.length;
    const ms = Array.from({ length: 8 }, (_, i) => gitspaceManifest(`aws-fault-${i}`, { infra: 'aws-faults', repo: '/nowhere', key }));
    await Promise.all(ms.map((m) => k8s.apply(m)));
    const all = await Promise.all(ms.map((m) => k8s.waitPhase(m, 'Running', 90_000)));
    proxy.faults = { noCapacitySubnets: proxy.faults.noCapacitySubnets };
    const names = all.map((g) => g.status?.instance?.name ?? '');
    expect(new Set(names).size).to.equal(8);
    const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${INSTANCE_NAME_TAG}`, Values: names }, { Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
    expect((r.Reservations ?? []).flatMap((x) => x.Instances ?? []), 'one instance per Gitspace despite retries').to.have.length(8);
    const runs = proxy.calls.slice(from).filter((c) => c.action === 'RunInstances').map((c) => c.at);
    // the run bucket admits 5 creates at once, then 2/s (so at most 7 in any second); each create
    // may try both zones → at most 14 RunInstances in any second (immediate retries would far exceed it)
    for (const t of runs) expect(runs.filter((u) => u >= t && u < t + 1_000).length, 'RunInstances attempts in one second').to.be.at.most(14);
    expect(proxy.calls.slice(from).some((c) => c.faulted)).to.equal(true);
    await Promise.all(ms.map((m) => k8s.deleteAndWait(m)));
  });
});
