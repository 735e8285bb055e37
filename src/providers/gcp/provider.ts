// The GCP provider: one Compute Engine instance per Gitspace, through the official
// @google-cloud/compute client (REST transport).
//
// Idempotency: the instance name is deterministic (the runner derives it from the Gitspace UID),
// every create looks the name up in every configured zone first, a second insert of the same name
// is a 409 that we treat as "found", and each mutating call carries a requestId derived from the
// instance, zone and verb, so a retried call within GCE's retry window is the same operation.
import { createHash } from 'node:crypto';
import { DisksClient, FirewallsClient, GlobalOperationsClient, InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
import { LABELS } from '../../api/index.ts';
import { startupScript } from '../startup.ts';
import { CONSOLE_TAIL, ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type InstanceState, type NetworkRule, type NetworkState, type ResizeRequest, type VmProvider } from '../types.ts';
import { callError, CapacityError, operationError } from './errors.ts';
import { gceLabelFilter, gceLabels, ourLabels } from './labels.ts';
import { GcePreemptions, isSpot, SPOT_SCHEDULING, STANDARD_SCHEDULING, type GceSchedulingView } from './preemption.ts';

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

interface GceInstance extends GceSchedulingView {
  id?: string | number | null;
  name?: string | null;
  zone?: string | null;
  status?: string | null;
  machineType?: string | null;
  creationTimestamp?: string | null;
  labels?: Record<string, string> | null;
  labelFingerprint?: string | null;
  networkInterfaces?: { networkIP?: string | null }[] | null;
  disks?: { boot?: boolean | null; source?: string | null; diskSizeGb?: string | number | null }[] | null;
}

interface GceOperation {
  name?: string | null;
  status?: string | number | null;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
}

const last = (s: string | null | undefined) => (s ?? '').split('/').pop() ?? '';

function stateOf(status: string | null | undefined): InstanceState {
  switch (status) {
    case 'PROVISIONING':
    case 'STAGING':
    case 'REPAIRING':
      return 'pending';
    case 'RUNNING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
      return 'stopping';
    case 'TERMINATED':
    case 'SUSPENDED':
    case 'STOPPED':
      return 'stopped';
    default:
      return 'pending';
  }
}

/** A UUID derived from its inputs, so a retried call carries the same GCE requestId. */
export function requestId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class GcpProvider implements VmProvider {
  readonly kind = 'gcp' as const;
  readonly spotChangeable = true;
  private readonly o: GcpProviderOptions;
  private readonly instances: InstancesClient;
  private readonly operations: ZoneOperationsClient;
  private readonly firewalls: FirewallsClient;
  private readonly globalOperations: GlobalOperationsClient;
  private readonly disks: DisksClient;
  private readonly preemptions: GcePreemptions;
  /** Boot disk names by zone/instance, from our last look (resize needs the disk's own name). */
  private readonly bootDisks = new Map<string, string>();

  constructor(o: GcpProviderOptions) {
    this.o = o;
    this.instances = new InstancesClient({ fallback: true, ...o.client });
    this.operations = new ZoneOperationsClient({ fallback: true, ...o.client });
    this.firewalls = new FirewallsClient({ fallback: true, ...o.client });
    this.globalOperations = new GlobalOperationsClient({ fallback: true, ...o.client });
    this.disks = new DisksClient({ fallback: true, ...o.client });
    this.preemptions = new GcePreemptions(this.operations, o.project);
  }

  private get networkTag(): string {
    return this.o.networkTag ?? 'gitspaces-vm';
  }

  private get networkLink(): string {
    return this.o.network.includes('/') ? this.o.network : `global/networks/${this.o.network}`;
  }

  private toInstance(g: GceInstance): Instance {
    const ip = g.networkInterfaces?.[0]?.networkIP ?? undefined;
    const boot = g.disks?.find((d) => d.boot);
    const diskSize = Number(boot?.diskSizeGb ?? NaN);
    if (boot?.source) this.bootDisks.set(`${last(g.zone)}/${g.name ?? ''}`, last(boot.source));
    return {
      id: String(g.id ?? ''),
      name: g.name ?? '',
      zone: last(g.zone),
      state: stateOf(g.status),
      ...(ip ? { privateIP: ip } : {}),
      agentPort: this.o.agentPort,
      machineType: last(g.machineType),
      ...(Number.isFinite(diskSize) ? { diskSizeGB: diskSize } : {}),
      createdAt: g.creationTimestamp ?? '',
      labels: ourLabels(g.labels ?? {}, Object.values(LABELS)),
      ...(g.labelFingerprint ? { labelFingerprint: g.labelFingerprint } : {}),
      spot: isSpot(g),
    };
  }

  async find(name: string, zone?: string): Promise<Instance | undefined> {
    const zones = zone ? [zone, ...this.o.zones.filter((z) => z !== zone)] : this.o.zones;
    for (const z of zones) {
      try {
        const [g] = await this.instances.get({ project: this.o.project, zone: z, instance: name });
        return await this.preemptions.annotate(g as GceInstance, this.toInstance(g as GceInstance));
      } catch (e) {
        const err = callError(e, `get instance ${name}`);
        if (err.code !== 'NotFound') throw err;
      }
    }
    return undefined;
  }

  /** Waits for a zone operation (or a global one, zone undefined) to finish; throws its error, classified. */
  private async wait(zone: string | undefined, op: GceOperation, what: string): Promise<void> {
    const deadline = Date.now() + (this.o.operationTimeoutMs ?? 10 * 60_000);
    let cur = op;
    while (cur.status !== 'DONE' && cur.status !== 2) {
      if (Date.now() > deadline) throw new ProviderError('Transient', `${what}: operation ${op.name ?? ''} still running`);
      try {
        const params = { project: this.o.project, operation: op.name ?? '' };
        [cur] = (zone ? await this.operations.wait({ ...params, zone }) : await this.globalOperations.wait(params)) as [GceOperation, ...unknown[]];
      } catch (e) {
        throw callError(e, `${what}: waiting for operation ${op.name ?? ''}`);
      }
    }
    const errors = cur.error?.errors ?? [];
    if (errors.length) throw operationError(errors);
  }

  /** The operation behind a mutating call (the REST client resolves to an operation wrapper). */
  private static op(r: unknown): GceOperation {
    const first = (Array.isArray(r) ? r[0] : r) as { latestResponse?: GceOperation; name?: string } | undefined;
    return (first?.latestResponse ?? first ?? {});
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
      op = GcpProvider.op(await this.instances.insert({ project: this.o.project, zone, requestId: requestId(req.name, zone, 'insert', ...(req.requestKey ? [req.requestKey] : [])), instanceResource }));
    } catch (e) {
      const err = callError(e, `insert instance ${req.name} in ${zone}`);
      if (/already exists/i.test(err.message)) return; // created by an earlier attempt
      if (err.code === 'NotFound' && /images?\//.test(err.message)) throw new ProviderError('InvalidConfig', `spec.image: ${err.message.replace(/^.*?: /, '')}`, { field: 'spec.image' });
      if (err.code === 'InvalidConfig' && /machineType/i.test(err.message)) throw new ProviderError('InvalidConfig', `spec.machineTypes: ${err.message.replace(/^.*?: /, '')}`, { field: 'spec.machineTypes' });
      throw err;
    }
    await this.wait(zone, op, `insert instance ${req.name}`);
  }

  private async act(inst: Instance, verb: 'start' | 'stop' | 'delete'): Promise<void> {
    const params = { project: this.o.project, zone: inst.zone, instance: inst.name, requestId: requestId(inst.name, inst.zone, verb, inst.createdAt) };
    let op: GceOperation;
    try {
      const call = verb === 'start' ? this.instances.start(params) : verb === 'stop' ? this.instances.stop(params) : this.instances.delete(params);
      op = GcpProvider.op(await call);
    } catch (e) {
      const err = callError(e, `${verb} instance ${inst.name}`);
      if (verb === 'delete' && err.code === 'NotFound') return;
      throw err;
    }
    await this.wait(inst.zone, op, `${verb} instance ${inst.name}`);
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
      const what = `set the machine type of ${inst.name} to ${req.providerType}`;
      let op: GceOperation;
      try {
        op = GcpProvider.op(await this.instances.setMachineType({
          ...base,
          instance: inst.name,
          requestId: requestId(inst.name, inst.zone, 'setMachineType', req.providerType, req.requestKey),
          instancesSetMachineTypeRequestResource: { machineType: `zones/${inst.zone}/machineTypes/${req.providerType}` },
        }));
      } catch (e) {
        throw callError(e, what);
      }
      await this.wait(inst.zone, op, what);
    }
    if (req.spot !== undefined && req.spot !== inst.spot) {
      const what = `make ${inst.name} a ${req.spot ? 'spot' : 'standard'} VM`;
      let op: GceOperation;
      try {
        op = GcpProvider.op(await this.instances.setScheduling({
          ...base,
          instance: inst.name,
          requestId: requestId(inst.name, inst.zone, 'setScheduling', String(req.spot), req.requestKey),
          schedulingResource: req.spot ? SPOT_SCHEDULING : STANDARD_SCHEDULING,
        }));
      } catch (e) {
        throw callError(e, what);
      }
      await this.wait(inst.zone, op, what);
    }
    if (req.diskSizeGB !== undefined && req.diskSizeGB !== inst.diskSizeGB) {
      const key = `${inst.zone}/${inst.name}`;
      if (!this.bootDisks.has(key)) await this.find(inst.name, inst.zone);
      const disk = this.bootDisks.get(key) ?? inst.name; // GCE names an unnamed boot disk after its instance
      const what = `resize disk ${disk} of ${inst.name} to ${String(req.diskSizeGB)} GB`;
      let op: GceOperation;
      try {
        op = GcpProvider.op(await this.disks.resize({
          ...base,
          disk,
          requestId: requestId(disk, inst.zone, 'resize', String(req.diskSizeGB), req.requestKey),
          disksResizeRequestResource: { sizeGb: req.diskSizeGB },
        }));
      } catch (e) {
        throw callError(e, what);
      }
      await this.wait(inst.zone, op, what);
    }
  }

  async listOwned(labels: Record<string, string>): Promise<Instance[]> {
    const out: Instance[] = [];
    try {
      const iterable = this.instances.aggregatedListAsync({ project: this.o.project, filter: gceLabelFilter(labels) }, { autoPaginate: false });
      for await (const [, scoped] of iterable) {
        for (const g of (scoped as { instances?: GceInstance[] | null }).instances ?? []) out.push(await this.preemptions.annotate(g, this.toInstance(g)));
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
        await this.wait(inst.zone, GcpProvider.op(r), `set labels of ${inst.name}`);
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
  async ensureNetwork(rule: NetworkRule): Promise<NetworkState> {
    const want = {
      name: rule.name,
      network: this.networkLink,
      direction: 'INGRESS',
      sourceRanges: [...rule.sourceRanges].sort(),
      targetTags: [this.networkTag],
      allowed: [{ IPProtocol: 'tcp', ports: rule.ports.map(String) }],
      description: 'Gitspaces: only the gateway and the operator may reach the VM agents (managed by the gitspaces operator)',
    };
    let live: { sourceRanges?: string[] | null; targetTags?: string[] | null; allowed?: { IPProtocol?: string | null; ports?: string[] | null }[] | null } | undefined;
    try {
      [live] = await this.firewalls.get({ project: this.o.project, firewall: rule.name });
    } catch (e) {
      const err = callError(e, `get firewall rule ${rule.name}`);
      if (err.code !== 'NotFound') throw err;
    }
    const key = (x: typeof live) => JSON.stringify([[...(x?.sourceRanges ?? [])].sort(), x?.targetTags ?? [], (x?.allowed ?? []).map((a) => [a.IPProtocol, a.ports ?? []])]);
    if (live && key(live) === key(want)) return { id: rule.name, action: 'none' };
    const what = `${live ? 'update' : 'create'} firewall rule ${rule.name}`;
    try {
      const reqId = requestId(rule.name, key(want));
      const r = live
        ? await this.firewalls.patch({ project: this.o.project, firewall: rule.name, firewallResource: want, requestId: reqId })
        : await this.firewalls.insert({ project: this.o.project, firewallResource: want, requestId: reqId });
      await this.wait(undefined, GcpProvider.op(r), what);
    } catch (e) {
      throw callError(e, what);
    }
    return { id: rule.name, action: live ? 'updated' : 'created' };
  }

  async close(): Promise<void> {
    await Promise.all([this.instances.close(), this.operations.close(), this.firewalls.close(), this.globalOperations.close(), this.disks.close()]);
  }
}
