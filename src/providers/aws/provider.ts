// The AWS provider: one EC2 instance per Gitspace through the official @aws-sdk/client-ec2.
//
// Idempotency: every create first looks the instance up by our tags in *every* non-terminated
// state (Cluster API AWS's lookup skipped stopped instances; ours are stopped on purpose), and
// RunInstances carries a ClientToken derived from the instance name and zone, so a retried call
// is the same request for EC2. Instances require IMDSv2; tags go on the instance and its volumes.
import { createHash } from 'node:crypto';
import {
  CreateTagsCommand, DeleteTagsCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeSubnetsCommand, DescribeVolumesCommand, EC2Client,
  GetConsoleOutputCommand, ModifyInstanceAttributeCommand, ModifyVolumeCommand, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand,
  TerminateInstancesCommand, type EC2ClientConfig, type Instance as Ec2Instance, type _InstanceType, type Tag, type VolumeType,
} from '@aws-sdk/client-ec2';
import { startupScript } from '../startup.ts';
import { CONSOLE_TAIL, ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type InstanceState, type NetworkRule, type NetworkState, type ResizeRequest, type VmProvider } from '../types.ts';
import { CapacityError, ec2Error } from './errors.ts';
import { AgentSecurityGroup } from './security-group.ts';

export const INSTANCE_NAME_TAG = 'gitspaces.dev/instance-name';
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

export interface AwsProviderOptions {
  region: string;
  subnets: { zone: string; subnetId: string }[];
  securityGroupIds: string[];
  instanceProfile?: string;
  client?: EC2ClientConfig;
  agentPort: number;
  /** The security group ensureNetwork manages (admits the agent ports from the gateway only); attached to every instance. */
  agentSecurityGroupName?: string;
  /** Tags that mark the managed security group as ours. */
  tags?: Record<string, string>;
}

/** EC2's StateReason code of a spot instance it stopped on interruption (stop behaviour). */
export const SPOT_STOP_CODE = 'Server.SpotInstanceShutdown';

