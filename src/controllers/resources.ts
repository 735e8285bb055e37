// The resources controllers read and write, as runtime Resource descriptors.
import type { GitspaceInfra, ProviderKind } from '../api/index.ts';

export { GITSPACE_INFRAS, GITSPACES, NAMESPACES, SECRETS } from '../api/resources.ts';

export function providerKind(infra: GitspaceInfra): ProviderKind {
  const p = infra.spec.provider;
  return p.gcp ? 'gcp' : p.aws ? 'aws' : 'local';
}
