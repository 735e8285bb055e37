// Spot VMs on GCP: the real @google-cloud/compute client against the GCE fake, which boots each
// VM's real agent. The insert asks for SPOT with STOP on preemption; a preemption injected as GCE
// makes one (a compute.instances.preempted operation, the VM TERMINATED) shows as Stopped with
// reason Preempted, an Event and the metric; the Gitspace stays stopped until a wake resumes the
// same VM with its disk.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_SSH_PORT, GITSPACE_ANNOTATIONS } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gceInfra, gceProvider, startGceFake } from '../support/gce.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-spot';
const ZONE = 'europe-west1-b';

describe('spot VMs on GCP (GCE fake)', function () {
  this.timeout(120_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let fake: GceFake;
  let op: Operator;

  const infra = gceInfra('spot-gcp', {
    project: PROJECT,
    zones: [ZONE],
    machineTypes: [{ name: 'spot', providerType: 'e2-standard-2', diskSizeGB: 20, spot: true }, { name: 'standard', providerType: 'e2-standard-2' }],
  });
  // Each poke is one reconcile; the shared instance list is at most a second old.
  const pokeUntil = <T>(what: string, m: Manifest, probe: () => Promise<T | undefined | false>) =>
    eventually(what, 30_000, async () => {
      await k8s.patch(m, { metadata: { annotations: { poke: String(Date.now()) } } });
      return probe();
    }, 1_200);
  const preemptions = async () => /gitspaces_preemptions_total\{infra="spot-gcp",machine_type="spot"\} (\d+)/.exec(await op.manager.metrics.registry.metrics())?.[1];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-spot-gcp-'));
    repo = makeRepo(work);
    key = makeSshKey();
    const started = await startGceFake({ project: PROJECT, bootMs: 300, stopMs: 200, addressPrefix: '127.47', agentsIn: join(work, 'vms') });
    fake = started.fake;
    const port = started.port;
    await k8s.apply(infra);
    const gcp = gceProvider({ project: PROJECT, zones: [ZONE], port });
    op = await startInProcessOperator({ provider: gcp, realAgent: true, sweep: false, logLevel: 'warn' });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('spot-gcp');
    } finally {
      await op.manager.stop();
      await fake.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('creates a SPOT VM that stops on preemption; a preemption shows as Stopped/Preempted and holds until a wake resumes the same VM and disk', async () => {
    const m = gitspaceManifest('spot-gcp', { infra: 'spot-gcp', repo, key, machineType: 'spot' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const inst = running.status!.instance!;
    const vm = fake.instances.get(`${ZONE}/${inst.name ?? ''}`)!;
    // What GCE received: a Spot VM that stops (keeping its disk) when preempted.
    expect(vm.body.scheduling).to.deep.equal({ provisioningModel: 'SPOT', instanceTerminationAction: 'STOP', automaticRestart: false, onHostMaintenance: 'TERMINATE' });
    const ip = inst.privateIP!;
    expect((await sshExec(ip, AGENT_SSH_PORT, key, 'echo before-preemption > spot-marker.txt')).code).to.equal(0);
    expect(await preemptions()).to.equal(undefined);

    fake.preempt(ZONE, inst.name!);
    const stopped = await pokeUntil('Stopped/Preempted', m, async () => {
      const g = await k8s.get(m);
      return g?.status?.phase === 'Stopped' && g.status.autoStopped?.reason === 'Preempted' && g;
    });
    expect(vm.status).to.equal('TERMINATED');
    const ready = stopped.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).to.include({ status: 'False', reason: 'Preempted' });
    expect(ready?.message).to.match(/^the cloud reclaimed the spot VM at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ; start it again to resume \(the disk is kept\)$/);
    expect(stopped.status?.autoStopped?.generation).to.equal(stopped.metadata.generation);
    expect(stopped.status?.lastRequest).to.include({ action: 'stop', source: 'operator', via: 'spot-preemption' });
    expect(stopped.spec.state ?? 'Running').to.equal('Running');
    expect(await k8s.eventReasons(stopped)).to.include('Preempted');
    expect(await preemptions()).to.equal('1');

    // It is not restarted by itself: several reconciles (each poke is one) later it is still stopped.
    const starts = fake.count('POST', '/start');
    for (const round of [1, 2, 3]) {
      await k8s.patch(m, { metadata: { annotations: { poke: String(round) } } });
      await new Promise((r) => setTimeout(r, 1_200));
    }
    const still = await k8s.get(m);
    expect(still?.status?.phase).to.equal('Stopped');
    expect(still?.status?.autoStopped?.reason).to.equal('Preempted');
    expect(fake.count('POST', '/start')).to.equal(starts);
    expect(vm.status).to.equal('TERMINATED');
    expect(await preemptions()).to.equal('1');

    // A wake (what the delegate sets for a user's start) resumes the same VM, its disk kept.
    await k8s.patch(m, { metadata: { annotations: { [GITSPACE_ANNOTATIONS.wake]: new Date().toISOString() } } });
    const resumed = await k8s.waitPhase(m, 'Running', 60_000);
    expect(resumed.status?.instance?.id).to.equal(inst.id);
    expect(resumed.status?.autoStopped).to.equal(undefined);
    expect(fake.instances.size).to.equal(1);
    expect(fake.count('POST', '/start')).to.equal(starts + 1);
    expect((await sshExec(resumed.status!.instance!.privateIP!, AGENT_SSH_PORT, key, 'cat spot-marker.txt')).stdout.trim()).to.equal('before-preemption');
    // The preemption was counted once; an old one is not news after the resume.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await preemptions()).to.equal('1');
    expect((await k8s.get(m))?.status?.phase).to.equal('Running');

    await k8s.deleteAndWait(m);
  });

  it('creates a standard VM when the machine type is not spot; GCE preempts only spot VMs', async () => {
    const m = gitspaceManifest('std-gcp', { infra: 'spot-gcp', repo, key, machineType: 'standard' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const vm = fake.instances.get(`${ZONE}/${running.status!.instance!.name ?? ''}`)!;
    expect(vm.body).to.not.have.property('scheduling');
    expect(() => { fake.preempt(ZONE, vm.name); }).to.throw(/not a Spot or preemptible VM/);
    await k8s.deleteAndWait(m);
  });
});
