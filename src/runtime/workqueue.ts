// A work queue with client-go's guarantees: a key waiting in the queue is there once however often
// it is added; a key is never handed to two workers at once (an add while it is being processed is
// kept and delivered after `done`); failed keys come back after a per-key exponential backoff
// (jittered, capped) that also waits for an overall token bucket; `addAfter` schedules timed work.
import { backoffDelay, TokenBucket, type BackoffOptions } from './backoff.ts';
import type { RuntimeMetrics } from './metrics.ts';

export interface WorkQueueOptions {
  name: string;
  backoff?: BackoffOptions;
  /** Overall limit on rate-limited re-adds: tokens per second and burst (client-go: 10/100). */
  rate?: { perSecond: number; burst: number };
  metrics?: RuntimeMetrics;
  now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly bucket: TokenBucket;
  private readonly backoff: BackoffOptions;
  private shuttingDown = false;
  private readonly drainWaiters: (() => void)[] = [];
  private readonly labels: { name: string; controller: string };

  private readonly o: WorkQueueOptions;

  constructor(o: WorkQueueOptions) {
    this.o = o;
    this.backoff = o.backoff ?? { baseMs: 5, maxMs: 1000 * 1000, jitter: 0.2 };
    const rate = o.rate ?? { perSecond: 10, burst: 100 };
    this.bucket = new TokenBucket(rate.perSecond, rate.burst, o.now);
    this.labels = { name: o.name, controller: o.name };
    o.metrics?.queueDepth.set(this.labels, 0);
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  /** Keys queued, being processed, or waiting for a timer. */
  pending(): number {
    return this.length + this.processing.size + this.timers.size;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    this.o.metrics?.queueAdds.inc(this.labels);
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  private push(key: string): void {
    this.addedAt.set(key, (this.o.now ?? Date.now)());
    const w = this.waiters.shift();
    if (w) {
      this.take(key);
      w(key);
      return;
    }
    this.queue.push(key);
    this.o.metrics?.queueDepth.set(this.labels, this.length);
  }

  private take(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
    const t = this.addedAt.get(key);
    if (t !== undefined) {
      this.o.metrics?.queueDuration.observe(this.labels, ((this.o.now ?? Date.now)() - t) / 1000);
      this.addedAt.delete(key);
    }
  }

  /** Adds the key after `ms`. An earlier pending schedule for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = (this.o.now ?? Date.now)() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
      this.checkDrained();
    }, ms);
    this.timers.set(key, { at, timer });
  }

  /**
   * Re-adds a failed key after its backoff and, unless `overall` is false, the overall bucket.
   * Returns the delay.
   */
  addRateLimited(key: string, overall = true): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.o.metrics?.queueRetries.inc(this.labels);
    const delay = Math.max(backoffDelay(n, this.backoff), overall ? this.bucket.reserve() : 0);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key, or undefined once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    if (this.length > 0) {
      const key = this.queue[this.head++] ?? '';
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.take(key);
      this.o.metrics?.queueDepth.set(this.labels, this.length);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key finished; if it was added meanwhile it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
    else this.dirty.delete(key);
    this.checkDrained();
  }

  /** Stops accepting work; waiting `get`s return undefined. In-flight keys may still call done. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
    // Queued but not started work is dropped: the next leader relists and re-queues everything.
    this.queue.length = 0;
    this.head = 0;
    this.dirty.clear();
    this.checkDrained();
  }

  /** Resolves once nothing is being processed (after shutdown: the drain). */
  drained(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  private checkDrained(): void {
    if (this.processing.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}
