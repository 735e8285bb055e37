// A scheduled warm pool on EC2 (the real @aws-sdk/client-ec2 against moto; an agent double answers
// for the pooled instances, as moto boots nothing), with the operator's clock moved: a weekday
// window in Europe/Berlin fills the pool, and when it closes the surplus ready instances are
// terminated in EC2 down to the off-hours value. The GCE side, DST and refusals are in
// pool-schedules.test.ts.
import { expect } from 'chai';
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { LABELS, type GitspaceInfra } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { INSTANCE_NAME_TAG } from '../../src/providers/aws/provider.ts';
import { k8s } from '../support/gitspaces.ts';
import { motoInfra, motoPeer, motoProvider, type MotoPeer } from '../support/moto.ts';
import { AgentDouble, startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'aws-scheduled-pool';
type Pool = NonNullable<NonNullable<GitspaceInfra['status']>['pool']>[number];

describe('A scheduled warm pool on EC2 (moto), with the operator\'s clock moved', function () {
  this.timeout(120_000);
  let peer: MotoPeer;
  let ec2: EC2Client;
  let op: Operator;
  let infraM: Manifest;
  let offsetMs = 0;
  let poke = 0;
  const setClock = (iso: string) => {
    offsetMs = Date.parse(iso) - Date.now();
  };
  const nudge = () => k8s.patch(infraM, { metadata: { annotations: { 'test/poke': String(++poke) } } });
  /** The pool's instances in EC2 that are not terminated (or terminating). */
  const pooled = async () =>
    (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${LABELS.pool}`, Values: ['small'] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] })))
      .Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
  /** The status shows `want`, nothing is booting, and EC2 has as many pool instances as are ready. */
  const settled = (what: string, want: Partial<Pool>) => {
    let last = '';
    return eventually(() => `${what}; last: ${last}`, 30_000, async () => {
      const p = (await k8s.get<GitspaceInfra>(infraM))?.status?.pool?.[0];
      const inCloud = (await pooled()).length;
      last = `${JSON.stringify(p)}, ${String(inCloud)} in EC2`;
      return (!!p && Object.entries(want).every(([k, v]) => p[k as keyof Pool] === v) && p.provisioning === 0 && inCloud === p.ready) || undefined;
    });
  };

  before(async () => {
    peer = await motoPeer(63, ['eu-west-1a']);
    ec2 = peer.ec2;
    infraM = motoInfra(INFRA, peer.network, {
      pool: [{
        machineType: 'small', zone: 'eu-west-1a', minReady: 0, max: 3,
        schedules: [
          { cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', minReady: 3 },
          { cron: '0 18 * * 1-5', timezone: 'Europe/Berlin', minReady: 1 },
        ],
      }],
    });
    // Friday 2026-03-27, 07:59:50 in Berlin (CET): ten seconds before the weekday window opens.
    setClock('2026-03-27T06:59:50Z');
    await k8s.apply(infraM);
    const aws = motoProvider(peer.network, peer.endpoint);
    const agent = new AgentDouble(async (address) => {
      const found = (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'private-ip-address', Values: [address] }, { Name: 'instance-state-name', Values: ['running'] }] }))).Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
      return found[0]?.Tags?.find((t) => t.Key === INSTANCE_NAME_TAG)?.Value;
    });
    op = await startInProcessOperator({ provider: aws, agent, sweep: false, now: () => Date.now() + offsetMs });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
      expect(await pooled(), 'instances left').to.have.length(0);
    } finally {
      await op.manager.stop();
      await peer.stop();
    }
  });

  it('fills to the window\'s value when it opens, and terminates the surplus ready instances when it closes', async () => {
    await settled('the off-hours pool', { ready: 1, minReady: 1, nextChange: '2026-03-27T07:00:00.000Z' });

    setClock('2026-03-27T07:00:05Z');
    await nudge();
    await settled('the window open', { ready: 3, minReady: 3, nextChange: '2026-03-27T17:00:00.000Z' });
    const open = (await pooled()).map((i) => i.InstanceId);
    const terminations = peer.proxy.count('TerminateInstances');

    // 18:00:05 in Berlin: down to one by terminating two ready instances; next start Monday 08:00 CEST.
    setClock('2026-03-27T17:00:05Z');
    await nudge();
    await settled('the window closed', { ready: 1, minReady: 1, nextChange: '2026-03-30T06:00:00.000Z' });
    expect(peer.proxy.count('TerminateInstances') - terminations, 'TerminateInstances calls').to.equal(2);
    const left = (await pooled()).map((i) => i.InstanceId);
    expect(left).to.have.length(1);
    expect(open, 'the one left was one of the ready instances').to.include(left[0]);
  });
});
