// The clock-driven cost policies against both cloud fakes — the real @google-cloud/compute client
// against our GCE fake, and the real @aws-sdk/client-ec2 against moto — with the operator's clock
// moved: the run-time limit stops the VM in the cloud (kept), retention deletes it there (EC2's
// delete is asynchronous) and shows Archived, and a start makes a new VM. The agent is the double.
import { expect } from 'chai';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PassThroughClient } from 'google-auth-library';
import { AGENT_HTTP_PORT, type Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { AwsProvider } from '../../src/providers/aws/provider.ts';
import { GcpProvider } from '../../src/providers/gcp/provider.ts';
import type { VmProvider } from '../../src/providers/types.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { MOTO_CREDENTIALS, MOTO_REGION, motoNetwork, startMoto, type Moto } from '../support/moto.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const M = 60_000;

interface Cloud {
  name: string;
  start(): Promise<{ provider: VmProvider; infra: Record<string, unknown> }>;
  /** The instance's state in the cloud, or undefined when it is gone. */
  state(id: string): Promise<string | undefined>;
  stop(): Promise<void>;
}

const PROJECT = 'acme-cost';
const gce = (): Cloud => {
  let fake: GceFake;
  return {
    name: 'GCE fake',
    async start() {
      fake = new GceFake({ project: PROJECT, bootMs: 200, stopMs: 100, addressPrefix: '127.48' });
      fake.images.add(`projects/${PROJECT}/global/images/family/gitspaces`);
      const port = await fake.start();
      const provider = new GcpProvider({
        project: PROJECT, zones: ['europe-west1-b'], network: 'gitspaces', subnetworks: [{ region: 'europe-west1', name: 'gitspaces-ew1' }], networkTag: 'gitspaces-cost-gcp',
        agentPort: AGENT_HTTP_PORT, client: { apiEndpoint: '127.0.0.1', port, protocol: 'http', fallback: true, authClient: new PassThroughClient() },
      });
      const infra = {
        provider: { gcp: { project: PROJECT, network: 'gitspaces', subnetworks: [{ region: 'europe-west1', name: 'gitspaces-ew1' }], zones: ['europe-west1-b'] } },
        image: `projects/${PROJECT}/global/images/family/gitspaces`, machineTypes: [{ name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 }],
      };
      return { provider, infra };
    },
    state: (id) => Promise.resolve([...fake.instances.values()].find((i) => i.id === id)?.status),
    stop: () => fake.stop(),
  };
};
const moto = (): Cloud => {
  let m: Moto;
  let ec2: EC2Client;
  return {
    name: 'moto',
    async start() {
      m = await startMoto();
      ec2 = new EC2Client({ region: MOTO_REGION, endpoint: m.endpoint, credentials: MOTO_CREDENTIALS });
      const { subnets, securityGroupId, ami } = await motoNetwork(ec2, 49, ['eu-west-1a']);
      const provider = new AwsProvider({ region: MOTO_REGION, subnets, securityGroupIds: [securityGroupId], agentPort: AGENT_HTTP_PORT, client: { endpoint: m.endpoint, credentials: MOTO_CREDENTIALS } });
      return { provider, infra: { provider: { aws: { region: MOTO_REGION, subnets, securityGroupIds: [securityGroupId] } }, image: ami, machineTypes: [{ name: 'small', providerType: 't3.medium', diskSizeGB: 30 }] } };
    },
    async state(id) {
      const s = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]?.State?.Name;
      return s === 'terminated' ? undefined : s;
    },
    async stop() {
      ec2.destroy();
      await m.stop();
    },
  };
};

