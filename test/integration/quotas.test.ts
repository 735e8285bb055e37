// Infra quotas against the real API server: 50 Gitspaces created at once in a namespace whose
// quota is 10 get exactly 10 VMs, the rest wait with QuotaExceeded naming the quota and the
// usage, and one starts as soon as another stops; a vCPU quota per owner counts machine types.
// The in-memory provider and agent double keep it about the controller, not VM boot.
import { expect } from 'chai';
import type { Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { testCluster } from '../cluster/current.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { InMemoryProvider, startInProcessOperator } from '../support/provider-double.ts';
import { eventually } from '../support/wait.ts';

const NS = 'quota-a';

describe('infra quotas', function () {
  this.timeout(180_000);
  let provider: InMemoryProvider;
  let op: Operator;
  const key = makeSshKey();
  const list = async () => ((await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`)).json as { items: Gitspace[] }).items;
  const creates = () => provider.calls.filter((c) => c.startsWith('create ')).length;

  before(async () => {
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
    const infra = infraManifest('quota', '/nonexistent');
    Object.assign(infra.spec as Record<string, unknown>, {
      machineTypes: [{ name: 'small', providerType: 'local', vcpus: 2 }, { name: 'large', providerType: 'local', vcpus: 8 }],
      quotas: { perNamespace: { maxRunning: 10 }, perOwner: { maxVCPUs: 10 } },
    });
    await k8s.apply(infra);
    provider = new InMemoryProvider();
    op = await startInProcessOperator({ provider });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('quota');
    } finally {
      await op.manager.stop();
    }
  });

  it('admits exactly the quota of 50 concurrent creates; the rest wait and start as capacity frees', async () => {
    const ms = Array.from({ length: 50 }, (_, i) => {
      const m = gitspaceManifest(`q${String(i)}`, { infra: 'quota', repo: '/r', key, namespace: NS });
      // Owners spread out so the per-owner vCPU quota (10 = five small ones each) is not what binds.
      Object.assign(m.spec as Record<string, unknown>, { owner: `user${String(i % 25)}@example.com` });
      return m;
    });
    await Promise.all(ms.map((m) => k8s.apply(m)));
    await eventually('10 running, 40 waiting', 60_000, async () => {
      const items = await list();
      const running = items.filter((g) => g.status?.phase === 'Running').length;
      const waiting = items.filter((g) => g.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'QuotaExceeded')).length;
      return (running === 10 && waiting === 40) || undefined;
    });
    // Stays so: never a VM beyond the quota.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(creates(), 'VMs created').to.equal(10);
    const waiter = (await list()).find((g) => g.status?.phase === 'Pending');
    expect(waiter?.status?.message).to.match(/^quota: namespace "quota-a" may run 10 Gitspace\(s\) at once on infra "quota" and 10 run \(/);

    // One stops: exactly one waiting Gitspace takes its place.
    const running = (await list()).filter((g) => g.status?.phase === 'Running');
    await k8s.patch({ ...ms[0]!, metadata: { name: running[0]?.metadata.name ?? '', namespace: NS } }, { spec: { state: 'Stopped' } });
    await eventually('a waiting Gitspace to start', 30_000, () => creates() === 11 || undefined);
    await new Promise((r) => setTimeout(r, 3_000));
    const after = await list();
    expect(after.filter((g) => ['Running', 'Provisioning', 'Starting'].includes(g.status?.phase ?? '')).length).to.equal(10);
    expect(creates()).to.equal(11);
    await Promise.all(after.map((g) => k8s.deleteAndWait({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: g.metadata.name ?? '', namespace: NS } })));
  });

  it('counts vCPUs per owner across namespaces', async () => {
    const large = gitspaceManifest('big1', { infra: 'quota', repo: '/r', key, namespace: NS, machineType: 'large' });
    const second = gitspaceManifest('big2', { infra: 'quota', repo: '/r', key, namespace: 'default', machineType: 'large' });
    await k8s.apply(large);
    await k8s.waitPhase(large, 'Running', 30_000);
    await k8s.apply(second);
    const waits = await k8s.waitFor(second, (g) => g.status?.conditions?.some((c) => c.reason === 'QuotaExceeded'), 30_000);
    expect(waits.status?.message).to.equal('quota: owner "dev@example.com" may use 10 vCPUs at once on infra "quota"; 8 are in use (big1) and this Gitspace needs 8; waiting for capacity');
    await k8s.deleteAndWait(large);
    await k8s.waitPhase(second, 'Running', 30_000);
    await k8s.deleteAndWait(second);
  });

  it('refuses a maxVCPUs quota on an infra whose machine types do not say their vCPUs', async () => {
    const bad = infraManifest('quota-bad', '/x');
    Object.assign(bad.spec as Record<string, unknown>, { quotas: { perOwner: { maxVCPUs: 4 } } });
    const r = await testCluster().request('POST', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras', { body: bad });
    expect(r.status).to.equal(422);
    expect(JSON.stringify(r.json)).to.include('a maxVCPUs quota needs vcpus on every machine type');
  });
});