/** The time in a StateTransitionReason such as "… (2026-11-30 10:42:07 GMT)", if there is one. */
export function transitionTime(reason: string | undefined): string | undefined {
  const m = /\((\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)/.exec(reason ?? '');
  const t = m ? Date.parse(`${m[1] ?? ''}T${m[2] ?? ''}Z`) : NaN;
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
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
  /** EC2 cannot change an instance between spot and on-demand. */
  readonly spotChangeable = false;
  private readonly o: AwsProviderOptions;
  private readonly ec2: EC2Client;
  /** Root EBS volume ids by instance id, from our last look (resize grows that volume). */
  private readonly rootVolumes = new Map<string, string>();
  /**
   * Volume sizes once seen: only our ModifyVolume changes them, so a list asks DescribeVolumes only
   * for volumes it has not seen (a size changed behind our back shows after an operator restart).
   */
  private readonly volumeSize = new Map<string, number>();
  /** Root device names by AMI (an AMI's never changes). */
  private readonly rootDevices = new Map<string, Promise<string>>();
  private readonly groups: AgentSecurityGroup;

  constructor(o: AwsProviderOptions) {
    this.o = o;
    // One retry policy, ours (per-operation buckets, the controller's backoff): the SDK's own
    // retries would multiply calls behind the bucket's back.
    this.ec2 = new EC2Client({ region: o.region, maxAttempts: 1, ...o.client });
    this.groups = new AgentSecurityGroup(this.ec2, { base: o.securityGroupIds, ...(o.agentSecurityGroupName ? { name: o.agentSecurityGroupName } : {}), ...(o.tags ? { tags: o.tags } : {}) }, () => this.vpcId());
  }

  /** The root device's EBS volume: the mapping named by RootDeviceName, else the only EBS mapping. */
  private static rootVolume(i: Ec2Instance): string | undefined {
    const ebs = (i.BlockDeviceMappings ?? []).filter((b) => b.Ebs?.VolumeId);
    return (ebs.find((b) => b.DeviceName === i.RootDeviceName) ?? (ebs.length === 1 ? ebs[0] : undefined))?.Ebs?.VolumeId;
  }

  /**
   * The AMI's root device name, which the disk size and type must be mapped onto: Amazon Linux
   * says /dev/xvda, Ubuntu and Debian /dev/sda1. A mapping under another name would add a second,
   * empty volume and leave the root disk at the AMI's own size.
   */
  private rootDevice(image: string): Promise<string> {
    // The promise is cached, so a burst of first creates asks once; a failure is not kept.
    let known = this.rootDevices.get(image);
    if (!known) {
      known = this.describeRoot(image);
      known.catch(() => this.rootDevices.delete(image));
      this.rootDevices.set(image, known);
    }
    return known;
  }

  private async describeRoot(image: string): Promise<string> {
    let found;
    try {
      found = (await this.ec2.send(new DescribeImagesCommand({ ImageIds: [image] }))).Images?.[0];
    } catch (e) {
      throw ec2Error(e, `describe image ${image}`);
    }
    if (!found?.RootDeviceName) throw new ProviderError('InvalidConfig', `spec.image: AMI ${image} is not available in ${this.o.region}${found ? ' (it names no root device)' : ''}`, { field: 'spec.image' });
    return found.RootDeviceName;
  }

  private toInstance(i: Ec2Instance, diskSizeGB?: number): Instance {
    const tags = Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    // Interrupted: EC2 stopped it (StateReason), not we; StartInstances is refused until EC2 restarts it.
    const preempted = i.State?.Name === 'stopped' && i.StateReason?.Code === SPOT_STOP_CODE;
    const preemptedAt = preempted ? transitionTime(i.StateTransitionReason) : undefined;
    return {
      id: i.InstanceId ?? '',
      name: tags[INSTANCE_NAME_TAG] ?? '',
      zone: i.Placement?.AvailabilityZone ?? '',
      state: stateOf(i.State?.Name),
      ...(i.PrivateIpAddress ? { privateIP: i.PrivateIpAddress } : {}),
      agentPort: this.o.agentPort,
      machineType: i.InstanceType ?? '',
      ...(diskSizeGB !== undefined ? { diskSizeGB } : {}),
      createdAt: i.LaunchTime ? new Date(i.LaunchTime).toISOString() : '',
      labels: tags,
      ...(preempted ? { stopReason: 'preempted' as const, ...(preemptedAt ? { preemptedAt } : {}) } : {}),
      spot: i.InstanceLifecycle === 'spot',
    };
  }

  private async describe(tags: Record<string, string>): Promise<Instance[]> {
    const found: Ec2Instance[] = [];
    let NextToken: string | undefined;
    try {
      do {
        const r = await this.ec2.send(
          new DescribeInstancesCommand({
            Filters: [...Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })), { Name: 'instance-state-name', Values: LIVE_STATES }],
            ...(NextToken ? { NextToken } : {}),
          }),
        );
        for (const res of r.Reservations ?? []) for (const i of res.Instances ?? []) found.push(i);
        NextToken = r.NextToken;
      } while (NextToken);
    } catch (e) {
      throw ec2Error(e, 'describe instances');
    }
    const sizes = await this.volumeSizes(found);
    return found.map((i) => this.toInstance(i, sizes.get(this.rootVolumes.get(i.InstanceId ?? '') ?? '')));
  }

  /**
   * Root volume sizes (DescribeInstances does not say them): one DescribeVolumes per 200 volumes
   * not seen before. A filter, not VolumeIds: a volume deleted meanwhile is absent, not an error.
   */
  private async volumeSizes(instances: Ec2Instance[]): Promise<Map<string, number>> {
    const unseen: string[] = [];
    for (const i of instances) {
      const v = AwsProvider.rootVolume(i);
      if (!v || !i.InstanceId) continue;
      this.rootVolumes.set(i.InstanceId, v);
      if (!this.volumeSize.has(v)) unseen.push(v);
    }
    try {
      for (let k = 0; k < unseen.length; k += 200) {
        const r = await this.ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: unseen.slice(k, k + 200) }] }));
        for (const v of r.Volumes ?? []) if (v.VolumeId && v.Size !== undefined) this.volumeSize.set(v.VolumeId, v.Size);
      }
    } catch (e) {
      throw ec2Error(e, 'describe volumes');
    }
    return this.volumeSize;
  }

  async find(name: string): Promise<Instance | undefined> {
    const found = await this.describe({ [INSTANCE_NAME_TAG]: name });
    // Oldest first: should two ever exist, every caller agrees on the same one.
    return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
  }

  async create(req: CreateRequest): Promise<Instance> {
    // ClientToken makes a retried RunInstances the same request; the lookup covers clouds (and
    // moto) that do not honour it, unless the caller has just seen that nothing exists.
    const existing = req.observedAbsent ? undefined : await this.find(req.name);
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
    // Once, not per zone tried: the groups do not depend on the subnet.
    const groups = await this.groups.forLaunch().catch((e: unknown) => { throw ec2Error(e, `run instance ${req.name}`); });
    const root = await this.rootDevice(req.image);
    for (const s of subnets) {
      try {
        const r = await this.ec2.send(
          new RunInstancesCommand({
            ImageId: req.image,
            InstanceType: req.machineType.providerType as _InstanceType,
            MinCount: 1,
            MaxCount: 1,
            ClientToken: clientToken(req.name, s.zone, ...(req.requestKey ? [req.requestKey] : [])),
            SubnetId: s.subnetId,
            SecurityGroupIds: groups,
            ...(profile ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } } : {}),
            UserData: Buffer.from(startupScript(req.agent)).toString('base64'),
            MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
            // Spot that stops (disk kept) on interruption: EC2 allows stop only for persistent requests.
            ...(req.machineType.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'persistent', InstanceInterruptionBehavior: 'stop' } } } : {}),
            BlockDeviceMappings: [{ DeviceName: root, Ebs: { VolumeSize: req.machineType.diskSizeGB ?? 50, ...(req.machineType.diskType ? { VolumeType: req.machineType.diskType as VolumeType } : {}), DeleteOnTermination: true } }],
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

  /** TerminateInstances returns at once; the instance is shutting-down for a while. */
  async delete(inst: Instance): Promise<DeleteOutcome> {
    await this.act(inst, 'terminate');
    const volume = this.rootVolumes.get(inst.id);
    if (volume) this.volumeSize.delete(volume);
    this.rootVolumes.delete(inst.id);
    return 'going';
  }

  listOwned(labels: Record<string, string>): Promise<Instance[]> {
    return this.describe(labels);
  }

  /**
   * ModifyInstanceAttribute (instance type), then ModifyVolume (size) of the root volume, each
   * only when it changes something. EC2 itself refuses a type change unless the instance is
   * stopped (IncorrectInstanceState) and a smaller volume; it also allows one volume modification
   * per six hours.
   */
  async resize(inst: Instance, req: ResizeRequest): Promise<void> {
    if (req.providerType !== undefined && req.providerType !== inst.machineType) {
      try {
        await this.ec2.send(new ModifyInstanceAttributeCommand({ InstanceId: inst.id, InstanceType: { Value: req.providerType } }));
      } catch (e) {
        throw ec2Error(e, `change the instance type of ${inst.name} (${inst.id}) to ${req.providerType}`);
      }
    }
    if (req.diskSizeGB !== undefined && req.diskSizeGB !== inst.diskSizeGB) {
      if (!this.rootVolumes.has(inst.id)) await this.find(inst.name);
      const volume = this.rootVolumes.get(inst.id);
      if (!volume) throw new ProviderError('Transient', `resize the root volume of ${inst.name} (${inst.id}): the instance has no root EBS volume to grow`);
      try {
        await this.ec2.send(new ModifyVolumeCommand({ VolumeId: volume, Size: req.diskSizeGB }));
        this.volumeSize.set(volume, req.diskSizeGB);
      } catch (e) {
        throw ec2Error(e, `resize volume ${volume} of ${inst.name} (${inst.id}) to ${String(req.diskSizeGB)} GB`);
      }
    }
  }

  /** CreateTags for the new set, DeleteTags for ours that are no longer in it. */
  async relabel(inst: Instance, labels: Record<string, string>): Promise<void> {
    const stale = Object.keys(inst.labels).filter((k) => k.startsWith('gitspaces.dev/') && k !== INSTANCE_NAME_TAG && !(k in labels));
    try {
      await this.ec2.send(new CreateTagsCommand({ Resources: [inst.id], Tags: Object.entries(labels).map(([Key, Value]) => ({ Key, Value })) }));
      if (stale.length) await this.ec2.send(new DeleteTagsCommand({ Resources: [inst.id], Tags: stale.map((Key) => ({ Key })) }));
    } catch (e) {
      throw ec2Error(e, `tag instance ${inst.name} (${inst.id})`);
    }
  }

  private vpcs: Promise<string> | undefined;

  /** The VPC of the configured subnets (all in one VPC); DescribeSubnets also proves the credentials. */
  private vpcId(): Promise<string> {
    this.vpcs ??= (async () => {
      const ids = this.o.subnets.map((s) => s.subnetId);
      try {
        const r = await this.ec2.send(new DescribeSubnetsCommand({ SubnetIds: ids }));
        const vpcs = [...new Set((r.Subnets ?? []).map((x) => x.VpcId ?? ''))];
        if (vpcs.length !== 1 || !vpcs[0]) throw new ProviderError('InvalidConfig', `spec.provider.aws.subnets: the subnets must all be in one VPC (found ${vpcs.join(', ') || 'none'})`, { field: 'spec.provider.aws.subnets' });
        return vpcs[0];
      } catch (e) {
        const err = ec2Error(e, 'describe subnets');
        if (/InvalidSubnetID/.test(err.message)) throw new ProviderError('InvalidConfig', `spec.provider.aws.subnets: ${err.message}`, { field: 'spec.provider.aws.subnets', cause: e });
        throw err;
      }
    })();
    this.vpcs.catch(() => (this.vpcs = undefined));
    return this.vpcs;
  }

  /** The latest console output (base64 in the API), where cloud-init prints the startup script's lines. */
  async consoleOutput(inst: Instance): Promise<string> {
    try {
      const r = await this.ec2.send(new GetConsoleOutputCommand({ InstanceId: inst.id, Latest: true }));
      return Buffer.from(r.Output ?? '', 'base64').toString('utf8').slice(-CONSOLE_TAIL);
    } catch (e) {
      throw ec2Error(e, `read the console output of ${inst.name} (${inst.id})`);
    }
  }

  /** DescribeSubnets of the configured subnets, every time: proves the credentials and that the subnets exist. */
  async verify(): Promise<void> {
    this.vpcs = undefined;
    await this.vpcId();
  }

  /** A security group in the subnets' VPC whose only ingress is the agent ports from rule.sourceRanges. */
  ensureNetwork(rule: NetworkRule): Promise<NetworkState> {
    return this.groups.ensure(rule);
  }

  close(): void {
    this.ec2.destroy();
  }
}
