// A controller: informer events become keys in a work queue; workers reconcile keys one at a time
// per key. A reconcile returns {requeueAfter} for timed work, or throws to be retried with backoff.
import type { Informer } from './informer.ts';
import { keyOf } from './informer.ts';
import { isConflict, type KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import type { RuntimeMetrics } from './metrics.ts';
import { WorkQueue, type WorkQueueOptions } from './workqueue.ts';

export interface Result {
  /** Reconcile this key again after this many milliseconds. */
  requeueAfter?: number;
}

export interface Reconciler {
  reconcile(key: string): Promise<Result | undefined>;
}

/** Thrown by a reconcile to be retried after a given delay rather than the backoff. */
export class RetryAfter extends Error {
  readonly delayMs: number;

  constructor(delayMs: number, message = `retry after ${delayMs} ms`) {
    super(message);
    this.delayMs = delayMs;
  }
}

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  workers?: number;
  metrics: RuntimeMetrics;
  log: Logger;
  queue?: Omit<WorkQueueOptions, 'name' | 'metrics'>;
}

export class Controller {
  readonly queue: WorkQueue;
  private readonly workers: Promise<void>[] = [];
  private started = false;
  readonly name: string;
  /** Reconciles finished, by result (for tests and benchmarks). */
  readonly counts = { success: 0, error: 0, requeue: 0 };

  private readonly o: ControllerOptions;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.name = o.name;
    this.queue = new WorkQueue({ name: o.name, metrics: o.metrics, ...o.queue });
  }

  /**
   * Enqueue the object's own key on every event (or the keys `map` returns). With `delayMs`, bursts
   * of events coalesce into one reconcile per key per delay.
   */
  watch<T extends KubeObject>(informer: Informer<T>, map: (obj: T) => string[] = (o) => [keyOf(o)], delayMs = 0): void {
    const enqueue = (o: T) => {
      for (const k of map(o)) this.queue.addAfter(k, delayMs);
    };
    informer.on({ add: enqueue, update: (_, n) => { enqueue(n); }, delete: enqueue });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const n = this.o.workers ?? 4;
    this.o.metrics.maxConcurrent.set({ controller: this.name }, n);
    for (let i = 0; i < n; i++) this.workers.push(this.work());
  }

  private async work(): Promise<void> {
    const { metrics, log } = this.o;
    const labels = { controller: this.name };
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      metrics.activeWorkers.inc(labels);
      const end = metrics.reconcileTime.startTimer(labels);
      try {
        const r = await this.o.reconciler.reconcile(key);
        this.queue.forget(key);
        if (r?.requeueAfter !== undefined) {
          this.queue.addAfter(key, r.requeueAfter);
          metrics.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
          this.counts.requeue++;
        } else {
          metrics.reconcileTotal.inc({ ...labels, result: 'success' });
          this.counts.success++;
        }
      } catch (e) {
        this.counts.error++;
        metrics.reconcileTotal.inc({ ...labels, result: 'error' });
        metrics.reconcileErrors.inc(labels);
        if (e instanceof RetryAfter) {
          this.queue.addAfter(key, e.delayMs);
          log.debug('reconcile deferred', { key, delayMs: e.delayMs, reason: e.message });
        } else {
          // A conflict only means our cached copy was stale: retry soon and quietly, without
          // spending the overall retry budget meant for failing calls.
          const conflict = isConflict(e);
          const delay = this.queue.addRateLimited(key, !conflict);
          if (conflict) log.debug('reconcile conflicted; retrying', { key, retryInMs: delay });
          else log.warn('reconcile failed', { key, error: e, retryInMs: delay });
        }
      } finally {
        end();
        metrics.activeWorkers.dec(labels);
        this.queue.done(key);
      }
    }
  }

  /** Stops taking work and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.queue.shutdown();
    await this.queue.drained();
    await Promise.all(this.workers);
  }
}
