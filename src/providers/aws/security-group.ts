// The security group an AWS infra's instances get on top of its own: its only ingress is the agent
// ports from the gateway's and operator's addresses (ensure, from the infra controller), and a
// launch waits until it exists (forLaunch), since EC2 attaches groups at launch only.
import {
  AuthorizeSecurityGroupIngressCommand, CreateSecurityGroupCommand, DescribeSecurityGroupsCommand, RevokeSecurityGroupIngressCommand,
  type EC2Client, type IpPermission,
} from '@aws-sdk/client-ec2';
import { ProviderError, type NetworkRule, type NetworkState } from '../types.ts';
import { ec2Error } from './errors.ts';

export interface AgentSecurityGroupOptions {
  /** The managed group's name (none: instances get only `base`). */
  name?: string;
  /** The infra's own groups, attached to every instance. */
  base: string[];
  /** Tags that mark the managed group as ours. */
  tags?: Record<string, string>;
}

export class AgentSecurityGroup {
  private readonly ec2: EC2Client;
  private readonly o: AgentSecurityGroupOptions;
  private readonly vpcId: () => Promise<string>;
  /** The managed group's id, once known. */
  private id: string | undefined;

  constructor(ec2: EC2Client, o: AgentSecurityGroupOptions, vpcId: () => Promise<string>) {
    this.ec2 = ec2;
    this.o = o;
    this.vpcId = vpcId;
  }

  /**
   * The groups of a new instance: the infra's plus the managed one (looked up once if ensure has
   * not run here). An instance run before the infra controller made that group would never admit
   * the gateway: until it exists this throws Transient, and the create is retried, not run.
   */
  async forLaunch(): Promise<string[]> {
    const name = this.o.name;
    if (!name) return this.o.base;
    this.id ??= (await this.find(name, await this.vpcId()))?.GroupId;
    if (!this.id) throw new ProviderError('Transient', `security group ${name} does not exist yet (the infra controller creates it: condition NetworkReady); an instance without it would not admit the gateway`);
    return [...this.o.base, this.id];
  }

  private async find(name: string, vpc: string) {
    try {
      const r = await this.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: [name] }, { Name: 'vpc-id', Values: [vpc] }] }));
      return r.SecurityGroups?.[0];
    } catch (e) {
      throw ec2Error(e, `describe security group ${name}`);
    }
  }

  /** A security group in the subnets' VPC whose only ingress is the agent ports from rule.sourceRanges. */
  async ensure(rule: NetworkRule): Promise<NetworkState> {
    const vpc = await this.vpcId();
    let group = await this.find(rule.name, vpc);
    let action: NetworkState['action'] = 'none';
    try {
      if (!group) {
        const tags = Object.entries(this.o.tags ?? {}).map(([Key, Value]) => ({ Key, Value }));
        const r = await this.ec2.send(new CreateSecurityGroupCommand({
          GroupName: rule.name,
          VpcId: vpc,
          Description: 'Gitspaces: only the gateway and the operator may reach the VM agents',
          ...(tags.length ? { TagSpecifications: [{ ResourceType: 'security-group', Tags: tags }] } : {}),
        }));
        group = { GroupId: r.GroupId, IpPermissions: [] };
        action = 'created';
      }
      const id = group.GroupId ?? '';
      const want = new Set(rule.ports.flatMap((p) => rule.sourceRanges.map((c) => `${p}|${c}`)));
      // Single-port tcp rules from IPv4 ranges are compared pair by pair; anything else is revoked whole.
      const isOther = (p: IpPermission) => p.IpProtocol !== 'tcp' || p.FromPort !== p.ToPort || Boolean((p.UserIdGroupPairs ?? []).length) || Boolean((p.Ipv6Ranges ?? []).length);
      const other = (group.IpPermissions ?? []).filter(isOther);
      const have = new Set((group.IpPermissions ?? []).filter((p) => !isOther(p)).flatMap((p) => (p.IpRanges ?? []).map((r) => `${p.FromPort ?? ''}|${r.CidrIp ?? ''}`)));
      const perms = (pairs: string[]): IpPermission[] =>
        pairs.map((k) => {
          const [port = '0', cidr = ''] = k.split('|');
          return { IpProtocol: 'tcp', FromPort: Number(port), ToPort: Number(port), IpRanges: [{ CidrIp: cidr, Description: 'gitspaces gateway' }] };
        });
      const add = [...want].filter((k) => !have.has(k));
      const remove = [...have].filter((k) => !want.has(k));
      if (add.length) await this.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: id, IpPermissions: perms(add) }));
      if (remove.length || other.length) await this.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: id, IpPermissions: [...perms(remove), ...other] }));
      if (action === 'none' && (add.length || remove.length || other.length)) action = 'updated';
      if (rule.name === this.o.name) this.id = id;
      return { id, action };
    } catch (e) {
      throw ec2Error(e, `${action === 'created' ? 'create' : 'update'} security group ${rule.name}`);
    }
  }
}
