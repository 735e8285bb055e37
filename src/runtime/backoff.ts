// Exponential backoff with jitter, and a token bucket. Used by the work queue, the informer's
// reconnects and (later) the cloud API throttles.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** ± fraction of randomness added to each delay (0.2 = ±20 %). */
  jitter?: number;
  random?: () => number;
}

/** Delays base·2ⁿ, capped at max, with jitter; the jittered value never exceeds max either. */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 40));
  const j = o.jitter ?? 0.2;
  const r = (o.random ?? Math.random)();
  return Math.max(0, Math.min(o.maxMs, Math.round(exp * (1 - j + 2 * j * r))));
}

export class Backoff {
  private attempt = 0;
  private readonly o: BackoffOptions;

  constructor(o: BackoffOptions) {
    this.o = o;
  }
  next(): number {
    return backoffDelay(this.attempt++, this.o);
  }
  reset(): void {
    this.attempt = 0;
  }
}

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;

  constructor(rate: number, burst: number, now: () => number = Date.now,
  ) {
    this.rate = rate;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  /** Takes a token and returns how long to wait before using it (0 when one was available). */
  reserve(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }

  /** Tokens there are now (negative while reservations wait). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Empties the bucket (after the server said we are throttled). */
  drain(): void {
    this.refill();
    this.tokens = Math.min(this.tokens, 0);
  }
}
