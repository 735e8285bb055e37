// The CustomResourceDefinitions, built from the schemas in this folder (the one source of truth).
import { CATEGORY, GITSPACE, GITSPACE_INFRA, GROUP, VERSION } from './constants.ts';
import { gitspaceNameSchema, gitspaceSpecSchema, gitspaceStatusSchema } from './gitspace.ts';
import { infraNameSchema, infraSpecSchema, infraStatusSchema } from './infra.ts';
import type { JSONSchemaProps } from './schema.ts';

interface Names {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  scope: 'Namespaced' | 'Cluster';
}

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'boolean';
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      selectableFields?: { jsonPath: string }[];
      schema: { openAPIV3Schema: JSONSchemaProps };
    }[];
  };
}

function crd(
  names: Names,
  description: string,
  spec: JSONSchemaProps,
  status: JSONSchemaProps,
  columns: PrinterColumn[],
  extra: { name?: JSONSchemaProps; selectableFields?: string[] } = {},
): CustomResourceDefinition {
  const openAPIV3Schema: JSONSchemaProps = {
    type: 'object',
    description,
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: extra.name ? { type: 'object', properties: { name: extra.name } } : { type: 'object' },
      spec,
      status,
    },
    required: ['spec'],
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'gitspaces' },
      // Argo CD applies lower waves first: the kinds exist before anything (a GitspaceInfra from the
      // chart's values, a Gitspace) that uses them.
      annotations: { 'argocd.argoproj.io/sync-wave': '-1' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
        categories: [CATEGORY],
      },
      scope: names.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...columns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation.' },
          ],
          ...(extra.selectableFields ? { selectableFields: extra.selectableFields.map((jsonPath) => ({ jsonPath })) } : {}),
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

export const gitspaceCRD = crd(
  GITSPACE,
  'A Gitspace is one cloud development environment: a VM with the repository cloned, the devcontainer built and an IDE running, reached through the gateway.',
  gitspaceSpecSchema.json,
  gitspaceStatusSchema.json,
  [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase.' },
    { name: 'Owner', type: 'string', jsonPath: '.spec.owner', description: 'Subject allowed through the gateway.' },
    { name: 'Machine', type: 'string', jsonPath: '.spec.machineType', description: 'Machine type.' },
    { name: 'Stops', type: 'string', jsonPath: '.status.stopsAt', description: 'When the operator stops it if nothing changes (idle deadline or run-time limit).' },
    { name: 'URL', type: 'string', jsonPath: '.status.urls.ide', description: 'What the user opens.' },
    { name: 'Infra', type: 'string', jsonPath: '.spec.infraRef.name', description: 'GitspaceInfra.', priority: 1 },
    { name: 'Zone', type: 'string', jsonPath: '.status.instance.zone', description: 'Zone of the VM.', priority: 1 },
  ],
  { name: gitspaceNameSchema.json, selectableFields: ['.spec.owner', '.spec.infraRef.name', '.spec.state'] },
);

export const gitspaceInfraCRD = crd(
  GITSPACE_INFRA,
  'A GitspaceInfra says where Gitspace VMs run: the cloud account, network, machine types, image, gateway and warm pools.',
  infraSpecSchema.json,
  infraStatusSchema.json,
  [
    { name: 'Provider', type: 'string', jsonPath: '.status.provider', description: 'gcp, aws or local.' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Ready condition.' },
    { name: 'Domain', type: 'string', jsonPath: '.spec.gateway.domain', description: 'Gateway base domain.' },
  ],
  { name: infraNameSchema.json },
);

export const allCRDs = [gitspaceInfraCRD, gitspaceCRD] as const;
