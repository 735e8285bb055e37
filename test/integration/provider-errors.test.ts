// Provider failures become conditions a user can act on, and retries behave per kind: quota waits
// and tries again, invalid config fails naming the field, throttling and transient errors retry.
// The operator runs in-process with a provider double that fails on demand.
import { expect } from 'chai';
import type { Operator } from '../../src/controllers/operator.ts';
import { ProviderError } from '../../src/providers/types.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { testCluster } from '../cluster/current.ts';
import { makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { InMemoryProvider, startInProcessOperator } from '../support/provider-double.ts';

describe('provider errors', function () {
  this.timeout(60_000);
  const provider = new InMemoryProvider();
  let op: Operator;
  let client: KubeClient;
  const key = makeSshKey();

  before(async () => {
    await k8s.apply(infraManifest('flaky', ''));
    client = new KubeClient(testCluster().access());
    op = await startInProcessOperator({ provider, client });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('flaky');
    } finally {
      await op.manager.stop();
    }
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
    // The agent reports fresh activity on every probe: that must not become a write loop.
    await new Promise((r) => setTimeout(r, 1_500)); // let the infra's coalesced count update land
    const before = client.calls.get('PATCH/status') ?? 0;
    await k8s.patch(m, { metadata: { annotations: { poke: 'x' } } });
    await new Promise((r) => setTimeout(r, 2_000));
    // (a minute boundary or a late infra count may add one or two; the loop this guards against made hundreds)
    expect((client.calls.get('PATCH/status') ?? 0) - before, 'status writes in 2 s of steady Running').to.be.at.most(3);
    await k8s.deleteAndWait(m);
  });
});
