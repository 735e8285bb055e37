// Classifies EC2 API failures into the provider error kinds the controller acts on.
import { ProviderError } from '../types.ts';

/** No capacity for this instance type in this zone: worth trying the next one. */
export class CapacityError extends ProviderError {}

export function ec2Error(e: unknown, what: string): ProviderError {
  if (e instanceof ProviderError) return e;
  const err = (e ?? {}) as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const code = err.Code ?? err.name ?? '';
  const msg = `${what}: ${code ? `${code}: ` : ''}${err.message ?? String(e)}`;
  const status = err.$metadata?.httpStatusCode ?? 0;
  if (code === 'RequestLimitExceeded' || code === 'Throttling' || code === 'ThrottlingException' || status === 429) return new ProviderError('Throttled', msg, { cause: e });
  // No capacity, or no free address left in this zone's subnet: worth trying the next zone.
  if (code === 'InsufficientInstanceCapacity' || code === 'InsufficientCapacity' || code === 'Unsupported' || code === 'InsufficientFreeAddressesInSubnet') return new CapacityError('QuotaExceeded', msg, { cause: e });
  // StartInstances of an interrupted spot instance: only EC2 restarts it, once spot capacity returns.
  if (code === 'IncorrectSpotRequestState') return new ProviderError('QuotaExceeded', `${msg} (EC2 restarts an interrupted spot instance itself once spot capacity returns)`, { cause: e });
  if (/LimitExceeded$/.test(code) || code === 'VcpuLimitExceeded') return new ProviderError('QuotaExceeded', msg, { cause: e });
  if (code.startsWith('InvalidAMIID')) return new ProviderError('InvalidConfig', `spec.image: ${err.message ?? code}`, { field: 'spec.image', cause: e });
  if (code === 'AuthFailure' || code === 'UnauthorizedOperation' || code === 'InvalidClientTokenId' || code === 'SignatureDoesNotMatch') {
    return new ProviderError('Unauthenticated', `spec.provider.aws.credentialsSecretRef: ${msg}`, { field: 'spec.provider.aws.credentialsSecretRef', cause: e });
  }
  if (code === 'NoSuchEntity' || /instance profile/i.test(err.message ?? '')) {
    return new ProviderError('InvalidConfig', `spec.provider.aws.instanceProfile: ${err.message ?? code}`, { field: 'spec.provider.aws.instanceProfile', cause: e });
  }
  if (code.endsWith('.NotFound')) return new ProviderError('NotFound', msg, { cause: e });
  if (code.startsWith('Invalid') || code === 'MissingParameter') return new ProviderError('InvalidConfig', msg, { cause: e });
  return new ProviderError('Transient', msg, { cause: e });
}
