// A fake of the Compute Engine v1 REST API, written from the public API reference (field names
// checked against the compute.proto that @google-cloud/compute ships), for driving the real
// client in tests. It keeps the semantics our provider relies on:
// - instances insert/get/list/aggregatedList/delete/start/stop/setLabels/setMachineType/setScheduling, zone
//   operations get/wait; disks get/resize of the boot disks (named after their instance);
// - setMachineType and setScheduling only on a TERMINATED instance (400 otherwise), disks.resize only upward;
// - firewalls insert/get/patch/delete (firewalls.ts), global operations get/wait;
// - a second insert of a name in a zone is 409 alreadyExists; a repeated requestId returns the same
//   operation and creates nothing (operations.ts);
// - PROVISIONING → STAGING → RUNNING after `bootMs`; STOPPING → TERMINATED on stop (disk kept);
// - label keys/values, machine types and images are validated as GCE does (validation.ts);
// - capacity (ZONE_RESOURCE_POOL_EXHAUSTED) and quota errors arrive in the operation, as in GCE;
// - faults on demand (faults.ts): 403 rateLimitExceeded / 429, 503, 401, latency;
// - spot VMs (spot.ts): an insert's scheduling checked as GCE does, preempt() as GCE reclaims one
//   (a compute.instances.preempted zone operation, TERMINATED), zoneOperations.list with a filter.
// With `startupScripts` or `containers` each instance also "boots" as a local process or a
// container (machines.ts), so the whole path from the operator to a real agent is exercised.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { injectedFault, type GceFaults } from './faults.ts';
import { FirewallApi, type Firewall } from './firewalls.ts';
import { Machines, type Containers, type Machine, type StartupScripts } from './machines.ts';
import { Operations } from './operations.ts';
import { BASE, error, json, notFound } from './responses.ts';
import { PREEMPTED_OPERATION, preemptible, schedulingError, schedulingOf, terminationAction } from './spot.ts';
import { badLabels, MACHINE_TYPE, NAME } from './validation.ts';

export type { Firewall } from './firewalls.ts';
export type { GceFaults } from './faults.ts';

export interface GceFakeOptions {
  project: string;
  bootMs?: number;
  stopMs?: number;
  startupScripts?: StartupScripts;
  containers?: Containers;
  faults?: GceFaults;
  /** Without containers: instances get `<addressPrefix>.x.y` (default 127.11), so concurrent test runs need not share addresses. */
  addressPrefix?: string;
}

interface Inst extends Machine {
  zone: string;
  status: 'PROVISIONING' | 'STAGING' | 'RUNNING' | 'STOPPING' | 'TERMINATED';
  labels: Record<string, string>;
  labelFingerprint: string;
  creationTimestamp: string;
  /** As GCE reports them: when it last reached RUNNING, and last TERMINATED. */
  lastStartTimestamp?: string;
  lastStopTimestamp?: string;
  /** The boot disk: its name and size. */
  bootDisk: string;
  diskSizeGb: number;
}

export class GceFake {
  readonly calls: { method: string; path: string; at: number }[] = [];
  readonly faults: GceFaults;
  readonly instances = new Map<string, Inst>();
  readonly firewalls = new Map<string, Firewall>();
  readonly images = new Set<string>();
  private readonly ops: Operations;
  private readonly firewallApi: FirewallApi;
  private readonly machines: Machines;
  private server: Server | undefined;
  private nextId = 1000;
  private nextIP = 2;
  private readonly o: GceFakeOptions;

  constructor(o: GceFakeOptions) {
    this.o = o;
    this.faults = o.faults ?? {};
    this.ops = new Operations(o.project, () => String(this.nextId++));
    this.firewallApi = new FirewallApi(o.project, this.firewalls, this.ops);
    this.machines = new Machines(o);
  }

