// The API of the operator: constants, types and CRDs. Imports nothing else of ours.
export * from './constants.ts';
export type { Condition } from './common.ts';
export { parseDuration } from './common.ts';
export type { ObjectMeta, OwnerReference } from './meta.ts';
export type { Gitspace, GitspaceSpec, GitspaceStatus } from './gitspace.ts';
export type { GitspaceInfra, GitspaceInfraSpec, GitspaceInfraStatus, MachineType, ProviderKind } from './infra.ts';
export { allCRDs, gitspaceCRD, gitspaceInfraCRD, type CustomResourceDefinition } from './crds.ts';
export * from './agent.ts';
export * from './resources.ts';
export * from './hop.ts';
export * from './bundle.ts';
