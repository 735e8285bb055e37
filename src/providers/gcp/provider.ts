// The GCP provider: one Compute Engine instance per Gitspace, through the official
// @google-cloud/compute client (REST transport).
//
// Idempotency: the instance name is deterministic (the runner derives it from the Gitspace UID),
// every create looks the name up in every configured zone first, a second insert of the same name
// is a 409 that we treat as "found", and each mutating call carries a requestId derived from the
// instance, zone and verb, so a retried call within GCE's retry window is the same operation.
import { DisksClient, FirewallsClient, GlobalOperationsClient, InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
import { startupScript } from '../startup.ts';
import { CONSOLE_TAIL, ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type NetworkRule, type NetworkState, type ResizeRequest, type VmProvider } from '../types.ts';
import { callError, CapacityError } from './errors.ts';
import { ensureFirewall } from './firewall.ts';
import { bootDiskName, last, toInstance, type GceInstance } from './instance.ts';
import { gceLabelFilter, gceLabels } from './labels.ts';
import { GceOperations, operationOf, requestId, type GceOperation } from './operations.ts';
import { GcePreemptions, SPOT_SCHEDULING, STANDARD_SCHEDULING } from './preemption.ts';

export interface GcpProviderOptions {
  project: string;
  zones: string[];
  network: string;
  subnetworks: { region: string; name: string }[];
  serviceAccount?: string;
  /** Network tag the gateway-only firewall rule targets. */
  networkTag?: string;
  /** Client options: credentials, or an endpoint (tests point this at a fake). */
  client?: ConstructorParameters<typeof InstancesClient>[0];
  agentPort: number;
  /** How long to wait for one operation before giving up (it keeps running in GCE). */
  operationTimeoutMs?: number;
}

export class GcpProvider implements VmProvider {
  readonly kind = 'gcp' as const;
  readonly spotChangeable = true;
  private readonly o: GcpProviderOptions;
  private readonly instances: InstancesClient;
  private readonly zoneOperations: ZoneOperationsClient;
  private readonly globalOperations: GlobalOperationsClient;
  private readonly ops: GceOperations;
  private readonly firewalls: FirewallsClient;
  private readonly disks: DisksClient;
  private readonly preemptions: GcePreemptions;
  /** Boot disk names by zone/instance, from our last look (resize needs the disk's own name). */
  private readonly bootDisks = new Map<string, string>();

  constructor(o: GcpProviderOptions) {
    this.o = o;
    this.instances = new InstancesClient({ fallback: true, ...o.client });
    this.zoneOperations = new ZoneOperationsClient({ fallback: true, ...o.client });
    this.globalOperations = new GlobalOperationsClient({ fallback: true, ...o.client });
    this.ops = new GceOperations(this.zoneOperations, this.globalOperations, o.project, o.operationTimeoutMs);
    this.firewalls = new FirewallsClient({ fallback: true, ...o.client });
    this.disks = new DisksClient({ fallback: true, ...o.client });
    this.preemptions = new GcePreemptions(this.zoneOperations, o.project);
  }

  private get networkTag(): string {
    return this.o.networkTag ?? 'gitspaces-vm';
  }

  private get networkLink(): string {
    return this.o.network.includes('/') ? this.o.network : `global/networks/${this.o.network}`;
  }

  /** Our view of an instance; remembers its boot disk's name for a later resize. */
  private toInstance(g: GceInstance): Promise<Instance> {
    const disk = bootDiskName(g);
    if (disk) this.bootDisks.set(`${last(g.zone)}/${g.name ?? ''}`, disk);
    return this.preemptions.annotate(g, toInstance(g, this.o.agentPort));
  }

  async find(name: string, zone?: string): Promise<Instance | undefined> {
    const zones = zone ? [zone, ...this.o.zones.filter((z) => z !== zone)] : this.o.zones;
    for (const z of zones) {
      try {
        const [g] = await this.instances.get({ project: this.o.project, zone: z, instance: name });
        return await this.toInstance(g as GceInstance);
      } catch (e) {
        const err = callError(e, `get instance ${name}`);
        if (err.code !== 'NotFound') throw err;
      }
    }
    return undefined;
  }

  async create(req: CreateRequest): Promise<Instance> {
    // Without a fresh observation, look in every zone first: an earlier attempt may have fallen over
    // to another zone, where an insert in the preferred zone would not collide with it.
    const existing = req.observedAbsent ? undefined : await this.find(req.name, req.zone);
    if (existing) return existing;
    if (!req.image) throw new ProviderError('InvalidConfig', 'spec.image: a GCE image is required', { field: 'spec.image' });
    const preferred = req.zone && this.o.zones.includes(req.zone) ? req.zone : this.o.zones[0];
    const zones = [preferred ?? '', ...this.o.zones.filter((z) => z !== preferred)];
    let lastCapacity: ProviderError | undefined;
    for (const zone of zones) {
      try {
        await this.insert(req, zone);
        const inst = await this.find(req.name, zone);
        if (inst) return inst;
        throw new ProviderError('Transient', `instance ${req.name} not visible after its insert finished`);
      } catch (e) {
        if (e instanceof CapacityError) {
          lastCapacity = e;
          continue; // the next zone
        }
        throw e;
      }
    }
    throw new ProviderError('QuotaExceeded', `no capacity in zones ${zones.join(', ')}: ${lastCapacity?.message ?? ''}`);
  }

  private async insert(req: CreateRequest, zone: string): Promise<void> {
    const region = zone.replace(/-[a-z]$/, '');
    const sub = this.o.subnetworks.find((s) => s.region === region);
    const mt = req.machineType;
    const network = this.networkLink;
    const instanceResource = {
      name: req.name,
      machineType: `zones/${zone}/machineTypes/${mt.providerType}`,
      labels: gceLabels(req.labels),
      tags: { items: [this.networkTag] },
      disks: [
        {
          boot: true,
          autoDelete: true,
          initializeParams: {
            sourceImage: req.image,
            diskSizeGb: String(mt.diskSizeGB ?? 50),
            ...(mt.diskType ? { diskType: `zones/${zone}/diskTypes/${mt.diskType}` } : {}),
          },
        },
      ],
      // No accessConfigs: no external IP. The gateway reaches the VM on its private address.
      networkInterfaces: [{ network, ...(sub ? { subnetwork: sub.name.includes('/') ? sub.name : `regions/${region}/subnetworks/${sub.name}` } : {}) }],
      metadata: { items: [{ key: 'startup-script', value: startupScript(req.agent) }] },
      // Spot: stopped (disk kept), never deleted, when GCE reclaims it; GCE requires the other two.
      ...(mt.spot ? { scheduling: SPOT_SCHEDULING } : {}),
      ...(this.o.serviceAccount ? { serviceAccounts: [{ email: this.o.serviceAccount, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }] } : {}),
    };
    let op: GceOperation;
    try {
      op = operationOf(await this.instances.insert({ project: this.o.project, zone, requestId: requestId(req.name, zone, 'insert', ...(req.requestKey ? [req.requestKey] : [])), instanceResource }));
    } catch (e) {
      const err = callError(e, `insert instance ${req.name} in ${zone}`);
      if (/already exists/i.test(err.message)) return; // created by an earlier attempt
      if (err.code === 'NotFound' && /images?\//.test(err.message)) throw new ProviderError('InvalidConfig', `spec.image: ${err.message.replace(/^.*?: /, '')}`, { field: 'spec.image' });
      if (err.code === 'InvalidConfig' && /machineType/i.test(err.message)) throw new ProviderError('InvalidConfig', `spec.machineTypes: ${err.message.replace(/^.*?: /, '')}`, { field: 'spec.machineTypes' });
      throw err;
    }
    await this.ops.wait(zone, op, `insert instance ${req.name}`);
  }

  private async act(inst: Instance, verb: 'start' | 'stop' | 'delete'): Promise<void> {
    const params = { project: this.o.project, zone: inst.zone, instance: inst.name, requestId: requestId(inst.name, inst.zone, verb, inst.createdAt) };
    let op: GceOperation;
    try {
      const call = verb === 'start' ? this.instances.start(params) : verb === 'stop' ? this.instances.stop(params) : this.instances.delete(params);
      op = operationOf(await call);
    } catch (e) {
      const err = callError(e, `${verb} instance ${inst.name}`);
      if (verb === 'delete' && err.code === 'NotFound') return;
      throw err;
    }
    await this.ops.wait(inst.zone, op, `${verb} instance ${inst.name}`);
  }

  start(inst: Instance): Promise<void> {
    return this.act(inst, 'start');
  }

  stop(inst: Instance): Promise<void> {
    return this.act(inst, 'stop');
  }

  /** Waits for the delete operation: when it is done the instance is gone. */
  async delete(inst: Instance): Promise<DeleteOutcome> {
    await this.act(inst, 'delete');
    this.bootDisks.delete(`${inst.zone}/${inst.name}`);
    return 'gone';
  }

  /**
   * instances.setMachineType, setScheduling (spot or standard), then disks.resize of the boot disk,
   * each only when it changes something. GCE itself refuses a machine type or scheduling change on
   * a running instance, and a smaller disk.
   */
  async resize(inst: Instance, req: ResizeRequest): Promise<void> {
    const base = { project: this.o.project, zone: inst.zone };
    if (req.providerType !== undefined && req.providerType !== inst.machineType) {
      await this.ops.run(inst.zone, `set the machine type of ${inst.name} to ${req.providerType}`, () => this.instances.setMachineType({
        ...base,
        instance: inst.name,
        requestId: requestId(inst.name, inst.zone, 'setMachineType', req.providerType ?? '', req.requestKey),
        instancesSetMachineTypeRequestResource: { machineType: `zones/${inst.zone}/machineTypes/${req.providerType ?? ''}` },
      }));
    }
    if (req.spot !== undefined && req.spot !== inst.spot) {
      await this.ops.run(inst.zone, `make ${inst.name} a ${req.spot ? 'spot' : 'standard'} VM`, () => this.instances.setScheduling({
        ...base,
        instance: inst.name,
        requestId: requestId(inst.name, inst.zone, 'setScheduling', String(req.spot), req.requestKey),
        schedulingResource: req.spot ? SPOT_SCHEDULING : STANDARD_SCHEDULING,
      }));
    }
    if (req.diskSizeGB !== undefined && req.diskSizeGB !== inst.diskSizeGB) {
      const key = `${inst.zone}/${inst.name}`;
      if (!this.bootDisks.has(key)) await this.find(inst.name, inst.zone);
      const disk = this.bootDisks.get(key) ?? inst.name; // GCE names an unnamed boot disk after its instance
      const sizeGb = req.diskSizeGB;
      await this.ops.run(inst.zone, `resize disk ${disk} of ${inst.name} to ${String(sizeGb)} GB`, () => this.disks.resize({
        ...base,
        disk,
        requestId: requestId(disk, inst.zone, 'resize', String(sizeGb), req.requestKey),
        disksResizeRequestResource: { sizeGb },
      }));
    }
  }

  async listOwned(labels: Record<string, string>): Promise<Instance[]> {
    const out: Instance[] = [];
    try {
      const iterable = this.instances.aggregatedListAsync({ project: this.o.project, filter: gceLabelFilter(labels) }, { autoPaginate: false });
      for await (const [, scoped] of iterable) {
        for (const g of (scoped as { instances?: GceInstance[] | null }).instances ?? []) out.push(await this.toInstance(g));
      }
    } catch (e) {
      throw callError(e, 'list instances');
    }
    return out;
  }

  /** setLabels with the fingerprint from our last look; a stale fingerprint (412) gets one fresh read. */
  async relabel(inst: Instance, labels: Record<string, string>): Promise<void> {
    let fingerprint = inst.labelFingerprint;
    for (let attempt = 0; ; attempt++) {
      if (!fingerprint) fingerprint = (await this.find(inst.name, inst.zone))?.labelFingerprint;
      try {
        const r = await this.instances.setLabels({
          project: this.o.project,
          zone: inst.zone,
          instance: inst.name,
          requestId: requestId(inst.name, inst.zone, 'setLabels', JSON.stringify(labels)),
          instancesSetLabelsRequestResource: { labels: gceLabels(labels), labelFingerprint: fingerprint ?? '' },
        });
        await this.ops.wait(inst.zone, operationOf(r), `set labels of ${inst.name}`);
        return;
      } catch (e) {
        const err = callError(e, `set labels of ${inst.name}`);
        const stale = ((e ?? {}) as { httpStatusCode?: number }).httpStatusCode === 412;
        if (!stale || attempt > 0) throw err;
        fingerprint = undefined;
      }
    }
  }

  /** Serial port 1, where the startup script's lines land (GCE's guest agent logs them there). */
  async consoleOutput(inst: Instance): Promise<string> {
    try {
      const [out] = await this.instances.getSerialPortOutput({ project: this.o.project, zone: inst.zone, instance: inst.name, port: 1 });
      return (out.contents ?? '').slice(-CONSOLE_TAIL);
    } catch (e) {
      throw callError(e, `read the serial console of ${inst.name}`);
    }
  }

  /** Lists at most one instance in the first zone: proves the credentials and the project. */
  async verify(): Promise<void> {
    try {
      await this.instances.list({ project: this.o.project, zone: this.o.zones[0] ?? '', maxResults: 1 }, { autoPaginate: false });
    } catch (e) {
      throw callError(e, `list instances in project ${this.o.project}`);
    }
  }

  /** An INGRESS firewall rule on the VPC: the agent ports, from the gateway's ranges, to our tag only. */
  ensureNetwork(rule: NetworkRule): Promise<NetworkState> {
    return ensureFirewall(this.firewalls, this.ops, this.o.project, { network: this.networkLink, tag: this.networkTag }, rule);
  }

  async close(): Promise<void> {
    await Promise.all([this.instances.close(), this.zoneOperations.close(), this.firewalls.close(), this.globalOperations.close(), this.disks.close()]);
  }
}
