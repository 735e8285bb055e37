// GCE instances that boot like VMs, for tests and benches: the agent bundle (scripts/bundle-agent.ts),
// the stock and baked Debian 12 images built from it (scripts/vm-images.sh), and the GCE fake
// booting its instances as containers (test/fakes/vm-host.ts) on a Docker network of the caller's,
// behind the real GCE client (GcpProvider).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { BundleManifest } from '../../src/api/index.ts';
import type { GcpProvider } from '../../src/providers/gcp/provider.ts';
import { ensureAgentBundle } from '../../scripts/bundle-agent.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { ContainerVms } from '../fakes/vm-host.ts';
import { CACHE, type Docker } from './docker.ts';
import { gceProvider } from './gce.ts';
import { ROOT } from './resources.ts';

export const STOCK_TAG = 'gitspaces-test/debian-12:stock';
export const BAKED_TAG = 'gitspaces-test/debian-12:baked';
/** Baked as images/bake.sh does by default: with Docker (dev containers run in it), no code-server. */
export const DOCKER_BAKED_TAG = 'gitspaces-test/debian-12:baked-docker';
/** The code-server scripts/fetch-code-server.sh puts in the cache, which the baked image carries. */
export const CODE_SERVER_DIR = join(CACHE, 'code-server-4.139.1');

/** A Docker bridge network for instances: `<prefix>.0.0/16`; `host` (its gateway address) is this machine. */
export interface VmNetwork {
  name: string;
  prefix: string;
  host: string;
}

/** Runs a bash script; resolves to the last line of its stdout (its stderr goes to ours). */
export function script(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim().split('\n').pop() ?? '');
      else reject(new Error(`${args.join(' ')} exited ${String(code)}`));
    });
  });
}

/** `scripts/vm-images.sh ARGS…` against `docker`; resolves to the image tag it prints. */
export function vmImagesScript(docker: Docker, args: string[]): Promise<string> {
  return script([join(ROOT, 'scripts/vm-images.sh'), ...args], { DOCKER_HOST: docker.host });
}

/**
 * The agent bundle and the two images: stock (built once from Debian packages, cached) and baked
 * with that bundle and code-server, without Docker (images/bake.sh, as Packer runs it). Every
 * caller bakes with the same arguments, so one cached image serves them all.
 */
export async function vmImages(docker: Docker): Promise<{ bundle: { dir: string; manifest: BundleManifest }; stock: string; baked: string }> {
  const [bundle] = await Promise.all([ensureAgentBundle(), vmImagesScript(docker, ['stock'])]);
  const file = bundle.manifest.files.x64?.file ?? '';
  await vmImagesScript(docker, ['baked', '--bundle', join(bundle.dir, file), '--code-server', CODE_SERVER_DIR, '--no-docker']);
  return { bundle, stock: STOCK_TAG, baked: BAKED_TAG };
}

/** The image baked with Docker from the agent bundle `bundleFile` (cached as the others are). */
export async function dockerBakedImage(docker: Docker, bundleFile: string): Promise<string> {
  await vmImagesScript(docker, ['baked', '--bundle', bundleFile, '--tag', DOCKER_BAKED_TAG]);
  return DOCKER_BAKED_TAG;
}

/** Instances on the test's dockerd with the networks made, and a killed run's `<prefix>-…` instances gone. */
export async function instanceVms(docker: Docker, prefix: string, nets: VmNetwork[]): Promise<ContainerVms> {
  const vms = new ContainerVms(docker);
  await vms.removeAll(`${prefix}-`);
  for (const n of nets) await docker.network(n.name, `${n.prefix}.0.0/16`, n.host);
  return vms;
}

const regionOf = (zone: string) => zone.replace(/-[a-z]$/, '');

/** A GitspaceInfra's spec.provider for the fake's project and zone. */
export function gcpProviderSpec(project: string, zone: string): { gcp: Record<string, unknown> } {
  return { gcp: { project, network: 'gitspaces', subnetworks: [{ region: regionOf(zone), name: 'sub' }], zones: [zone] } };
}

export interface GceOnContainersOptions {
  project: string;
  zone: string;
  vms: ContainerVms;
  net: VmNetwork;
  /** GCE image paths (projects/<project>/global/images/<name>) → Docker tags. */
  images: Record<string, string>;
  /** Container names: `<namePrefix>-<instance name>`. */
  namePrefix: string;
  bootMs?: number;
  stopMs?: number;
}

/**
 * The GCE fake (started) whose instances are containers on `net` (their addresses are the
 * network's), with the images registered, and a GcpProvider that talks to it.
 */
export async function gceOnContainers(o: GceOnContainersOptions): Promise<{ gce: GceFake; gcp: GcpProvider }> {
  const gce = new GceFake({
    project: o.project, bootMs: o.bootMs ?? 500, stopMs: o.stopMs ?? 500,
    containers: { vms: o.vms, network: o.net.name, addressPrefix: o.net.prefix, images: o.images, namePrefix: o.namePrefix },
  });
  for (const i of Object.keys(o.images)) gce.images.add(i);
  const port = await gce.start();
  const gcp = gceProvider({ project: o.project, zones: [o.zone], port, subnetworks: [{ region: regionOf(o.zone), name: 'sub' }] });
  return { gce, gcp };
}
