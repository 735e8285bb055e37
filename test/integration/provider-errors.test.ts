// Provider failures become conditions a user can act on, and retries behave per kind: quota waits
// and tries again, invalid config fails naming the field, throttling and transient errors retry.
// The operator runs in-process with a provider double that fails on demand.
import { expect } from 'chai';
import type { AgentHealth, GitspaceInfra } from '../../src/api/index.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import { ProviderError, type CreateRequest, type Instance, type VmProvider } from '../../src/providers/types.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';

/** Fails `create` with the queued errors, then succeeds with an instantly running instance. */
class FlakyProvider implements VmProvider {
  readonly kind = 'local' as const;
  readonly failures: ProviderError[] = [];
  readonly calls: string[] = [];
  private readonly vms = new Map<string, Instance>();
  find(name: string): Promise<Instance | undefined> {
    return Promise.resolve(this.vms.get(name));
  }
  create(req: CreateRequest): Promise<Instance> {
    this.calls.push(`create ${req.name}`);
    const f = this.failures.shift();
    if (f) return Promise.reject(f);
    const inst: Instance = { id: req.name, name: req.name, zone: 'z', state: 'running', privateIP: '10.1.2.3', agentPort: 47100, machineType: 'm', createdAt: new Date().toISOString(), labels: req.labels };
    this.vms.set(req.name, inst);
    return Promise.resolve(inst);
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  delete(inst: Instance): Promise<void> {
    this.vms.delete(inst.name);
    return Promise.resolve();
  }
  listOwned(): Promise<Instance[]> {
    return Promise.resolve([...this.vms.values()]);
  }
}

const ready: AgentHealth = {
  state: 'ready', restart: false, steps: [], ide: { type: 'ssh', ready: true }, checkout: '/home/gitspace/repo',
  forwardPorts: [], devcontainer: { found: false, notApplied: [], containerBuild: 'skipped' }, lastActivityTime: new Date().toISOString(),
};

describe('provider errors', function () {
  this.timeout(60_000);
  const provider = new FlakyProvider();
  let op: Operator;
  const key = makeSshKey();

  before(async () => {
    await k8s.apply(infraManifest('flaky', ''));
    op = createOperator({
      client: new KubeClient(testCluster().access()),
      log: createLogger({ component: 'operator' }, 'error'),
      providerFor: (_: GitspaceInfra) => provider,
      probe: () => Promise.resolve({ ok: true, health: { ...ready, lastActivityTime: new Date().toISOString() } }),
    });
    await op.manager.start();
  });

  after(async () => {
    await k8s.deleteAndWait(infraManifest('flaky', ''));
    await op.manager.stop();
  });

  it('fails with the field to fix on InvalidConfig, and retries only after the spec changes', async () => {
    provider.failures.push(new ProviderError('InvalidConfig', 'spec.image: image "projects/x/global/images/nope" was not found', { field: 'spec.image' }));
    const m = gitspaceManifest('bad-image', { infra: 'flaky', repo: '/nowhere', key });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 20_000);
    expect(failed.status?.message).to.equal('spec.image: image "projects/x/global/images/nope" was not found');
    expect(failed.status?.conditions?.find((c) => c.type === 'Ready')).to.include({ status: 'False', reason: 'InvalidConfig' });
    const creates = provider.calls.length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(provider.calls.length, 'no retry without a change').to.equal(creates);
    expect(await k8s.eventReasons(failed)).to.include('InvalidConfig');
    // A spec change (a new generation) is what makes it try again.
    await k8s.patch(m, { spec: { idleTimeout: '2h' } });
    await k8s.waitPhase(m, 'Running', 20_000);
    await k8s.deleteAndWait(m);
  });

  it('shows QuotaExceeded as a condition and keeps the Gitspace waiting', async () => {
    provider.failures.push(new ProviderError('QuotaExceeded', "Quota 'CPUS' exceeded in region europe-west1"));
    const m = gitspaceManifest('no-quota', { infra: 'flaky', repo: '/nowhere', key });
    await k8s.apply(m);
    const waiting = await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.reason === 'QuotaExceeded'), 20_000);
    expect(waiting.status?.message).to.equal("Quota 'CPUS' exceeded in region europe-west1");
    expect(waiting.status?.phase).to.not.equal('Failed');
    await k8s.deleteAndWait(m);
  });

  it('retries Throttled and Transient errors until the create succeeds', async () => {
    provider.failures.push(
      new ProviderError('Throttled', 'rate limit exceeded', { retryAfterMs: 200 }),
      new ProviderError('Transient', 'backend error 503'),
      new ProviderError('Transient', 'backend error 503'),
    );
    const m = gitspaceManifest('retried', { infra: 'flaky', repo: '/nowhere', key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 20_000);
    const name = running.status?.instance?.name ?? '';
    expect(provider.calls.filter((c) => c === `create ${name}`)).to.have.length(4);
    await k8s.deleteAndWait(m);
  });
});
