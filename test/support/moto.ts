// moto's standalone server (PyPI, installed once into the cache by scripts/install-moto.sh), on a
// free loopback port, as the EC2 peer for the AWS provider's tests. It runs through
// test/fakes/moto_spot.py, which adds spot interruptions (see interruptSpot) to moto.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { dirname, join } from 'node:path';
import { AGENT_HTTP_PORT } from '../../src/api/index.ts';
import { AwsProvider, type AwsProviderOptions } from '../../src/providers/aws/provider.ts';
import { freePort } from '../cluster/cluster.ts';
import { Ec2FaultProxy } from '../fakes/ec2-proxy.ts';
import { ROOT, type Manifest } from './resources.ts';
import { eventually } from './wait.ts';

export interface Moto {
  endpoint: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<Moto> {
  const r = spawnSync('bash', [join(ROOT, 'scripts/install-moto.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/install-moto.sh failed');
  const bin = r.stdout.trim().split('\n').pop() ?? '';
  const port = await freePort();
  // The venv's python, next to moto_server, runs moto with the spot extension.
  const child = spawn(join(dirname(bin), 'python'), [join(ROOT, 'test/fakes/moto_spot.py'), '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  // A test run that ends without its after-hooks (a failure, Ctrl-C) must not leave moto running.
  process.once('exit', () => child.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  await eventually('moto_server to answer', 30_000, async () => (await fetch(`${endpoint}/moto-api/`)).status === 200);
  return {
    endpoint,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface MotoNetwork {
  subnets: { zone: string; subnetId: string }[];
  securityGroupId: string;
  ami: string;
}

/**
 * A VPC with one subnet per zone, a security group and an AMI id in moto. Loopback CIDRs
 * (`127.<octet>.0.0/16`): an operator probing instance addresses must only dial this machine.
 */
export async function motoNetwork(ec2: EC2Client, octet: number, zones: string[], subnetPrefix = 24): Promise<MotoNetwork> {
  const vpcId = (await ec2.send(new CreateVpcCommand({ CidrBlock: `127.${octet}.0.0/16` }))).Vpc?.VpcId ?? '';
  const subnets = [];
  for (const [i, zone] of zones.entries()) {
    const s = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `127.${octet}.${(i + 1) * 2 ** (24 - subnetPrefix)}.0/${subnetPrefix}`, AvailabilityZone: zone }));
    subnets.push({ zone, subnetId: s.Subnet?.SubnetId ?? '' });
  }
  const securityGroupId = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: `gitspaces-vm-${octet}`, Description: 'agent port from the gateway only', VpcId: vpcId }))).GroupId ?? '';
  const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images ?? [];
  const ami = images.find((i) => /^ami-([0-9a-f]{8}|[0-9a-f]{17})$/.test(i.ImageId ?? ''))?.ImageId ?? '';
  return { subnets, securityGroupId, ami };
}

export const MOTO_REGION = 'eu-west-1';
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

// The AwsProvider and the GitspaceInfra that the AWS tests point at moto: the region, subnets,
// security group, client and gateway settings they all share live here, so each test says only
// what differs (machine types, pools, an instance profile, the managed security group…).

/**
 * An AwsProvider in MOTO_REGION on `network`'s subnets and security group, talking to moto (or the
 * fault proxy in front of it) at `endpoint` with MOTO_CREDENTIALS, agents on their HTTP port;
 * `extra` adds to or replaces these (instanceProfile, agentSecurityGroupName, tags…).
 */
export function motoProvider(network: MotoNetwork, endpoint: string, extra: Partial<Omit<AwsProviderOptions, 'client'>> = {}): AwsProvider {
  return new AwsProvider({
    region: MOTO_REGION, subnets: network.subnets, securityGroupIds: [network.securityGroupId], agentPort: AGENT_HTTP_PORT, ...extra,
    client: { endpoint, credentials: MOTO_CREDENTIALS },
  });
}

export interface MotoInfraOptions {
  /** More fields of spec.provider.aws (instanceProfile…). */
  aws?: Record<string, unknown>;
  /** Default: the network's AMI. */
  image?: string;
  /** Default: `small` only (t3.medium). */
  machineTypes?: Record<string, unknown>[];
  /** Any other spec field (pool, gateway, maxRunTime…), set as given. */
  [field: string]: unknown;
}

/**
 * A GitspaceInfra's spec in MOTO_REGION on `network` (its subnets, security group and AMI), open to
 * every namespace, with the gateway at gitspaces.example.org reaching agents on loopback (where
 * motoNetwork puts the instances); further fields of `o` are added or replace these.
 */
export function motoInfraSpec(network: MotoNetwork, { aws, image = network.ami, machineTypes, ...spec }: MotoInfraOptions = {}): Record<string, unknown> {
  return {
    provider: { aws: { region: MOTO_REGION, subnets: network.subnets, securityGroupIds: [network.securityGroupId], ...aws } },
    image,
    machineTypes: machineTypes ?? [{ name: 'small', providerType: 't3.medium' }],
    allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.org', egressRanges: ['127.0.0.0/8'] },
    ...spec,
  };
}

/** The GitspaceInfra `name` with motoInfraSpec(network, o). */
export function motoInfra(name: string, network: MotoNetwork, o: MotoInfraOptions = {}): Manifest {
  return { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name }, spec: motoInfraSpec(network, o) };
}

