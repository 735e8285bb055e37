// The operator sends a Gitspace's configuration (hop secret, git credentials, keys) only to a VM
// the cloud says is that Gitspace's: an instance whose labels name another Gitspace UID gets
// nothing, and the Gitspace says why. (The token checks themselves: test/unit/enrolment.test.ts;
// replayed and guessed claims against real VMs: cloud-images.test.ts.) And VM actions follow the
// cloud's labels, not status alone: a status that names another Gitspace's VM (status is writable
// by more people than the spec) cannot steer a delete at it.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABELS } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import type { Instance, VmProvider } from '../../src/providers/types.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

/** The local provider, except that the cloud reports every instance as another Gitspace's. */
function mislabelled(inner: LocalProvider): VmProvider {
  const lie = (i: Instance | undefined) => (i ? { ...i, labels: { ...i.labels, [LABELS.gitspaceUID]: 'someone-else' } } : i);
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'find') return async (name: string) => lie(await target.find(name));
      if (prop === 'listOwned') return async (labels: Record<string, string>) => (await target.listOwned(labels)).map((i) => lie(i) as Instance);
      if (prop === 'create') return async (req: Parameters<VmProvider['create']>[0]) => lie(await target.create(req));
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

describe('enrolment against an instance that is not the Gitspace\'s', function () {
  this.timeout(60_000);
  let work: string;
  let op: Operator;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-enrol-'));
    await k8s.apply(infraManifest('enrol', join(work, 'instances')));
    const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider: mislabelled(local), realAgent: true, sweep: false });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('enrol');
    } finally {
      await op.manager.stop();
      // The VMs the operator refused to touch (not its Gitspace's) are the test's to remove.
      const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [] });
      for (const vm of await local.listOwned({})) await local.delete(vm);
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('sends no configuration when the instance\'s labels name another Gitspace, and says so in a condition', async () => {
    const m = gitspaceManifest('enrol-x', { infra: 'enrol', repo: makeRepo(work), key: makeSshKey() });
    await k8s.apply(m);
    const g = await k8s.waitFor(m, (x) => x.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'EnrolmentRefused'), 30_000);
    const name = g.status?.instance?.name ?? '';
    expect(g.status?.message).to.equal(`instance ${name}: its labels name Gitspace UID "someone-else", not ${g.metadata.uid ?? ''}; its configuration was not sent`);
    // The VM is still waiting for a claim: nothing of the Gitspace's reached it.
    const dir = join(work, 'instances', name);
    expect(existsSync(join(dir, 'agent.json'))).to.equal(false);
    expect(JSON.parse(readFileSync(join(dir, 'boot.json'), 'utf8'))).to.have.property('enrolmentSha256').that.matches(/^[0-9a-f]{64}$/);
    // The Event is recorded right after the status write, not with it.
    await eventually('the EnrolmentRefused Event', 10_000, async () => (await k8s.eventReasons(g)).includes('EnrolmentRefused') || undefined);
    expect(await k8s.eventReasons(g)).to.not.include('AgentEnrolled');
  });
});

describe('a status that names another Gitspace\'s VM', function () {
  this.timeout(90_000);
  let work: string;
  let op: Operator;
  let local: LocalProvider;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-steer-'));
    await k8s.apply(infraManifest('steer', join(work, 'instances')));
    local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider: local, realAgent: true, sweep: false });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('steer');
    } finally {
      await op.manager.stop();
      // The VMs the operator refused to touch (not its Gitspace's) are the test's to remove.
      const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [] });
      for (const vm of await local.listOwned({})) await local.delete(vm);
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('does not delete the VM it names: deleting the Gitspace leaves the other Gitspace\'s VM running', async () => {
    const key = makeSshKey();
    const repo = makeRepo(work);
    const victim = gitspaceManifest('victim', { infra: 'steer', repo, key });
    const mallory = gitspaceManifest('mallory', { infra: 'steer', repo, key });
    await k8s.apply(victim);
    await k8s.apply(mallory);
    const v = await k8s.waitPhase(victim, 'Running', 60_000);
    await k8s.waitPhase(mallory, 'Running', 60_000);
    const target = v.status?.instance?.name ?? '';
    // Someone with write access to gitspaces/status points mallory at the victim's VM, then deletes mallory.
    const patched = await testCluster().request('PATCH', '/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces/mallory/status', {
      body: { status: { instance: { name: target, provider: 'local' } } }, headers: { 'content-type': 'application/merge-patch+json' },
    });
    expect(patched.status).to.equal(200);
    await k8s.deleteAndWait(mallory, 60_000);
    const still = await local.find(target);
    expect(still?.state, 'the victim\'s VM').to.equal('running');
    expect((await k8s.waitPhase(victim, 'Running', 10_000)).status?.instance?.name).to.equal(target);
    const events = await testCluster().request('GET', '/apis/events.k8s.io/v1/namespaces/default/events');
    const reasons = ((events.json as { items: { reason?: string; regarding?: { name?: string } }[] }).items).filter((e) => e.regarding?.name === 'mallory').map((e) => e.reason);
    expect(reasons).to.include('InstanceNotOurs');
  });
});
