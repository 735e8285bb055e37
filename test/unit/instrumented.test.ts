// The provider wrapper: cloud providers are paced by per-class token buckets (drained when the
// cloud throttles us); the local provider is not; every operation is counted by outcome.
import { expect } from 'chai';
import { Counter, Registry } from 'prom-client';
import { InstrumentedProvider } from '../../src/providers/instrumented.ts';
import { ProviderError, type VmProvider } from '../../src/providers/types.ts';
import { InMemoryProvider, testCreateRequest } from '../support/provider-double.ts';

function asKind(p: InMemoryProvider, kind: VmProvider['kind']): VmProvider {
  return Object.assign(Object.create(Object.getPrototypeOf(p) as object) as VmProvider, p, { kind });
}

describe('InstrumentedProvider', () => {
  const counter = () => new Counter({ name: 'ops', help: 'h', labelNames: ['provider', 'operation', 'outcome'], registers: [new Registry()] });

  it('lets a burst of 5 creates through at once, then paces them at 2/s, for a cloud provider', async () => {
    const p = new InstrumentedProvider(asKind(new InMemoryProvider(), 'gcp'));
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) await p.create(testCreateRequest(`gs-${i}`));
    expect(Date.now() - t0).to.be.below(100);
    await p.create(testCreateRequest('gs-5'));
    expect(Date.now() - t0).to.be.within(400, 800);
  });

  it('does not pace the local provider (no cloud API behind it)', async () => {
    const p = new InstrumentedProvider(new InMemoryProvider());
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) await p.create(testCreateRequest(`gs-${i}`));
    expect(Date.now() - t0).to.be.below(100);
  });

  it('counts outcomes and empties the bucket when throttled', async () => {
    const inner = new InMemoryProvider();
    const c = counter();
    const p = new InstrumentedProvider(asKind(inner, 'aws'), { calls: c });
    inner.failures.push(new ProviderError('Throttled', 'slow down'));
    const err = await p.create(testCreateRequest('gs-t')).then(() => undefined, (e: unknown) => e as ProviderError);
    expect(err?.code).to.equal('Throttled');
    const t0 = Date.now();
    await p.create(testCreateRequest('gs-t')); // the bucket was drained: this one waits
    expect(Date.now() - t0).to.be.at.least(300);
    const values = (await c.get()).values.map((v) => `${String(v.labels.operation)}/${String(v.labels.outcome)}=${v.value}`);
    expect(values).to.have.members(['create/throttled=1', 'create/success=1']);
  });
});
