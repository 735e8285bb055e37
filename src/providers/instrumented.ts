// Wraps any provider with what every cloud needs in one place: a token bucket per operation class
// (Cluster API AWS's figures: describe 20/s burst 100, run/start 2/s burst 5, others 5/s burst
// 200), emptied when the cloud says we are throttled, and a counter of provider operations by
// provider, operation and outcome. (One operation may be several API calls, e.g. a create waits
// on its zone operation; raw API calls are counted by the benchmark at the cloud peer.)
import type { Counter } from 'prom-client';
import { TokenBucket } from '../runtime/backoff.ts';
import { ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type NetworkRule, type NetworkState, type ResizeRequest, type VmProvider } from './types.ts';

type Operation = 'find' | 'create' | 'start' | 'stop' | 'delete' | 'resize' | 'listOwned' | 'relabel' | 'verify' | 'ensureNetwork' | 'consoleOutput';
type BucketClass = 'describe' | 'run' | 'other';

const CLASS: Record<Operation, BucketClass> = {
  find: 'describe', listOwned: 'describe', verify: 'describe', create: 'run', start: 'run', stop: 'other', delete: 'other', resize: 'other', relabel: 'other', ensureNetwork: 'other', consoleOutput: 'describe',
};
export const DEFAULT_RATES: Record<BucketClass, { perSecond: number; burst: number }> = {
  describe: { perSecond: 20, burst: 100 },
  run: { perSecond: 2, burst: 5 },
  other: { perSecond: 5, burst: 200 },
};

export type ProviderOperationCounter = Counter<'provider' | 'operation' | 'outcome'>;

export function outcomeOf(e: unknown): string {
  if (!(e instanceof ProviderError)) return 'error';
  return { NotFound: 'not_found', QuotaExceeded: 'quota', Throttled: 'throttled', InvalidConfig: 'invalid', Unauthenticated: 'unauthenticated', Transient: 'error' }[e.code];
}

export class InstrumentedProvider implements VmProvider {
  readonly kind: VmProvider['kind'];
  readonly spotChangeable: boolean | undefined;
  private readonly inner: VmProvider;
  /** None for the local provider: its instances are processes on this host, no cloud API to spare. */
  private readonly buckets: Record<BucketClass, TokenBucket> | undefined;
  private readonly calls: ProviderOperationCounter | undefined;

  constructor(inner: VmProvider, o: { calls?: ProviderOperationCounter; rates?: Partial<typeof DEFAULT_RATES> } = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.spotChangeable = inner.spotChangeable;
    this.calls = o.calls;
    const r = { ...DEFAULT_RATES, ...o.rates };
    this.buckets =
      inner.kind === 'local'
        ? undefined
        : {
            describe: new TokenBucket(r.describe.perSecond, r.describe.burst),
            run: new TokenBucket(r.run.perSecond, r.run.burst),
            other: new TokenBucket(r.other.perSecond, r.other.burst),
          };
  }

  private async call<T>(op: Operation, fn: () => Promise<T>): Promise<T> {
    const bucket = this.buckets?.[CLASS[op]];
    const wait = bucket?.reserve() ?? 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    try {
      const v = await fn();
      this.calls?.inc({ provider: this.kind, operation: op, outcome: 'success' });
      return v;
    } catch (e) {
      const outcome = outcomeOf(e);
      this.calls?.inc({ provider: this.kind, operation: op, outcome });
      if (outcome === 'throttled') bucket?.drain();
      throw e;
    }
  }

  find(name: string, zone?: string): Promise<Instance | undefined> {
    return this.call('find', () => this.inner.find(name, zone));
  }

  create(req: CreateRequest): Promise<Instance> {
    return this.call('create', () => this.inner.create(req));
  }

  start(inst: Instance): Promise<void> {
    return this.call('start', () => this.inner.start(inst));
  }

  stop(inst: Instance): Promise<void> {
    return this.call('stop', () => this.inner.stop(inst));
  }

  delete(inst: Instance): Promise<DeleteOutcome> {
    return this.call('delete', () => this.inner.delete(inst));
  }

  resize(inst: Instance, req: ResizeRequest): Promise<void> {
    return this.call('resize', () => this.inner.resize(inst, req));
  }

  listOwned(labels: Record<string, string>): Promise<Instance[]> {
    return this.call('listOwned', () => this.inner.listOwned(labels));
  }

  relabel(inst: Instance, labels: Record<string, string>): Promise<void> {
    return this.call('relabel', () => this.inner.relabel(inst, labels));
  }

  verify(): Promise<void> {
    return this.call('verify', () => this.inner.verify());
  }

  /** Only where the inner provider has one (the runner checks before calling). */
  get consoleOutput(): ((inst: Instance) => Promise<string>) | undefined {
    const read = this.inner.consoleOutput?.bind(this.inner);
    return read ? (inst: Instance) => this.call('consoleOutput', () => read(inst)) : undefined;
  }

  ensureNetwork(rule: NetworkRule): Promise<NetworkState> {
    return this.call('ensureNetwork', () => this.inner.ensureNetwork(rule));
  }
}