/** moto with the recording fault proxy in front (`endpoint`), a direct client, and a network. */
export interface MotoPeer {
  moto: Moto;
  proxy: Ec2FaultProxy;
  /** The proxy's address: what the provider under test talks to. */
  endpoint: string;
  /** A client straight to moto, for the test's own looks. */
  ec2: EC2Client;
  network: MotoNetwork;
  stop(): Promise<void>;
}

export async function motoPeer(octet: number, zones: string[], subnetPrefix = 24): Promise<MotoPeer> {
  const moto = await startMoto();
  const proxy = new Ec2FaultProxy(moto.endpoint);
  const endpoint = await proxy.start();
  const ec2 = new EC2Client({ region: MOTO_REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  const network = await motoNetwork(ec2, octet, zones, subnetPrefix);
  return {
    moto, proxy, endpoint, ec2, network,
    stop: async () => {
      proxy.faults = {};
      ec2.destroy();
      await proxy.stop();
      await moto.stop();
    },
  };
}


/** What moto_spot.py answers: the instance's state and StateReason code after the call, or why not. */
async function spotHook(endpoint: string, path: string, instanceId: string): Promise<{ state?: string; code?: string }> {
  const r = await fetch(`${endpoint}/_gitspaces/ec2/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instanceId }) });
  const body = (await r.json()) as { state?: string; code?: string; error?: string };
  if (!r.ok) throw new Error(`moto spot ${path}: ${body.error ?? String(r.status)}`);
  return body;
}

/** EC2 interrupts a spot instance: stopped (Server.SpotInstanceShutdown) or, for terminate behaviour, terminated. */
export function interruptSpot(endpoint: string, instanceId: string): Promise<{ state?: string; code?: string }> {
  return spotHook(endpoint, 'interrupt', instanceId);
}

/** Spot capacity returns: EC2 restarts the interrupted instance itself (the only way it restarts). */
export function spotCapacityReturns(endpoint: string, instanceId: string): Promise<{ state?: string; code?: string }> {
  return spotHook(endpoint, 'capacity', instanceId);
}

/** The InstanceMarketOptions.* parameters the RunInstances of this instance carried. */
export async function spotMarketOptions(endpoint: string, instanceId: string): Promise<Record<string, string>> {
  return (await (await fetch(`${endpoint}/_gitspaces/ec2/market?instanceId=${encodeURIComponent(instanceId)}`)).json()) as Record<string, string>;
}
