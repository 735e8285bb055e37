// The AWS provider: one EC2 instance per Gitspace through the official @aws-sdk/client-ec2.
//
// Idempotency: every create first looks the instance up by our tags in *every* non-terminated
// state (Cluster API AWS's lookup skipped stopped instances; ours are stopped on purpose), and
// RunInstances carries a ClientToken derived from the instance name and zone, so a retried call
// is the same request for EC2. Instances require IMDSv2; tags go on the instance and its volumes.
import { createHash } from 'node:crypto';
import {
  DescribeInstancesCommand, EC2Client, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, TerminateInstancesCommand,
  type EC2ClientConfig, type Instance as Ec2Instance, type _InstanceType, type Tag, type VolumeType,
} from '@aws-sdk/client-ec2';
import { startupScript } from '../startup.ts';
import { ProviderError, type CreateRequest, type Instance, type InstanceState, type VmProvider } from '../types.ts';
import { CapacityError, ec2Error } from './errors.ts';

export const INSTANCE_NAME_TAG = 'gitspaces.dev/instance-name';
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

export interface AwsProviderOptions {
  region: string;
  subnets: { zone: string; subnetId: string }[];
  securityGroupIds: string[];
  instanceProfile?: string;
  client?: EC2ClientConfig;
  agentPort: number;
}

function stateOf(s: string | undefined): InstanceState {
  switch (s) {
    case 'pending':
      return 'pending';
    case 'running':
      return 'running';
    case 'stopping':
    case 'shutting-down':
      return 'stopping';
    case 'stopped':
      return 'stopped';
    default:
      return 'terminated';
  }
}

/** EC2's idempotency token: at most 64 ASCII characters. */
export function clientToken(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 64);
}

export class AwsProvider implements VmProvider {
  readonly kind = 'aws' as const;
  private readonly o: AwsProviderOptions;
  private readonly ec2: EC2Client;

  constructor(o: AwsProviderOptions) {
    this.o = o;
    // One retry policy, ours (per-operation buckets, the controller's backoff): the SDK's own
    // retries would multiply calls behind the bucket's back.
    this.ec2 = new EC2Client({ region: o.region, maxAttempts: 1, ...o.client });
  }

  private toInstance(i: Ec2Instance): Instance {
    const tags = Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    return {
      id: i.InstanceId ?? '',
      name: tags[INSTANCE_NAME_TAG] ?? '',
      zone: i.Placement?.AvailabilityZone ?? '',
      state: stateOf(i.State?.Name),
      ...(i.PrivateIpAddress ? { privateIP: i.PrivateIpAddress } : {}),
      agentPort: this.o.agentPort,
      machineType: i.InstanceType ?? '',
      createdAt: i.LaunchTime ? new Date(i.LaunchTime).toISOString() : '',
      labels: tags,
    };
  }

  private async describe(tags: Record<string, string>): Promise<Instance[]> {
    const out: Instance[] = [];
    let NextToken: string | undefined;
    try {
      do {
        const r = await this.ec2.send(
          new DescribeInstancesCommand({
            Filters: [...Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })), { Name: 'instance-state-name', Values: LIVE_STATES }],
            ...(NextToken ? { NextToken } : {}),
          }),
        );
        for (const res of r.Reservations ?? []) for (const i of res.Instances ?? []) out.push(this.toInstance(i));
        NextToken = r.NextToken;
      } while (NextToken);
    } catch (e) {
      throw ec2Error(e, 'describe instances');
    }
    return out;
  }

  async find(name: string): Promise<Instance | undefined> {
    const found = await this.describe({ [INSTANCE_NAME_TAG]: name });
    // Oldest first: should two ever exist, every caller agrees on the same one.
    return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
  }

  async create(req: CreateRequest): Promise<Instance> {
    const existing = await this.find(req.name);
    if (existing) return existing;
    if (!req.image) throw new ProviderError('InvalidConfig', 'spec.image: an AMI id is required', { field: 'spec.image' });
    const preferred = this.o.subnets.find((s) => s.zone === req.zone) ?? this.o.subnets[0];
    const subnets = preferred ? [preferred, ...this.o.subnets.filter((s) => s !== preferred)] : [];
    const tags: Tag[] = [
      ...Object.entries(req.labels).map(([Key, Value]) => ({ Key, Value })),
      { Key: INSTANCE_NAME_TAG, Value: req.name },
      { Key: 'Name', Value: req.name },
    ];
    const profile = this.o.instanceProfile;
    let capacity: ProviderError | undefined;
    for (const s of subnets) {
      try {
        const r = await this.ec2.send(
          new RunInstancesCommand({
            ImageId: req.image,
            InstanceType: req.machineType.providerType as _InstanceType,
            MinCount: 1,
            MaxCount: 1,
            ClientToken: clientToken(req.name, s.zone),
            SubnetId: s.subnetId,
            SecurityGroupIds: this.o.securityGroupIds,
            ...(profile ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } } : {}),
            UserData: Buffer.from(startupScript(req.agent)).toString('base64'),
            MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
            BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: req.machineType.diskSizeGB ?? 50, ...(req.machineType.diskType ? { VolumeType: req.machineType.diskType as VolumeType } : {}), DeleteOnTermination: true } }],
            TagSpecifications: [
              { ResourceType: 'instance', Tags: tags },
              { ResourceType: 'volume', Tags: tags },
            ],
          }),
        );
        const i = r.Instances?.[0];
        if (!i) throw new ProviderError('Transient', `RunInstances for ${req.name} returned no instance`);
        return this.toInstance(i);
      } catch (e) {
        const err = ec2Error(e, `run instance ${req.name} in ${s.zone}`);
        if (err instanceof CapacityError) {
          capacity = err;
          continue;
        }
        throw err;
      }
    }
    throw new ProviderError('QuotaExceeded', `no capacity in zones ${subnets.map((s) => s.zone).join(', ')}: ${capacity?.message ?? ''}`);
  }

  private async act(inst: Instance, verb: 'start' | 'stop' | 'terminate'): Promise<void> {
    const InstanceIds = [inst.id];
    try {
      if (verb === 'start') await this.ec2.send(new StartInstancesCommand({ InstanceIds }));
      else if (verb === 'stop') await this.ec2.send(new StopInstancesCommand({ InstanceIds }));
      else await this.ec2.send(new TerminateInstancesCommand({ InstanceIds }));
    } catch (e) {
      const err = ec2Error(e, `${verb} instance ${inst.name} (${inst.id})`);
      if (verb === 'terminate' && err.code === 'NotFound') return;
      throw err;
    }
  }

  start(inst: Instance): Promise<void> {
    return this.act(inst, 'start');
  }

  stop(inst: Instance): Promise<void> {
    return this.act(inst, 'stop');
  }

  delete(inst: Instance): Promise<void> {
    return this.act(inst, 'terminate');
  }

  listOwned(labels: Record<string, string>): Promise<Instance[]> {
    return this.describe(labels);
  }

  close(): void {
    this.ec2.destroy();
  }
}
