// The clock-driven cost policies against both cloud fakes — the real @google-cloud/compute client
// against our GCE fake, and the real @aws-sdk/client-ec2 against moto — with the operator's clock
// moved: the run-time limit stops the VM in the cloud (kept), retention deletes it there (EC2's
// delete is asynchronous) and shows Archived, and a start makes a new VM; a Failed Gitspace's VM is
// stopped (kept) after the default failedStopAfter; a namespace quota holds concurrent creates to
// exactly its count of instances in the cloud. The agent is a probe double that can report a
// failed set-up step.
import { expect } from 'chai';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import type { Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import type { AgentProbe } from '../../src/controllers/runner/agent-probe.ts';
import type { VmProvider } from '../../src/providers/types.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gceInfraSpec, gceProvider, startGceFake } from '../support/gce.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { MOTO_CREDENTIALS, MOTO_REGION, motoInfraSpec, motoNetwork, motoProvider, startMoto, type Moto } from '../support/moto.ts';
import { readyHealth, startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const M = 60_000;

interface Cloud {
  name: string;
  start(): Promise<{ provider: VmProvider; infra: Record<string, unknown> }>;
  /** The instance's state in the cloud, or undefined when it is gone. */
  state(id: string): Promise<string | undefined>;
  /** How many instances exist in the cloud (not deleted). */
  count(): Promise<number>;
  stop(): Promise<void>;
}

const PROJECT = 'acme-cost';
const gce = (): Cloud => {
  let fake: GceFake;
  return {
    name: 'GCE fake',
    async start() {
      const started = await startGceFake({ project: PROJECT, bootMs: 200, stopMs: 100, addressPrefix: '127.48' });
      fake = started.fake;
      const port = started.port;
      const provider = gceProvider({ project: PROJECT, zones: ['europe-west1-b'], port, networkTag: 'gitspaces-cost-gcp' });
      return { provider, infra: gceInfraSpec({ project: PROJECT, zones: ['europe-west1-b'] }) };
    },
    state: (id) => Promise.resolve([...fake.instances.values()].find((i) => i.id === id)?.status),
    count: () => Promise.resolve(fake.instances.size),
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
      const network = await motoNetwork(ec2, 49, ['eu-west-1a']);
      return { provider: motoProvider(network, m.endpoint), infra: motoInfraSpec(network, { machineTypes: [{ name: 'small', providerType: 't3.medium', diskSizeGB: 30 }] }) };
    },
    async state(id) {
      const s = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]?.State?.Name;
      return s === 'terminated' ? undefined : s;
    },
    async count() {
      const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }));
      return (r.Reservations ?? []).reduce((n, x) => n + (x.Instances?.length ?? 0), 0);
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
    // Agents at these addresses report a failed set-up step; all others are ready.
    const failing = new Set<string>();
    const probe: AgentProbe = (address) => Promise.resolve({
      ok: true as const,
      health: failing.has(address)
        ? { ...readyHealth(), state: 'failed' as const, steps: [{ name: 'postCreateCommand' as const, status: 'failed' as const, message: 'exit status 3' }] }
        : readyHealth(),
    });
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
      op = await startInProcessOperator({ provider, sweep: false, now: () => Date.now() + offsetMs, logLevel: 'warn', probe });
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
      const stopped = await pokeUntil('stopped at the limit', m, (g) => g.status?.phase === 'Stopped' && g.status.message?.includes('(deleteAfterStopped 72h) unless started before then') === true);
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
      const archived = await pokeUntil('archived', m, (g) => g.status?.phase === 'Archived' && g.status.conditions?.some((c) => c.reason === 'Archived') === true && g.status.instance === undefined);
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

    it('stops the VM of a Failed Gitspace after the default failedStopAfter (30m); the instance and its disk stay', async () => {
      offsetMs = 0;
      const m = gitspaceManifest(`${INFRA}-broken`, { infra: INFRA, repo: '/nowhere', key, idleTimeout: '0' });
      await k8s.apply(m);
      const running = await k8s.waitPhase(m, 'Running', 30_000);
      const id = running.status!.instance!.id!;
      failing.add(running.status!.instance!.privateIP!);
      const failed = await pokeUntil('Failed', m, (g) => g.status?.phase === 'Failed');
      expect(failed.status?.message).to.include('postCreateCommand: exit status 3');
      const failedAt = Date.parse(failed.status!.failedAt!);
      offsetMs = 29 * M;
      await pokeUntil('still running at 29 minutes', m, (g) => g.status?.phase === 'Failed');
      expect(await cloud.state(id), 'kept running for a look').to.be.oneOf(['running', 'RUNNING']);

      offsetMs = failedAt - Date.now() + 30 * M + 5_000;
      const stopped = await pokeUntil('its VM stopped', m, (g) => g.status?.autoStopped?.reason === 'Failed' && g.status.conditions?.some((c) => c.type === 'InstanceReady' && c.reason === 'Stopped') === true);
      expect(stopped.status?.phase).to.equal('Failed');
      expect(stopped.status?.message).to.include('disk is kept');
      await eventually('the instance stopped in the cloud', 30_000, async () => ['stopped', 'TERMINATED'].includes((await cloud.state(id)) ?? '') || undefined);
      expect(await k8s.eventReasons(stopped)).to.include('FailedVMStopped');
      expect(await op.manager.metrics.registry.metrics()).to.match(new RegExp(`gitspaces_failed_vms_stopped_total\\{infra="${INFRA}"\\} 1`));
      for (let k = 0; k < 3; k++) {
        await k8s.patch(m, { metadata: { annotations: { poke: `f${String(k)}` } } });
        await new Promise((r) => setTimeout(r, 700));
        expect((await k8s.get(m))?.status?.phase, 'still Failed, not restarted').to.equal('Failed');
      }
      expect(await cloud.state(id), 'the instance (and its disk) is kept').to.be.oneOf(['stopped', 'TERMINATED']);
      failing.clear();
      await k8s.deleteAndWait(m);
    });

    it('holds 6 concurrent creates to a namespace quota of 2 instances in the cloud; a delete lets one more start', async () => {
      offsetMs = 0;
      await k8s.patch({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: INFRA } }, { spec: { quotas: { perNamespace: { maxRunning: 2 } } } });
      const before = await cloud.count();
      const ms = Array.from({ length: 6 }, (_, i) => gitspaceManifest(`${INFRA}-q${String(i)}`, { infra: INFRA, repo: '/nowhere', key, idleTimeout: '0' }));
      try {
        await Promise.all(ms.map((m) => k8s.apply(m)));
        const phases = async () => Promise.all(ms.map(async (m) => k8s.get(m)));
        await eventually('2 running, 4 waiting with QuotaExceeded', 45_000, async () => {
          const gs = await phases();
          const running = gs.filter((g) => g?.status?.phase === 'Running').length;
          const waiting = gs.filter((g) => g?.status?.conditions?.some((c) => c.reason === 'QuotaExceeded')).length;
          return (running === 2 && waiting === 4) || undefined;
        });
        const waiting = (await phases()).find((g) => g?.status?.phase !== 'Running');
        expect(waiting?.status?.conditions?.find((c) => c.reason === 'QuotaExceeded')?.message).to.include('may run 2 Gitspace(s) at once').and.include('and 2 run (');
        await new Promise((r) => setTimeout(r, 2_000));
        expect((await cloud.count()) - before, 'instances in the cloud').to.equal(2);

        const first = (await phases()).find((g) => g?.status?.phase === 'Running')!;
        await k8s.deleteAndWait(ms.find((m) => m.metadata.name === first.metadata.name)!);
        await eventually('one more running', 45_000, async () => (await phases()).filter((g) => g?.status?.phase === 'Running').length === 2 || undefined);
        await new Promise((r) => setTimeout(r, 2_000));
        expect((await phases()).filter((g) => g?.status?.phase === 'Running').length, 'still 2').to.equal(2);
      } finally {
        await Promise.all(ms.map((m) => k8s.deleteAndWait(m)));
        await k8s.patch({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: INFRA } }, { spec: { quotas: null } });
      }
    });
  });
}
