// Spot VMs on AWS: the real @aws-sdk/client-ec2 against moto with its spot extension
// (test/fakes/moto_spot.py), which models what moto lacks as EC2 behaves: an interruption stops a
// spot instance with StateReason Server.SpotInstanceShutdown, and StartInstances of an interrupted
// instance is refused (IncorrectSpotRequestState) — only EC2 restarts it, when capacity returns.
// The agent is a double: moto boots nothing.
import { expect } from 'chai';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GITSPACE_ANNOTATIONS } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { interruptSpot, MOTO_CREDENTIALS, MOTO_REGION, motoInfra, motoNetwork, motoProvider, spotCapacityReturns, spotMarketOptions, startMoto, type Moto } from '../support/moto.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

describe('spot VMs on AWS (moto)', function () {
  this.timeout(120_000);
  let moto: Moto;
  let ec2: EC2Client;
  let op: Operator;
  const key = makeSshKey();

  const preemptions = async () => /gitspaces_preemptions_total\{infra="spot-aws",machine_type="spot"\} (\d+)/.exec(await op.manager.metrics.registry.metrics())?.[1];
  const described = async (id: string) => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
  // Each poke is one reconcile; the shared instance list is at most a second old.
  const pokeUntil = <T>(what: string, m: Manifest, probe: () => Promise<T | undefined | false>) =>
    eventually(what, 30_000, async () => {
      await k8s.patch(m, { metadata: { annotations: { poke: String(Date.now()) } } });
      return probe();
    }, 1_200);
  const poke = async (m: Manifest, rounds: number) => {
    for (let k = 0; k < rounds; k++) {
      await k8s.patch(m, { metadata: { annotations: { poke: `${String(Date.now())}-${String(k)}` } } });
      await new Promise((r) => setTimeout(r, 1_200));
    }
  };

  before(async () => {
    moto = await startMoto();
    ec2 = new EC2Client({ region: MOTO_REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    const network = await motoNetwork(ec2, 48, ['eu-west-1a']);
    await k8s.apply(motoInfra('spot-aws', network, { machineTypes: [{ name: 'spot', providerType: 't3.medium', diskSizeGB: 30, spot: true }] }));
    const aws = motoProvider(network, moto.endpoint);
    op = await startInProcessOperator({ provider: aws, sweep: false, logLevel: 'warn' });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('spot-aws');
    } finally {
      await op.manager.stop();
      ec2.destroy();
      await moto.stop();
    }
  });

  it('runs a persistent spot instance that stops on interruption; an interruption holds it Stopped/Preempted; a wake waits for EC2 to restart it', async () => {
    const m = gitspaceManifest('spot-aws', { infra: 'spot-aws', repo: '/nowhere', key, machineType: 'spot' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const id = running.status!.instance!.id!;
    // What EC2 received: spot, persistent, stop on interruption.
    expect(await spotMarketOptions(moto.endpoint, id)).to.deep.equal({ MarketType: 'spot', SpotInstanceType: 'persistent', InstanceInterruptionBehavior: 'stop' });
    const vm = await described(id);
    expect(vm?.InstanceLifecycle).to.equal('spot');
    const volume = vm?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId;
    expect(volume).to.match(/^vol-/);

    // EC2 interrupts it: Stopped with reason Preempted, an Event, the metric.
    expect(await interruptSpot(moto.endpoint, id)).to.include({ state: 'stopped', code: 'Server.SpotInstanceShutdown' });
    const preempted = async () => {
      const g = await k8s.get(m);
      return g?.status?.phase === 'Stopped' && g.status.autoStopped?.reason === 'Preempted' && g;
    };
    const stopped = await pokeUntil('Stopped/Preempted', m, preempted);
    const ready = stopped.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).to.include({ status: 'False', reason: 'Preempted' });
    expect(ready?.message).to.match(/^the cloud reclaimed the spot VM at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ; start it again to resume \(the disk is kept\)$/);
    // The time is EC2's own (its StateTransitionReason), not when the operator noticed.
    expect(stopped.status?.autoStopped?.at).to.equal(new Date(Date.parse(`${/\((.*) GMT\)/.exec((await described(id))?.StateTransitionReason ?? '')?.[1] ?? ''} GMT`)).toISOString().replace('.000Z', 'Z'));
    expect(await k8s.eventReasons(stopped)).to.include('Preempted');
    expect(await preemptions()).to.equal('1');
    await poke(m, 3);
    expect((await k8s.get(m))?.status?.phase).to.equal('Stopped');
    expect((await described(id))?.State?.Name).to.equal('stopped');

    // EC2 restarts an interrupted instance by itself when capacity returns; still held, it is
    // stopped again by the operator (a stop of ours, which a later start may undo).
    await spotCapacityReturns(moto.endpoint, id);
    expect((await described(id))?.State?.Name).to.equal('running');
    await pokeUntil('the operator to stop the restarted instance', m, async () => (await described(id))?.StateReason?.Code === 'Client.UserInitiatedShutdown');
    const held = await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(held.status?.autoStopped?.reason).to.equal('Preempted');
    expect(held.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('Preempted');
    expect(await preemptions()).to.equal('1');

    // A wake resumes it: the same instance and volume.
    await k8s.patch(m, { metadata: { annotations: { [GITSPACE_ANNOTATIONS.wake]: new Date().toISOString() } } });
    const resumed = await k8s.waitPhase(m, 'Running', 30_000);
    expect(resumed.status?.instance?.id).to.equal(id);
    expect(resumed.status?.autoStopped).to.equal(undefined);

    // A second interruption; this time the wake comes before capacity: EC2 refuses the start and
    // the Gitspace waits, Stopped, until EC2 restarts the same instance.
    // EC2 says times to the second: a preemption in the same second as the wake could not be told from an old one.
    await new Promise((r) => setTimeout(r, 1_100));
    await interruptSpot(moto.endpoint, id);
    const again = await pokeUntil('Stopped/Preempted again', m, preempted);
    expect(await preemptions()).to.equal('2');
    await k8s.patch(m, { metadata: { annotations: { [GITSPACE_ANNOTATIONS.wake]: new Date(Date.parse(again.status!.autoStopped!.at) + 1_000).toISOString() } } });
    const waiting = await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'SpotCapacityUnavailable'), 30_000);
    expect(waiting.status?.phase).to.equal('Stopped');
    expect(waiting.status?.message).to.match(/IncorrectSpotRequestState: Only Amazon EC2 can restart an interrupted stopped Spot Instance/);
    await poke(m, 2);
    expect((await k8s.get(m))?.status?.phase).to.equal('Stopped');
    expect(await preemptions()).to.equal('2');
    await spotCapacityReturns(moto.endpoint, id);
    const back = await pokeUntil('Running on the restarted instance', m, async () => {
      const g = await k8s.get(m);
      return g?.status?.phase === 'Running' && g;
    });
    expect(back.status?.instance?.id).to.equal(id);
    expect((await described(id))?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId).to.equal(volume);
    expect(await preemptions()).to.equal('2');

    await k8s.deleteAndWait(m);
  });
});