for (const make of [gce, moto]) {
  const cloud = make();
  const INFRA = `cost-${cloud.name === 'moto' ? 'aws' : 'gcp'}`;

  describe(`cost controls on the ${cloud.name}, with the operator's clock moved`, function () {
    this.timeout(120_000);
    let op: Operator;
    let offsetMs = 0;
    const key = makeSshKey();
    let last: Gitspace | undefined;
    const pokeUntil = (what: string, m: Manifest, ok: (g: Gitspace) => boolean) =>
      eventually(what, 30_000, async () => {
        await k8s.patch(m, { metadata: { annotations: { poke: String(Date.now()) } } });
        const g = await k8s.get(m);
        last = g;
        return g && ok(g) ? g : undefined;
      }, 1_000).catch((e: unknown) => { throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last?.status)}`); });

    before(async () => {
      const { provider, infra } = await cloud.start();
      await k8s.apply({
        apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: INFRA },
        spec: { ...infra, allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.org', egressRanges: ['127.0.0.0/8'] }, maxRunTime: '8h', deleteAfterStopped: '72h' },
      });
      op = await startInProcessOperator({ provider, sweep: false, now: () => Date.now() + offsetMs, logLevel: 'warn' });
    });

    after(async () => {
      try {
        await k8s.cleanUpInfra(INFRA);
      } finally {
        await op.manager.stop();
        await cloud.stop();
      }
    });

    it('stops the VM at the run-time limit, archives it (deleted in the cloud) after deleteAfterStopped, and starts a new one on request', async () => {
      offsetMs = 0;
      const m = gitspaceManifest(`${INFRA}-gs`, { infra: INFRA, repo: '/nowhere', key, idleTimeout: '0' });
      await k8s.apply(m);
      const running = await k8s.waitPhase(m, 'Running', 30_000);
      const id = running.status!.instance!.id!;
      expect(running.status?.stopsAt).to.be.a('string');
      expect(running.status?.message).to.include('(run-time limit 8h)');

      offsetMs = 8 * 60 * M + 5_000;
      const stopped = await pokeUntil('stopped at the limit', m, (g) => g.status?.phase === 'Stopped');
      expect(stopped.status?.autoStopped?.reason).to.equal('MaxRunTime');
      expect(await cloud.state(id)).to.be.oneOf(['stopped', 'TERMINATED']);

      const stoppedAt = Date.parse(stopped.status!.stoppedAt!);
      offsetMs = stoppedAt - Date.now() + 71 * 60 * M;
      await eventually('the ArchiveSoon warning', 30_000, async () => {
        await k8s.patch(m, { metadata: { annotations: { poke: String(Date.now()) } } });
        return (await k8s.eventReasons(stopped)).includes('ArchiveSoon') || undefined;
      }, 1_000);
      expect(await cloud.state(id), 'not yet').to.not.equal(undefined);
      offsetMs = stoppedAt - Date.now() + 72 * 60 * M + 5_000;
      const archived = await pokeUntil('archived', m, (g) => g.status?.phase === 'Archived' && g.status.conditions?.some((c) => c.reason === 'Archived') === true);
      expect(archived.status?.instance).to.equal(undefined);
      await eventually('the VM to be gone from the cloud', 30_000, async () => (await cloud.state(id)) === undefined || undefined);
      expect(await k8s.eventReasons(archived)).to.include.members(['MaxRunTimeReached', 'ArchiveSoon', 'Archived']);
      // Stays Archived (no flapping while EC2's delete finishes).
      for (let k = 0; k < 3; k++) {
        await k8s.patch(m, { metadata: { annotations: { poke: `a${String(k)}` } } });
        await new Promise((r) => setTimeout(r, 700));
        expect((await k8s.get(m))?.status?.phase).to.equal('Archived');
      }

      // A start (a wake after the operator's stop): a new VM from the repository.
      await k8s.patch(m, { metadata: { annotations: { 'gitspaces.dev/wake': new Date(Date.parse(archived.status!.autoStopped!.at) + 1000).toISOString() } } });
      const again = await k8s.waitPhase(m, 'Running', 30_000);
      expect(again.status?.instance?.id).to.not.equal(id);
      await k8s.deleteAndWait(m);
    });
  });
}
