// The AWS provider's infra-level work, through the real @aws-sdk/client-ec2 against moto (behind
// the fault proxy): the managed security group that admits only the gateway (created in the
// subnets' VPC, attached to every instance, corrected when widened), credentials EC2 refuses, and
// the warm pool claimed through the agent protocol (moto runs no VMs, so an agent double speaks it).
import { expect } from 'chai';
import { AuthorizeSecurityGroupIngressCommand, DescribeInstancesCommand, DescribeSecurityGroupsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { AGENT_HTTP_PORT, AGENT_SSH_PORT, LABELS, MANAGED_BY } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { INSTANCE_NAME_TAG } from '../../src/providers/aws/provider.ts';
import { ProviderError } from '../../src/providers/types.ts';
import type { Ec2FaultProxy } from '../fakes/ec2-proxy.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { motoInfra, motoPeer, motoProvider, type MotoPeer } from '../support/moto.ts';
import { AgentDouble, startInProcessOperator, testCreateRequest } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'aws-pool';
const GROUP = `gitspaces-${INFRA}-agents`;
const condition = (i: GitspaceInfra | undefined, type: string) => i?.status?.conditions?.find((c) => c.type === type);

describe('AWS infra: security group, credentials and warm pool against moto', function () {
  this.timeout(120_000);
  let peer: MotoPeer;
  let proxy: Ec2FaultProxy;
  let ec2: EC2Client;
  let op: Operator;
  let infraM: Manifest;
  let agent: AgentDouble;
  let poke = 0;
  const key = makeSshKey();
  const nudge = () => k8s.patch(infraM, { metadata: { annotations: { 'test/poke': String(++poke) } } });
  const waitInfra = (ok: (i: GitspaceInfra) => boolean, ms = 30_000) => k8s.waitFor<GitspaceInfra>(infraM, ok, ms);
  const poolReady = (n: number) => (i: GitspaceInfra) => i.status?.pool?.[0]?.ready === n && condition(i, 'PoolReady')?.status === 'True';
  const group = async () => (await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: [GROUP] }] }))).SecurityGroups?.[0];
  const instances = async (filters: { Name: string; Values: string[] }[]) =>
    (await ec2.send(new DescribeInstancesCommand({ Filters: [...filters, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }))).Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
  const tagsOf = (i: { Tags?: { Key?: string; Value?: string }[] }): Record<string, string | undefined> => Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value]));

  before(async () => {
    peer = await motoPeer(60, ['eu-west-1a', 'eu-west-1b']);
    ({ proxy, ec2 } = peer);
    infraM = motoInfra(INFRA, peer.network, { pool: [{ machineType: 'small', zone: 'eu-west-1a', minReady: 2, max: 2 }] });
    await k8s.apply(infraM);
    const aws = motoProvider(peer.network, peer.endpoint, { agentSecurityGroupName: GROUP, tags: { [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: INFRA } });
    agent = new AgentDouble(async (address) => {
      const found = await instances([{ Name: 'private-ip-address', Values: [address] }]);
      return found[0] ? tagsOf(found[0])[INSTANCE_NAME_TAG] : undefined;
    });
    op = await startInProcessOperator({ provider: aws, agent, sweep: false });
  });

  after(async () => {
    proxy.faults = {};
    try {
      await k8s.cleanUpInfra(INFRA);
      expect(await instances([{ Name: `tag:${LABELS.infra}`, Values: [INFRA] }]), 'instances left').to.have.length(0);
    } finally {
      await op.manager.stop();
      await peer.stop();
    }
  });

  it('creates a security group in the subnets\' VPC admitting the agent ports from the gateway only, and corrects it when widened', async () => {
    await waitInfra((i) => condition(i, 'NetworkReady')?.status === 'True');
    const g = (await group())!;
    expect(tagsOf(g)).to.include({ [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: INFRA });
    const rules = (x: typeof g) => (x.IpPermissions ?? []).flatMap((p) => (p.IpRanges ?? []).map((r) => `${p.IpProtocol ?? ''}:${p.FromPort ?? ''}-${p.ToPort ?? ''} ${r.CidrIp ?? ''}`)).sort();
    expect(rules(g)).to.deep.equal([`tcp:${AGENT_HTTP_PORT}-${AGENT_HTTP_PORT} 127.0.0.0/8`, `tcp:${AGENT_SSH_PORT}-${AGENT_SSH_PORT} 127.0.0.0/8`]);

    await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: g.GroupId, IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] }));
    await nudge();
    await eventually('the extra rule to be revoked', 20_000, async () => rules((await group())!).length === 2);

    // A port range is revoked whole (not mistaken for a single-port rule of its first port).
    await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: g.GroupId, IpPermissions: [{ IpProtocol: 'tcp', FromPort: 1, ToPort: 100, IpRanges: [{ CidrIp: '10.0.0.0/8' }] }] }));
    await nudge();
    await eventually('the port range to be revoked', 20_000, async () => rules((await group())!).length === 2);
    expect(rules((await group())!)).to.deep.equal([`tcp:${AGENT_HTTP_PORT}-${AGENT_HTTP_PORT} 127.0.0.0/8`, `tcp:${AGENT_SSH_PORT}-${AGENT_SSH_PORT} 127.0.0.0/8`]);
    expect(await k8s.eventReasons((await k8s.get<GitspaceInfra>(infraM))!)).to.include.members(['NetworkRuleCreated', 'NetworkRuleCorrected']);
  });

  it('runs no instance before its managed security group exists (EC2 attaches groups at launch only), then runs it in both groups', async () => {
    const name = 'gitspaces-aws-early-agents';
    const p = motoProvider(peer.network, peer.endpoint, { agentSecurityGroupName: name });
    const req = testCreateRequest('gs-aws-early', { machineType: { providerType: 't3.medium' }, image: peer.network.ami, labels: { [LABELS.infra]: 'early' } });
    const early = await p.create(req).then(() => undefined, (e: unknown) => e as ProviderError);
    expect(early).to.be.instanceOf(ProviderError);
    expect(early?.code).to.equal('Transient');
    expect(early?.message).to.include(`security group ${name} does not exist yet`);
    expect(await instances([{ Name: `tag:${INSTANCE_NAME_TAG}`, Values: ['gs-aws-early'] }]), 'nothing run').to.have.length(0);

    const { id } = await p.ensureNetwork({ name, sourceRanges: ['127.0.0.0/8'], ports: [AGENT_HTTP_PORT] });
    const inst = await p.create(req);
    const [vm] = await instances([{ Name: `tag:${INSTANCE_NAME_TAG}`, Values: ['gs-aws-early'] }]);
    expect(vm?.SecurityGroups?.map((g) => g.GroupId).sort()).to.deep.equal([peer.network.securityGroupId, id].sort());
    await p.delete(inst);
    p.close();
  });

  it('keeps the pool filled; a new Gitspace claims a pooled instance (retagged, configured over the agent protocol) without RunInstances on its path', async () => {
    await waitInfra(poolReady(2));
    const pooled = await instances([{ Name: `tag:${LABELS.pool}`, Values: ['small'] }]);
    expect(pooled.length).to.be.at.least(2);
    expect(pooled[0]!.SecurityGroups?.map((s) => s.GroupName)).to.include(GROUP);
    const runsBefore = proxy.count('RunInstances');
    const appliedAt = Date.now();
    const m = gitspaceManifest('aws-pooled', { infra: INFRA, repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 30_000);
    const runsAtRunning = proxy.count('RunInstances');
    expect(running.status?.instance?.pooled).to.equal(true);
    expect(pooled.map((i) => tagsOf(i)[INSTANCE_NAME_TAG])).to.include(running.status?.instance?.name);
    expect(agent.claims).to.deep.equal([running.metadata.uid]);
    const [vm] = await instances([{ Name: `tag:${INSTANCE_NAME_TAG}`, Values: [running.status?.instance?.name ?? ''] }]);
    expect(tagsOf(vm!)).to.include({ [LABELS.gitspaceUID]: running.metadata.uid, [LABELS.gitspaceName]: 'aws-pooled' });
    expect(tagsOf(vm!)).to.not.have.property(LABELS.pool);
    // Instances launched since the Gitspace was applied are the pool's refill, none is its own.
    expect(runsAtRunning - runsBefore).to.be.at.most(1);
    await eventually('the refill', 20_000, () => proxy.count('RunInstances') > runsBefore);
    await waitInfra(poolReady(2));
    const launched = (await instances([{ Name: `tag:${LABELS.infra}`, Values: [INFRA] }])).filter((i) => (i.LaunchTime?.getTime() ?? 0) >= appliedAt - 1_000 && tagsOf(i)[INSTANCE_NAME_TAG] !== running.status?.instance?.name);
    expect(launched.length, 'the refill').to.be.at.least(1);
    expect(launched.map((i) => tagsOf(i)[LABELS.pool])).to.not.include(undefined);
    await k8s.deleteAndWait(m);
  });

  it('reports AuthFailure as CredentialsValid=False, and its Gitspaces wait until the credentials work', async () => {
    proxy.faults = { unauthenticated: true };
    try {
      await nudge();
      const bad = await waitInfra((i) => condition(i, 'CredentialsValid')?.status === 'False');
      expect(condition(bad, 'CredentialsValid')).to.include({ reason: 'Unauthenticated' });
      expect(condition(bad, 'CredentialsValid')?.message).to.match(/^spec\.provider\.aws\.credentialsSecretRef: .*AuthFailure/);
      const runs = proxy.calls.filter((c) => c.action === 'RunInstances').length;
      const m = gitspaceManifest('aws-nocreds', { infra: INFRA, repo: '/nowhere', key });
      await k8s.apply(m);
      await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'CredentialsInvalid') ?? false, 20_000);
      expect(proxy.calls.filter((c) => c.action === 'RunInstances').length, 'RunInstances attempts').to.equal(runs);
    } finally {
      proxy.faults = {};
    }
    await nudge();
    await k8s.waitPhase(gitspaceManifest('aws-nocreds', { infra: INFRA, repo: '/nowhere', key }), 'Running', 30_000);
    await k8s.deleteAndWait(gitspaceManifest('aws-nocreds', { infra: INFRA, repo: '/nowhere', key }));
  });
});
