// The GCP provider's infra-level work, through the real @google-cloud/compute client against the
// GCE fake (which boots each VM's startup script, so pool VMs run the real pool agent): the
// gateway-only firewall rule (created, and corrected when someone widens it), credentials the API
// refuses (a clear infra condition, Gitspaces wait without calling the cloud), and the warm pool
// (filled, claimed without an insert on the Gitspace's path, refilled, resumed after stop/start
// as the Gitspace that claimed it, emptied with the infra).
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BootFacts, GitspaceInfra } from '../../src/api/index.ts';
import { AGENT_HTTP_PORT, AGENT_SSH_PORT, CLAIM_PATH } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gceInfra, gceProvider, startGceFake } from '../support/gce.ts';
import { gitspaceManifest, k8s } from '../support/gitspaces.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-devenvs';
const ZONE = 'europe-west1-b';
const INFRA = 'gcp-pool';
const RULE = `gitspaces-${INFRA}-agents`;

const infraManifest = (): Manifest => gceInfra(INFRA, { project: PROJECT, zones: [ZONE], pool: [{ machineType: 'small', zone: ZONE, minReady: 2, max: 3 }] });

const condition = (i: GitspaceInfra | undefined, type: string) => i?.status?.conditions?.find((c) => c.type === type);

describe('GCP infra: firewall rule, credentials and warm pool against the GCE fake', function () {
  this.timeout(180_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let fake: GceFake;
  let op: Operator;
  let poke = 0;
  /** Any update of the infra makes the infra controller look again at once. */
  const nudge = () => k8s.patch(infraManifest(), { metadata: { annotations: { 'test/poke': String(++poke) } } });
  const infra = () => k8s.get<GitspaceInfra>(infraManifest());
  const waitInfra = (what: string, ok: (i: GitspaceInfra) => boolean, ms = 60_000) => k8s.waitFor<GitspaceInfra>(infraManifest(), ok, ms).catch((e: unknown) => { throw new Error(`${what}: ${(e as Error).message}`); });
  const poolReady = (n: number) => (i: GitspaceInfra) => i.status?.pool?.[0]?.ready === n && condition(i, 'PoolReady')?.status === 'True';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-gcp-pool-'));
    repo = makeRepo(work);
    key = makeSshKey();
    const started = await startGceFake({ project: PROJECT, bootMs: 300, stopMs: 200, agentsIn: join(work, 'vms') });
    fake = started.fake;
    const port = started.port;
    const gcp = gceProvider({ project: PROJECT, zones: [ZONE], port, networkTag: `gitspaces-${INFRA}` });
    await k8s.apply(infraManifest());
    op = await startInProcessOperator({ provider: gcp, realAgent: true, sweep: false });
  });

  after(async () => {
    try {
      fake.faults.unauthenticated = false;
      await k8s.cleanUpInfra(INFRA);
      // The infra took its pool VMs with it.
      expect([...fake.instances.values()].filter((i) => i.labels['gitspaces-dev_infra'] === INFRA), 'VMs left').to.have.length(0);
    } finally {
      await op.manager.stop();
      await fake.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('creates the firewall rule that admits only the gateway to the agent ports, and corrects it when widened', async () => {
    await waitInfra('NetworkReady', (i) => condition(i, 'NetworkReady')?.status === 'True');
    const fw = fake.firewalls.get(RULE);
    expect(fw, `firewall rule ${RULE}`).to.not.equal(undefined);
    expect(fw).to.deep.include({ network: 'global/networks/gitspaces', direction: 'INGRESS', sourceRanges: ['127.0.0.0/8'], targetTags: [`gitspaces-${INFRA}`] });
    expect(fw?.allowed).to.deep.equal([{ IPProtocol: 'tcp', ports: [String(AGENT_HTTP_PORT), String(AGENT_SSH_PORT)] }]);
    expect(condition(await infra(), 'NetworkReady')?.message).to.include(`firewall rule ${RULE} admits tcp:${AGENT_HTTP_PORT},${AGENT_SSH_PORT} from 127.0.0.0/8 only`);

    // Someone opens it to the world by hand: the next look puts it back.
    fw!.sourceRanges = ['0.0.0.0/0'];
    await nudge();
    await eventually('the rule to be corrected', 20_000, () => fake.firewalls.get(RULE)?.sourceRanges.join() === '127.0.0.0/8');
    expect(await k8s.eventReasons((await infra())!)).to.include.members(['NetworkRuleCreated', 'NetworkRuleCorrected']);
  });

  it('keeps minReady pool VMs booted; a new Gitspace claims one without an insert on its path, and the pool refills', async () => {
    await waitInfra('two pool VMs ready', poolReady(2), 60_000);
    const pooledBefore = [...fake.instances.values()].filter((i) => i.labels['gitspaces-dev_pool'] === 'small').map((i) => i.name);
    expect(pooledBefore.length).to.be.at.least(2);
    const appliedAt = Date.now();
    const m = gitspaceManifest('gcp-pooled', { infra: INFRA, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const inst = running.status!.instance!;
    expect(inst.pooled).to.equal(true);
    expect(await op.manager.metrics.registry.metrics(), 'a pool hit counted').to.match(/gitspaces_pool_claims_total\{infra="gcp-pool",machine_type="small",result="hit"\} 1/);
    expect(pooledBefore).to.include(inst.name);
    // The claimed VM existed before the Gitspace: any insert since is the pool refilling, not ours.
    // (Measured against the test's own clock before the apply: the API server's creationTimestamp
    // has whole seconds, so a VM made in the same second compared as made after — seen in CI.)
    const vm = fake.instances.get(`${ZONE}/${inst.name ?? ''}`)!;
    expect(Date.parse(vm.creationTimestamp)).to.be.below(appliedAt);
    expect(vm.labels).to.include({ 'gitspaces-dev_gitspace-uid': running.metadata.uid, 'gitspaces-dev_gitspace-name': 'gcp-pooled' });
    expect(vm.labels).to.not.have.property('gitspaces-dev_pool');
    // The real agent took the Gitspace's config: clone done, SSH with the Gitspace's key in the checkout.
    const r = await sshExec(inst.privateIP!, AGENT_SSH_PORT, key, 'pwd; cat README.md; echo "TEAM=$TEAM"');
    expect(r.stdout).to.include('# sample').and.include('TEAM=platform');
    expect(await k8s.eventReasons(running)).to.include.members(['PoolInstanceClaimed', 'AgentEnrolled', 'IDEReady']);
    // Each pool VM boots with the hash of a token of its own; the claimed one keeps no token (its
    // hash is spent) and its config names no other VM: nothing on it could claim another pool VM.
    const bootOf = (name: string) => JSON.parse(readFileSync(join(work, 'vms', name, 'boot.json'), 'utf8')) as BootFacts;
    const hashes = pooledBefore.filter((n) => n !== inst.name).map((n) => bootOf(n).enrolmentSha256);
    expect(hashes.every((h) => /^[0-9a-f]{64}$/.test(h))).to.equal(true);
    expect(new Set(hashes).size).to.equal(hashes.length);
    expect(bootOf(inst.name ?? '').enrolmentSha256).to.equal('');
    const claimedFiles = ['boot.json', 'agent.json'].map((f) => readFileSync(join(work, 'vms', inst.name ?? '', f), 'utf8')).join('\n');
    for (const h of hashes) expect(claimedFiles).to.not.include(h);
    const otherVM = fake.instances.get(`${ZONE}/${pooledBefore.find((n) => n !== inst.name) ?? ''}`);
    if (otherVM) {
      // The claimed VM's user tries to claim its neighbour with what it could know: refused.
      const status = await fetch(`http://${otherVM.networkIP}:${String(AGENT_HTTP_PORT)}${CLAIM_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${bootOf(otherVM.name).enrolmentSha256}` }, body: '{}' }).then((r) => r.status);
      expect(status).to.equal(401);
    }

    // The pool is back to two ready VMs without the claimed one (refilled, unless a spare was
    // already booting), and every VM created since the Gitspace was applied is a pool VM: none is its own.
    await waitInfra('the pool refilled', (i) => poolReady(2)(i) && (i.status?.pool?.[0]?.provisioning ?? 0) === 0, 60_000);
    const unclaimed = [...fake.instances.values()].filter((i) => i.labels['gitspaces-dev_pool'] === 'small');
    expect(unclaimed.map((i) => i.name), 'the pool after the claim').to.not.include(inst.name);
    expect(unclaimed.length).to.be.at.least(2);
    const since = [...fake.instances.values()].filter((i) => Date.parse(i.creationTimestamp) >= appliedAt);
    expect(since.map((i) => i.labels['gitspaces-dev_pool']), 'VMs created since the Gitspace was applied').to.not.include(undefined);
  });

  it('resumes a claimed VM after stop/start as the Gitspace that claimed it', async () => {
    const m = gitspaceManifest('gcp-pooled', { infra: INFRA, repo, key });
    const before = (await k8s.get(m))!.status!.instance!;
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    await k8s.patch(m, { spec: { state: 'Running' } });
    const resumed = await k8s.waitPhase(m, 'Running', 30_000);
    expect(resumed.status?.instance).to.include({ name: before.name, id: before.id, pooled: true });
    const r = await sshExec(resumed.status!.instance!.privateIP!, AGENT_SSH_PORT, key, 'cat README.md');
    expect(r.stdout).to.include('# sample');
    await k8s.deleteAndWait(m);
    expect(fake.instances.has(`${ZONE}/${before.name ?? ''}`)).to.equal(false);
  });

  it('reports credentials the API refuses on the infra, and its Gitspaces wait without calling the cloud until they work', async () => {
    await waitInfra('the pool settled', poolReady(2), 60_000);
    fake.faults.unauthenticated = true;
    try {
      await nudge();
      const bad = await waitInfra('CredentialsValid=False', (i) => condition(i, 'CredentialsValid')?.status === 'False');
      expect(condition(bad, 'CredentialsValid')).to.include({ reason: 'Unauthenticated' });
      expect(condition(bad, 'CredentialsValid')?.message).to.match(/^spec\.provider\.gcp\.credentialsSecretRef: .*invalid authentication credentials/);
      expect(condition(bad, 'Ready')).to.include({ status: 'False', reason: 'Unauthenticated' });
      const from = fake.calls.length;
      const m = gitspaceManifest('gcp-nocreds', { infra: INFRA, repo, key });
      await k8s.apply(m);
      const waiting = await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'CredentialsInvalid') ?? false, 20_000);
      expect(waiting.status?.message).to.include(`GitspaceInfra "${INFRA}" has no valid cloud credentials`);
      expect(fake.calls.slice(from).filter((c) => c.path.includes('/gs-')), 'calls about its VM').to.have.length(0);
    } finally {
      fake.faults.unauthenticated = false;
    }
    await nudge();
    await waitInfra('credentials valid again', (i) => condition(i, 'CredentialsValid')?.status === 'True');
    const m = gitspaceManifest('gcp-nocreds', { infra: INFRA, repo, key });
    await k8s.waitPhase(m, 'Running', 60_000);
    await k8s.deleteAndWait(m);
  });
});
