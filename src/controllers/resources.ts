// The resources controllers read and write, as runtime Resource descriptors.
import { GITSPACE, GITSPACE_INFRA, GROUP, VERSION, type GitspaceInfra, type ProviderKind } from '../api/index.ts';
import type { Resource } from '../runtime/kube.ts';

export const GITSPACES: Resource = { group: GROUP, version: VERSION, plural: GITSPACE.plural, namespaced: true };
export const GITSPACE_INFRAS: Resource = { group: GROUP, version: VERSION, plural: GITSPACE_INFRA.plural, namespaced: false };
export const SECRETS: Resource = { group: '', version: 'v1', plural: 'secrets', namespaced: true };

export function providerKind(infra: GitspaceInfra): ProviderKind {
  const p = infra.spec.provider;
  return p.gcp ? 'gcp' : p.aws ? 'aws' : 'local';
}
