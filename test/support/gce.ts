// The GcpProvider and the GitspaceInfra that the integration tests point at the GCE fake
// (test/fakes/gce/server.ts): the network, subnetwork, client and gateway settings they all share
// live here, so each test says only what differs (zones, machine types, pools, a network tag…).
import { PassThroughClient } from 'google-auth-library';
import { AGENT_HTTP_PORT } from '../../src/api/index.ts';
import { GcpProvider, type GcpProviderOptions } from '../../src/providers/gcp/provider.ts';
import { join } from 'node:path';
import { GceFake, type GceFakeOptions } from '../fakes/gce/server.ts';
import { ROOT, type Manifest } from './resources.ts';

const subnetworks = () => [{ region: 'europe-west1', name: 'gitspaces-ew1' }];

/** The image family the tests register in the fake: `projects/<project>/global/images/family/gitspaces`. */
export const gceImage = (project: string): string => `projects/${project}/global/images/family/gitspaces`;

export interface GceProviderOptions extends Partial<Omit<GcpProviderOptions, 'project' | 'zones' | 'client'>> {
  project: string;
  zones: string[];
  /** The fake's port (GceFake.start()). */
  port: number;
}

/**
 * A GcpProvider that talks plain HTTP to the fake on 127.0.0.1:`port` without credentials; network
 * `gitspaces`, subnetwork europe-west1/gitspaces-ew1 and the agent's port unless `o` says otherwise.
 */
export function gceProvider({ port, ...o }: GceProviderOptions): GcpProvider {
  return new GcpProvider({
    network: 'gitspaces', subnetworks: subnetworks(), agentPort: AGENT_HTTP_PORT, ...o,
    client: { apiEndpoint: '127.0.0.1', port, protocol: 'http', fallback: true, authClient: new PassThroughClient() },
  });
}

export interface GceInfraOptions {
  project: string;
  zones: string[];
  /** Default: gceImage(project). */
  image?: string;
  /** Default: `small` only (e2-standard-2, 20 GB). */
  machineTypes?: Record<string, unknown>[];
  /** Any other spec field (pool, gateway, maxRunTime…), set as given. */
  [field: string]: unknown;
}

/**
 * A GitspaceInfra's spec on the fake's project and zones (network `gitspaces`, the subnetwork
 * gceProvider uses), open to every namespace, with the gateway at gitspaces.example.com reaching
 * agents on loopback (where the fake's VMs are); further fields of `o` are added or replace these.
 */
export function gceInfraSpec({ project, zones, image = gceImage(project), machineTypes, ...spec }: GceInfraOptions): Record<string, unknown> {
  return {
    provider: { gcp: { project, network: 'gitspaces', subnetworks: subnetworks(), zones } },
    image,
    machineTypes: machineTypes ?? [{ name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 }],
    allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.com', egressRanges: ['127.0.0.0/8'] },
    ...spec,
  };
}

/** The GitspaceInfra `name` with gceInfraSpec(o). */
export function gceInfra(name: string, o: GceInfraOptions): Manifest {
  return { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name }, spec: gceInfraSpec(o) };
}

export interface StartGceFakeOptions extends Omit<GceFakeOptions, 'startupScripts'> {
  /** Boot each instance's startup script as a local process running our real agent, under this directory. */
  agentsIn?: string;
}

/**
 * A started GceFake for `project` with the image family gceImage(project) registered; with
 * `agentsIn`, its instances run the real agent (this repository's CLI).
 */
export async function startGceFake({ agentsIn, ...o }: StartGceFakeOptions): Promise<{ fake: GceFake; port: number }> {
  const fake = new GceFake({ ...o, ...(agentsIn ? { startupScripts: { rootDir: agentsIn, agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] } } : {}) });
  fake.images.add(gceImage(o.project));
  return { fake, port: await fake.start() };
}
