// Faults the GCE fake injects on demand, answered as GCE answers them, so the provider's retry and
// error handling meet the real shapes: throttling (403 rateLimitExceeded or 429), 503s, revoked
// credentials. Capacity and quota faults are not here: GCE reports those in the insert's operation.

export interface GceFaults {
  /** Share of requests answered 403 rateLimitExceeded (half) or 429 (half). */
  throttleRate?: number;
  /** Share of requests answered 503 backendError. */
  errorRate?: number;
  latencyMs?: number;
  /** Zones whose inserts fail with ZONE_RESOURCE_POOL_EXHAUSTED. */
  exhaustedZones?: Set<string>;
  /** Inserts fail with QUOTA_EXCEEDED. */
  quotaExceeded?: boolean;
  /** Every request is answered 401 UNAUTHENTICATED (revoked or wrong credentials). */
  unauthenticated?: boolean;
  /** The next N requests are answered 403 rateLimitExceeded (a fault that surely happens). */
  throttleNext?: number;
}

/** The error a request gets instead of its answer, as [status, reason, message], or undefined; counts down throttleNext. */
export function injectedFault(f: GceFaults): [number, string, string] | undefined {
  if (f.unauthenticated) return [401, 'authError', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'];
  if (f.throttleNext) {
    f.throttleNext--;
    return [403, 'rateLimitExceeded', 'Rate Limit Exceeded'];
  }
  const roll = Math.random();
  const throttle = f.throttleRate ?? 0;
  if (roll < throttle) return roll < throttle / 2 ? [403, 'rateLimitExceeded', 'Rate Limit Exceeded'] : [429, 'rateLimitExceeded', 'Too Many Requests'];
  if (roll < throttle + (f.errorRate ?? 0)) return [503, 'backendError', 'Backend Error'];
  return undefined;
}