  async start(): Promise<number> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const i of this.instances.values()) this.machines.kill(i, true);
    await this.settled();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
  }

  count(method: string, pathPart: string): number {
    return this.calls.filter((c) => c.method === method && c.path.includes(pathPart)).length;
  }

  /** Waits for every instance's Docker actions (container mode), e.g. before removing the network. */
  async settled(): Promise<void> {
    await this.machines.settled(this.instances.values());
  }

  /** Removes the booted instances' directories (their disks). */
  wipe(): void {
    this.machines.wipe();
  }

  // --- HTTP --------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    this.calls.push({ method, path: url.pathname, at: Date.now() });
    let body: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        error(res, 400, 'parseError', 'Invalid JSON payload received.');
        return;
      }
    }
    if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    const fault = injectedFault(this.faults);
    if (fault) {
      error(res, ...fault);
      return;
    }
    const p = url.pathname.split('/').filter(Boolean);
    // compute v1 projects {project} …
    if (p[0] !== 'compute' || p[1] !== 'v1' || p[2] !== 'projects' || p[3] !== this.o.project) {
      notFound(res, url.pathname);
      return;
    }
    const rest = p.slice(4);
    try {
      this.route(method, rest, url.searchParams, body, res);
    } catch (e) {
      error(res, 500, 'internalError', (e as Error).message);
    }
  }

  private route(method: string, r: string[], q: URLSearchParams, body: Record<string, unknown>, res: ServerResponse): void {
    const [a, zone, b, name, action] = r;
    if (a === 'aggregated' && zone === 'instances' && method === 'GET') {
      const items: Record<string, { instances?: unknown[]; warning?: unknown }> = {};
      for (const i of this.filter([...this.instances.values()], q.get('filter'))) {
        (items[`zones/${i.zone}`] ??= { instances: [] }).instances?.push(this.view(i));
      }
      json(res, 200, { kind: 'compute#instanceAggregatedList', id: `projects/${this.o.project}/aggregated/instances`, items });
      return;
    }
    if (a === 'global') {
      // global/operations/{name}[/wait] and global/firewalls[/{name}]
      const [kind, globalName, globalAction] = r.slice(1);
      if (kind === 'operations' && globalName) return this.ops.get(method, globalName, globalAction, res);
      if (kind !== 'firewalls') return notFound(res, `global/${r.slice(1).join('/')}`);
      return this.firewallApi.handle(method, globalName, q.get('requestId'), body, res);
    }
    if (a !== 'zones' || !zone) return notFound(res, r.join('/'));
    if (b === 'operations' && name) return this.ops.get(method, name, action, res);
    if (b === 'operations' && method === 'GET') return this.ops.list(zone, q.get('filter'), res);
    if (b === 'disks' && name) return this.disk(method, zone, name, action, q.get('requestId'), body, res);
    if (b !== 'instances') return notFound(res, r.join('/'));
    if (!name) {
      if (method === 'GET') {
        const items = this.filter([...this.instances.values()].filter((i) => i.zone === zone), q.get('filter')).map((i) => this.view(i));
        json(res, 200, { kind: 'compute#instanceList', items });
        return;
      }
      if (method === 'POST') return this.insert(zone, q.get('requestId'), body, res);
      return error(res, 405, 'methodNotAllowed', 'Method not allowed');
    }
    const inst = this.instances.get(`${zone}/${name}`);
    if (!inst) return notFound(res, `projects/${this.o.project}/zones/${zone}/instances/${name}`);
    if (!action && method === 'GET') return json(res, 200, this.view(inst));
    if (action === 'serialPort' && method === 'GET') {
      void this.machines.serialPort(inst).then((contents) => {
        json(res, 200, { kind: 'compute#serialPortOutput', contents, start: '0', next: String(Buffer.byteLength(contents)), selfLink: `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}/serialPort` });
      }, (e: unknown) => {
        error(res, 500, 'internalError', (e as Error).message);
      });
      return;
    }
    const reuse = this.ops.byRequest(q.get('requestId'));
    if (reuse) return this.ops.send(res, reuse);
    if (!action && method === 'DELETE') {
      return this.operation(res, zone, 'delete', inst, q.get('requestId'), 300, () => {
        this.machines.kill(inst, true);
        this.instances.delete(`${zone}/${name}`);
      });
    }
    if (action === 'stop' && method === 'POST') {
      inst.status = 'STOPPING';
      return this.operation(res, zone, 'stop', inst, q.get('requestId'), this.o.stopMs ?? 300, () => {
        this.machines.kill(inst);
        inst.status = 'TERMINATED';
        inst.lastStopTimestamp = new Date().toISOString();
      });
    }
    if (action === 'start' && method === 'POST') {
      if (inst.status !== 'TERMINATED') return this.operation(res, zone, 'start', inst, q.get('requestId'), 0);
      inst.status = 'STAGING';
      return this.operation(res, zone, 'start', inst, q.get('requestId'), this.o.bootMs ?? 300, () => {
        inst.status = 'RUNNING';
        inst.lastStartTimestamp = new Date().toISOString();
        this.machines.boot(inst);
      });
    }
    if (action === 'setMachineType' && method === 'POST') {
      const mt = typeof body.machineType === 'string' ? body.machineType : '';
      const short = mt.split('/').pop() ?? '';
      if (inst.status !== 'TERMINATED') return error(res, 400, 'invalidResourceUsage', `Invalid resource usage: 'The instance '${name}' must be stopped before its machine type can be changed (it is ${inst.status}).'`);
      if (!MACHINE_TYPE.test(short)) return error(res, 400, 'invalid', `Invalid value for field 'resource.machineType': '${mt}'. Machine type with name '${short}' does not exist in zone '${zone}'.`);
      inst.body = { ...inst.body, machineType: mt };
      return this.operation(res, zone, 'setMachineType', inst, q.get('requestId'), 100);
    }
    if (action === 'setScheduling' && method === 'POST') {
      if (inst.status !== 'TERMINATED') return error(res, 400, 'invalidResourceUsage', `Invalid resource usage: 'The instance '${name}' must be stopped before its scheduling can be changed (it is ${inst.status}).'`);
      const bad = schedulingError(body);
      if (bad) return error(res, 400, 'invalid', bad);
      inst.body = { ...inst.body, scheduling: body };
      return this.operation(res, zone, 'setScheduling', inst, q.get('requestId'), 100);
    }
    if (action === 'setLabels' && method === 'POST') {
      if (body.labelFingerprint !== inst.labelFingerprint) return error(res, 412, 'conditionNotMet', 'Labels fingerprint either invalid or resource labels have changed');
      const labels = (body.labels ?? {}) as Record<string, string>;
      const bad = badLabels(labels);
      if (bad) return error(res, 400, 'invalid', bad);
      inst.labels = labels;
      inst.labelFingerprint = Buffer.from(String(Date.now() + Math.random())).toString('base64');
      return this.operation(res, zone, 'setLabels', inst, q.get('requestId'), 0);
    }
    return error(res, 405, 'methodNotAllowed', 'Method not allowed');
  }

  /** A boot disk: get, and resize (only upward, as GCE; allowed on a running instance too, as GCE). */
  private disk(method: string, zone: string, name: string, action: string | undefined, requestId: string | null, body: Record<string, unknown>, res: ServerResponse): void {
    const inst = [...this.instances.values()].find((i) => i.zone === zone && i.bootDisk === name);
    const link = `${BASE}/projects/${this.o.project}/zones/${zone}/disks/${name}`;
    if (!inst) return notFound(res, `projects/${this.o.project}/zones/${zone}/disks/${name}`);
    if (!action && method === 'GET') {
      return json(res, 200, { kind: 'compute#disk', name, zone: `${BASE}/projects/${this.o.project}/zones/${zone}`, sizeGb: String(inst.diskSizeGb), status: 'READY', users: [`${BASE}/projects/${this.o.project}/zones/${zone}/instances/${inst.name}`], selfLink: link });
    }
    if (action !== 'resize' || method !== 'POST') return error(res, 405, 'methodNotAllowed', 'Method not allowed');
    const reuse = this.ops.byRequest(requestId);
    if (reuse) return this.ops.send(res, reuse);
    const size = Number(body.sizeGb);
    if (!Number.isInteger(size) || size <= 0 || size > 65536) return error(res, 400, 'invalid', `Invalid value for field 'sizeGb': '${String(body.sizeGb)}'.`);
    if (size <= inst.diskSizeGb) return error(res, 400, 'invalid', `Invalid value for field 'sizeGb': '${String(size)}'. New disk size '${String(size)}' GB must be larger than existing size '${String(inst.diskSizeGb)}' GB.`);
    // Applied at once (the operation only reports it): a look right after the operation sees it.
    inst.diskSizeGb = size;
    this.ops.send(res, this.ops.run(zone, 'resizeDisk', link, requestId, 100));
  }

  private insert(zone: string, requestId: string | null, body: Record<string, unknown>, res: ServerResponse): void {
    const reuse = this.ops.byRequest(requestId);
    if (reuse) return this.ops.send(res, reuse);
    const str = (v: unknown) => (typeof v === 'string' ? v : '');
    const name = str(body.name);
    if (!NAME.test(name)) return error(res, 400, 'invalid', `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`);
    const mt = str(body.machineType).split('/').pop() ?? '';
    if (!MACHINE_TYPE.test(mt)) return error(res, 400, 'invalid', `Invalid value for field 'resource.machineType': '${str(body.machineType)}'. Machine type with name '${mt}' does not exist in zone '${zone}'.`);
    const disks = (body.disks ?? []) as { initializeParams?: { sourceImage?: string; diskSizeGb?: string | number; diskName?: string } }[];
    const image = disks[0]?.initializeParams?.sourceImage ?? '';
    const imagePath = image.replace(`${BASE}/`, '');
    if (!this.images.has(imagePath)) return error(res, 404, 'notFound', `The resource '${imagePath}' was not found`);
    const labels = (body.labels ?? {}) as Record<string, string>;
    const bad = badLabels(labels) ?? schedulingError(schedulingOf(body));
    if (bad) return error(res, 400, 'invalid', bad);
    if (this.instances.has(`${zone}/${name}`)) return error(res, 409, 'alreadyExists', `The resource 'projects/${this.o.project}/zones/${zone}/instances/${name}' already exists`);
    if (this.faults.exhaustedZones?.has(zone) || this.faults.quotaExceeded) {
      const [code, message] = this.faults.quotaExceeded
        ? ['QUOTA_EXCEEDED', "Quota 'CPUS' exceeded.  Limit: 24.0 in region " + zone.replace(/-[a-z]$/, '') + '.']
        : ['ZONE_RESOURCE_POOL_EXHAUSTED', `The zone 'projects/${this.o.project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`];
      const op = this.ops.create(zone, 'insert', `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}`, requestId, 100);
      op.error = { errors: [{ code, message }] };
      op.httpErrorStatusCode = code === 'QUOTA_EXCEEDED' ? 403 : 503;
      op.httpErrorMessage = code === 'QUOTA_EXCEEDED' ? 'FORBIDDEN' : 'SERVICE UNAVAILABLE';
      return this.ops.send(res, op);
    }
    const n = this.nextIP++;
    const inst: Inst = {
      id: String(this.nextId++),
      name,
      zone,
      status: 'PROVISIONING',
      body,
      labels,
      labelFingerprint: Buffer.from(String(Date.now())).toString('base64'),
      networkIP: `${this.o.containers?.addressPrefix ?? this.o.addressPrefix ?? '127.11'}.${n >> 8}.${n & 255}`,
      creationTimestamp: new Date().toISOString(),
      // GCE names a boot disk after its instance unless told otherwise; 10 GB is its usual image size.
      bootDisk: disks[0]?.initializeParams?.diskName ?? name,
      diskSizeGb: Number(disks[0]?.initializeParams?.diskSizeGb ?? 10),
    };
    this.instances.set(`${zone}/${name}`, inst);
    this.machines.create(inst, imagePath);
    const bootMs = this.o.bootMs ?? 300;
    setTimeout(() => {
      if (inst.status === 'PROVISIONING') inst.status = 'STAGING';
    }, bootMs / 2);
    this.operation(res, zone, 'insert', inst, requestId, bootMs, () => {
      if (this.instances.get(`${zone}/${name}`) !== inst || inst.status === 'TERMINATED') return;
      inst.status = 'RUNNING';
      inst.lastStartTimestamp = new Date().toISOString();
      this.machines.boot(inst);
    });
  }

  /** The subset of the list filter syntax our provider uses: `labels.k = "v"` terms joined by AND. */
  private filter(list: Inst[], filter: string | null): Inst[] {
    if (!filter) return list;
    const terms = [...filter.matchAll(/labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?/g)].map((m) => [m[1] ?? '', m[2] ?? ''] as const);
    return list.filter((i) => terms.every(([k, v]) => i.labels[k] === v));
  }

  /** An operation on the instance, answered at once; `after` runs when it is DONE. */
  private operation(res: ServerResponse, zone: string, type: string, inst: Inst, requestId: string | null, ms: number, after?: () => void): void {
    this.ops.send(res, this.ops.run(zone, type, `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${inst.name}`, requestId, ms, after));
  }

  private view(i: Inst): Record<string, unknown> {
    const b = i.body;
    const nics = (b.networkInterfaces ?? [{}]) as Record<string, unknown>[];
    return {
      ...b,
      kind: 'compute#instance',
      id: i.id,
      name: i.name,
      zone: `${BASE}/projects/${this.o.project}/zones/${i.zone}`,
      status: i.status,
      labels: i.labels,
      labelFingerprint: i.labelFingerprint,
      creationTimestamp: i.creationTimestamp,
      ...(i.lastStartTimestamp ? { lastStartTimestamp: i.lastStartTimestamp } : {}),
      ...(i.lastStopTimestamp ? { lastStopTimestamp: i.lastStopTimestamp } : {}),
      networkInterfaces: nics.map((n, k) => ({ ...n, name: `nic${k}`, networkIP: k === 0 ? i.networkIP : `127.12.0.${k}` })),
      // As GCE shows attached disks: the source disk and its size, not the insert's initializeParams.
      disks: [{ kind: 'compute#attachedDisk', type: 'PERSISTENT', mode: 'READ_WRITE', source: `${BASE}/projects/${this.o.project}/zones/${i.zone}/disks/${i.bootDisk}`, deviceName: 'persistent-disk-0', index: 0, boot: true, autoDelete: true, interface: 'SCSI', diskSizeGb: String(i.diskSizeGb) }],
      selfLink: `${BASE}/projects/${this.o.project}/zones/${i.zone}/instances/${i.name}`,
    };
  }

  /**
   * Test hook: GCE reclaims a spot VM. As in GCE, the system makes a compute.instances.preempted
   * operation on it and the instance goes STOPPING → TERMINATED (its disk kept) — or, with
   * instanceTerminationAction DELETE, is deleted. Only SPOT or preemptible instances are preempted.
   */
  preempt(zone: string, name: string): void {
    const inst = this.instances.get(`${zone}/${name}`);
    if (!inst) throw new Error(`gce fake: no instance ${zone}/${name}`);
    const s = schedulingOf(inst.body);
    if (!preemptible(s)) throw new Error(`gce fake: ${name} is not a Spot or preemptible VM; GCE preempts only those`);
    if (inst.status !== 'RUNNING' && inst.status !== 'STAGING') throw new Error(`gce fake: ${name} is ${inst.status}; only a running VM is preempted`);
    const ms = this.o.stopMs ?? 300;
    const op = this.ops.create(zone, PREEMPTED_OPERATION, `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}`, null, ms);
    op.targetId = inst.id;
    op.user = 'system';
    inst.status = 'STOPPING';
    setTimeout(() => {
      op.status = 'DONE';
      if (terminationAction(s) === 'DELETE') {
        this.machines.kill(inst, true);
        this.instances.delete(`${zone}/${name}`);
        return;
      }
      this.machines.kill(inst);
      inst.status = 'TERMINATED';
      inst.lastStopTimestamp = new Date().toISOString();
    }, ms);
  }
}
