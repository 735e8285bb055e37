// Classifies Compute Engine failures into the provider error kinds the controller acts on.
import { ProviderError } from '../types.ts';

interface GceLikeError {
  code?: number;
  httpStatusCode?: number;
  message?: string;
  reason?: string;
  details?: string;
}

const CAPACITY = ['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS', 'RESOURCE_POOL_EXHAUSTED', 'STOCKOUT'];

/** A capacity error: worth trying the next zone. */
export class CapacityError extends ProviderError {}

/** From an operation's `error.errors[]`. */
export function operationError(errors: { code?: string | null; message?: string | null }[]): ProviderError {
  const first = errors[0] ?? {};
  const code = first.code ?? '';
  const message = first.message ?? code;
  if (CAPACITY.includes(code)) return new CapacityError('QuotaExceeded', message);
  if (code.includes('QUOTA')) return new ProviderError('QuotaExceeded', message);
  if (code === 'RESOURCE_NOT_FOUND' || code === 'INVALID_FIELD_VALUE') return new ProviderError('InvalidConfig', message);
  return new ProviderError('Transient', message);
}

/** From a failed API call (google-gax GoogleError over the REST transport). */
export function callError(e: unknown, what: string): ProviderError {
  if (e instanceof ProviderError) return e;
  const g = (e ?? {}) as GceLikeError;
  const status = g.httpStatusCode ?? 0;
  const text = g.message ?? String(e);
  const msg = `${what}: ${text}`;
  if (status === 429 || (status === 403 && /rate ?limit/i.test(text + (g.reason ?? '')))) return new ProviderError('Throttled', msg, { cause: e });
  if (status === 401 || (status === 403 && /permission|denied|forbidden|credential/i.test(text))) return new ProviderError('Unauthenticated', `spec.provider.gcp.credentialsSecretRef: ${msg}`, { field: 'spec.provider.gcp.credentialsSecretRef', cause: e });
  if (status === 404) return new ProviderError('NotFound', msg, { cause: e });
  if (status === 400) return new ProviderError('InvalidConfig', msg, { cause: e });
  return new ProviderError('Transient', msg, { cause: e });
}
