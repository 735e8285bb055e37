// A fake of the Compute Engine v1 REST API, written from the public API reference (field names
// checked against the compute.proto that @google-cloud/compute ships), for driving the real
// client in tests. It keeps the semantics our provider relies on:
// - instances insert/get/list/aggregatedList/delete/start/stop/setLabels/setMachineType/setScheduling, zone
//   operations get/wait; disks get/resize of the boot disks (named after their instance);
// - setMachineType and setScheduling only on a TERMINATED instance (400 otherwise), disks.resize only upward;
// - firewalls insert/get/patch/delete, global operations get/wait;
// - a second insert of a name in a zone is 409 alreadyExists; a repeated requestId returns the same
//   operation and creates nothing;
// - PROVISIONING → STAGING → RUNNING after `bootMs`; STOPPING → TERMINATED on stop (disk kept);
// - label keys/values, machine types and images are validated as GCE does;
// - capacity (ZONE_RESOURCE_POOL_EXHAUSTED) and quota errors arrive in the operation, as in GCE;
// - faults on demand: 403 rateLimitExceeded / 429, 503, latency;
// - spot VMs (spot.ts): an insert's scheduling checked as GCE does, preempt() as GCE reclaims one
//   (a compute.instances.preempted zone operation, TERMINATED), zoneOperations.list with a filter.
// With `startupScripts` it also "boots" each instance by running its startup-script metadata as a
// local process (GITSPACES_ROOT, GITSPACES_AGENT, GITSPACES_LISTEN_ADDRESS set), so the whole path
// from the operator to a real agent is exercised. With `containers` each instance is a container
// that boots like a VM (test/fakes/vm-host.ts): the image the insert names (a stock or baked OS
// image), its own disk, address and systemd, the startup-script run on every boot as GCE's guest
// agent does, and its serial port 1 readable through getSerialPortOutput.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ContainerVms } from '../vm-host.ts';
import { operationFilter, PREEMPTED_OPERATION, preemptible, schedulingError, schedulingOf, terminationAction } from './spot.ts';

const BASE = 'https://www.googleapis.com/compute/v1';

export interface GceFaults {
  /** Share of requests answered 403 rateLimitExceeded (half) or 429 (half). */
  throttleRate?: number;
  /** Share of requests answered 503 backendError. */
  errorRate?: number;
  latencyMs?: number;
  /** Zones whose inserts fail with ZONE_RESOURCE_POOL_EXHAUSTED. */
  exhaustedZones?: Set<string>;
  /** Inserts fail with QUOTA_EXCEEDED. */
  quotaExceeded?: boolean;
  /** Every request is answered 401 UNAUTHENTICATED (revoked or wrong credentials). */
  unauthenticated?: boolean;
  /** The next N requests are answered 403 rateLimitExceeded (a fault that surely happens). */
  throttleNext?: number;
}

export interface Firewall {
  name: string;
  network: string;
  direction: string;
  sourceRanges: string[];
  targetTags: string[];
  allowed: { IPProtocol: string; ports?: string[] }[];
  description?: string;
}

export interface GceFakeOptions {
  project: string;
  bootMs?: number;
  stopMs?: number;
  startupScripts?: { rootDir: string; agentCommand: string[] };
  /**
   * Instances as containers: `images` maps GCE image paths to Docker tags; addresses are
   * `<addressPrefix>.x.y` on `network` (a bridge whose subnet is <addressPrefix>.0.0/16).
   */
  containers?: { vms: ContainerVms; network: string; addressPrefix: string; images: Record<string, string>; namePrefix: string };
  faults?: GceFaults;
  /** Without containers: instances get `<addressPrefix>.x.y` (default 127.11), so concurrent test runs need not share addresses. */
  addressPrefix?: string;
}

interface Inst {
  id: string;
  name: string;
  zone: string;
  status: 'PROVISIONING' | 'STAGING' | 'RUNNING' | 'STOPPING' | 'TERMINATED';
  body: Record<string, unknown>;
  labels: Record<string, string>;
  labelFingerprint: string;
  networkIP: string;
  creationTimestamp: string;
  /** As GCE reports them: when it last reached RUNNING, and last TERMINATED. */
  lastStartTimestamp?: string;
  lastStopTimestamp?: string;
  /** The boot disk: its name and size. */
  bootDisk: string;
  diskSizeGb: number;
  pgid?: number;
  /** Container mode: the Docker actions on this instance, in order (create, start, stop, remove). */
  machine?: Promise<void>;
}

interface Op {
  id: string;
  name: string;
  zone: string;
  operationType: string;
  targetLink: string;
  targetId?: string;
  /** Who made it: the system, for a preemption. */
  user?: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  insertTime: string;
  doneAt: number;
  error?: { errors: { code: string; message: string }[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
  after?: () => void;
}

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MACHINE_TYPE = /^(e2|n1|n2|n2d|c2|c3|t2d)-(standard|highmem|highcpu|micro|small|medium)(-\d+)?$/;

export class GceFake {
  readonly calls: { method: string; path: string; at: number }[] = [];
  readonly faults: GceFaults;
  readonly instances = new Map<string, Inst>();
  readonly firewalls = new Map<string, Firewall>();
  readonly images = new Set<string>();
  private readonly ops = new Map<string, Op>();
  private readonly requestIds = new Map<string, Op>();
  private server: Server | undefined;
  private nextId = 1000;
  private nextIP = 2;
  private readonly o: GceFakeOptions;

  constructor(o: GceFakeOptions) {
    this.o = o;
    this.faults = o.faults ?? {};
  }

  async start(): Promise<number> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const i of this.instances.values()) this.kill(i, true);
    await this.settled();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
  }

  count(method: string, pathPart: string): number {
    return this.calls.filter((c) => c.method === method && c.path.includes(pathPart)).length;
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
        this.error(res, 400, 'parseError', 'Invalid JSON payload received.');
        return;
      }
    }
    if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    if (this.faults.unauthenticated) {
      this.error(res, 401, 'authError', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
      return;
    }
    if (this.faults.throttleNext) {
      this.faults.throttleNext--;
      this.error(res, 403, 'rateLimitExceeded', 'Rate Limit Exceeded');
      return;
    }
    const roll = Math.random();
    const throttle = this.faults.throttleRate ?? 0;
    if (roll < throttle) {
      if (roll < throttle / 2) this.error(res, 403, 'rateLimitExceeded', 'Rate Limit Exceeded');
      else this.error(res, 429, 'rateLimitExceeded', 'Too Many Requests');
      return;
    }
    if (roll < throttle + (this.faults.errorRate ?? 0)) {
      this.error(res, 503, 'backendError', 'Backend Error');
      return;
    }
    const p = url.pathname.split('/').filter(Boolean);
    // compute v1 projects {project} …
    if (p[0] !== 'compute' || p[1] !== 'v1' || p[2] !== 'projects' || p[3] !== this.o.project) {
      this.error(res, 404, 'notFound', `The resource '${url.pathname}' was not found`);
      return;
    }
    const rest = p.slice(4);
    try {
      this.route(method, rest, url.searchParams, body, res);
    } catch (e) {
      this.error(res, 500, 'internalError', (e as Error).message);
    }
  }

  private route(method: string, r: string[], q: URLSearchParams, body: Record<string, unknown>, res: ServerResponse): void {
    const [a, zone, b, name, action] = r;
    if (a === 'aggregated' && zone === 'instances' && method === 'GET') {
      const items: Record<string, { instances?: unknown[]; warning?: unknown }> = {};
      for (const i of this.filter([...this.instances.values()], q.get('filter'))) {
        (items[`zones/${i.zone}`] ??= { instances: [] }).instances?.push(this.view(i));
      }
      this.json(res, 200, { kind: 'compute#instanceAggregatedList', id: `projects/${this.o.project}/aggregated/instances`, items });
      return;
    }
    if (a === 'global') return this.global(method, r.slice(1), q, body, res);
    if (a !== 'zones' || !zone) return this.notFound(res, r.join('/'));
    if (b === 'operations' && name) return this.getOperation(method, name, action, res);
    if (b === 'operations' && method === 'GET') return this.listOperations(zone, q.get('filter'), res);
    if (b === 'disks' && name) return this.disk(method, zone, name, action, q.get('requestId'), body, res);
    if (b !== 'instances') return this.notFound(res, r.join('/'));
    if (!name) {
      if (method === 'GET') {
        const items = this.filter([...this.instances.values()].filter((i) => i.zone === zone), q.get('filter')).map((i) => this.view(i));
        this.json(res, 200, { kind: 'compute#instanceList', items });
        return;
      }
      if (method === 'POST') return this.insert(zone, q.get('requestId'), body, res);
      return this.error(res, 405, 'methodNotAllowed', 'Method not allowed');
    }
    const inst = this.instances.get(`${zone}/${name}`);
    if (!inst) return this.notFound(res, `projects/${this.o.project}/zones/${zone}/instances/${name}`);
    if (!action && method === 'GET') return this.json(res, 200, this.view(inst));
    if (action === 'serialPort' && method === 'GET') {
      void this.serialPort(inst).then((contents) => {
        this.json(res, 200, { kind: 'compute#serialPortOutput', contents, start: '0', next: String(Buffer.byteLength(contents)), selfLink: `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}/serialPort` });
      }, (e: unknown) => {
        this.error(res, 500, 'internalError', (e as Error).message);
      });
      return;
    }
    const reuse = this.sameRequest(q.get('requestId'));
    if (reuse) return this.json(res, 200, this.opView(reuse));
    if (!action && method === 'DELETE') {
      return this.operation(res, zone, 'delete', inst, q.get('requestId'), 300, () => {
        this.kill(inst, true);
        this.instances.delete(`${zone}/${name}`);
      });
    }
    if (action === 'stop' && method === 'POST') {
      inst.status = 'STOPPING';
      return this.operation(res, zone, 'stop', inst, q.get('requestId'), this.o.stopMs ?? 300, () => {
        this.kill(inst);
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
        this.boot(inst);
      });
    }
    if (action === 'setMachineType' && method === 'POST') {
      const mt = typeof body.machineType === 'string' ? body.machineType : '';
      const short = mt.split('/').pop() ?? '';
      if (inst.status !== 'TERMINATED') return this.error(res, 400, 'invalidResourceUsage', `Invalid resource usage: 'The instance '${name}' must be stopped before its machine type can be changed (it is ${inst.status}).'`);
      if (!MACHINE_TYPE.test(short)) return this.error(res, 400, 'invalid', `Invalid value for field 'resource.machineType': '${mt}'. Machine type with name '${short}' does not exist in zone '${zone}'.`);
      inst.body = { ...inst.body, machineType: mt };
      return this.operation(res, zone, 'setMachineType', inst, q.get('requestId'), 100);
    }
    if (action === 'setScheduling' && method === 'POST') {
      if (inst.status !== 'TERMINATED') return this.error(res, 400, 'invalidResourceUsage', `Invalid resource usage: 'The instance '${name}' must be stopped before its scheduling can be changed (it is ${inst.status}).'`);
      const bad = schedulingError(body);
      if (bad) return this.error(res, 400, 'invalid', bad);
      inst.body = { ...inst.body, scheduling: body };
      return this.operation(res, zone, 'setScheduling', inst, q.get('requestId'), 100);
    }
    if (action === 'setLabels' && method === 'POST') {
      if (body.labelFingerprint !== inst.labelFingerprint) return this.error(res, 412, 'conditionNotMet', 'Labels fingerprint either invalid or resource labels have changed');
      const labels = (body.labels ?? {}) as Record<string, string>;
      const bad = this.badLabels(labels);
      if (bad) return this.error(res, 400, 'invalid', bad);
      inst.labels = labels;
      inst.labelFingerprint = Buffer.from(String(Date.now() + Math.random())).toString('base64');
      return this.operation(res, zone, 'setLabels', inst, q.get('requestId'), 0);
    }
    return this.error(res, 405, 'methodNotAllowed', 'Method not allowed');
  }

  /** A boot disk: get, and resize (only upward, as GCE; allowed on a running instance too, as GCE). */
  private disk(method: string, zone: string, name: string, action: string | undefined, requestId: string | null, body: Record<string, unknown>, res: ServerResponse): void {
    const inst = [...this.instances.values()].find((i) => i.zone === zone && i.bootDisk === name);
    const link = `${BASE}/projects/${this.o.project}/zones/${zone}/disks/${name}`;
    if (!inst) return this.notFound(res, `projects/${this.o.project}/zones/${zone}/disks/${name}`);
    if (!action && method === 'GET') {
      return this.json(res, 200, { kind: 'compute#disk', name, zone: `${BASE}/projects/${this.o.project}/zones/${zone}`, sizeGb: String(inst.diskSizeGb), status: 'READY', users: [`${BASE}/projects/${this.o.project}/zones/${zone}/instances/${inst.name}`], selfLink: link });
    }
    if (action !== 'resize' || method !== 'POST') return this.error(res, 405, 'methodNotAllowed', 'Method not allowed');
    const reuse = this.sameRequest(requestId);
    if (reuse) return this.json(res, 200, this.opView(reuse));
    const size = Number(body.sizeGb);
    if (!Number.isInteger(size) || size <= 0 || size > 65536) return this.error(res, 400, 'invalid', `Invalid value for field 'sizeGb': '${String(body.sizeGb)}'.`);
    if (size <= inst.diskSizeGb) return this.error(res, 400, 'invalid', `Invalid value for field 'sizeGb': '${String(size)}'. New disk size '${String(size)}' GB must be larger than existing size '${String(inst.diskSizeGb)}' GB.`);
    // Applied at once (the operation only reports it): a look right after the operation sees it.
    inst.diskSizeGb = size;
    const op = this.newOp(zone, 'resizeDisk', link, requestId, 100);
    setTimeout(() => { op.status = 'DONE'; }, 100);
    this.json(res, 200, this.opView(op));
  }

  /** Zone and global operations: get, and wait (returns when done or after at most 2 s, as GCE does). */
  private getOperation(method: string, name: string, action: string | undefined, res: ServerResponse): void {
    const op = this.ops.get(name);
    if (!op) return this.notFound(res, `operations/${name}`);
    if (action === 'wait' && method === 'POST') {
      const until = Math.min(op.doneAt, Date.now() + 2_000);
      setTimeout(() => { this.json(res, 200, this.opView(op)); }, Math.max(0, until - Date.now()));
      return;
    }
    this.json(res, 200, this.opView(op));
  }

  /** global/firewalls and global/operations. */
  private global(method: string, r: string[], q: URLSearchParams, body: Record<string, unknown>, res: ServerResponse): void {
    const [b, name, action] = r;
    if (b === 'operations' && name) return this.getOperation(method, name, action, res);
    if (b !== 'firewalls') return this.notFound(res, `global/${r.join('/')}`);
    const link = (n: string) => `${BASE}/projects/${this.o.project}/global/firewalls/${n}`;
    const done = (type: string, n: string) => {
      const reuse = this.sameRequest(q.get('requestId'));
      const op = reuse ?? this.newOp('', type, link(n), q.get('requestId'), 200);
      if (!reuse) setTimeout(() => { op.status = 'DONE'; }, 200);
      this.json(res, 200, this.opView(op));
    };
    const valid = (f: Partial<Firewall>): string | undefined => {
      for (const c of f.sourceRanges ?? []) if (!/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(c)) return `Invalid value for field 'resource.sourceRanges[0]': '${c}'. Must be a CIDR address range that is contained in the network.`;
      for (const t of f.targetTags ?? []) if (!NAME.test(t)) return `Invalid value for field 'resource.targetTags[0]': '${t}'.`;
      return undefined;
    };
    if (!name && method === 'GET') return this.json(res, 200, { kind: 'compute#firewallList', items: [...this.firewalls.values()].map((f) => ({ ...f, kind: 'compute#firewall', selfLink: link(f.name) })) });
    if (!name && method === 'POST') {
      const reuse = this.sameRequest(q.get('requestId'));
      if (reuse) return this.json(res, 200, this.opView(reuse));
      const f = body as unknown as Firewall;
      if (!NAME.test(f.name)) return this.error(res, 400, 'invalid', `Invalid value for field 'resource.name': '${f.name}'.`);
      const bad = valid(f);
      if (bad) return this.error(res, 400, 'invalid', bad);
      if (this.firewalls.has(f.name)) return this.error(res, 409, 'alreadyExists', `The resource 'projects/${this.o.project}/global/firewalls/${f.name}' already exists`);
      this.firewalls.set(f.name, { ...f, direction: f.direction || 'INGRESS' });
      return done('insert', f.name);
    }
    const fw = name ? this.firewalls.get(name) : undefined;
    if (!name || !fw) return this.notFound(res, `projects/${this.o.project}/global/firewalls/${name ?? ''}`);
    if (method === 'GET') return this.json(res, 200, { ...fw, kind: 'compute#firewall', selfLink: link(fw.name) });
    if (method === 'PATCH') {
      const bad = valid(body);
      if (bad) return this.error(res, 400, 'invalid', bad);
      Object.assign(fw, body, { name: fw.name });
      return done('patch', fw.name);
    }
    if (method === 'DELETE') {
      this.firewalls.delete(fw.name);
      return done('delete', fw.name);
    }
    return this.error(res, 405, 'methodNotAllowed', 'Method not allowed');
  }

  private insert(zone: string, requestId: string | null, body: Record<string, unknown>, res: ServerResponse): void {
    const reuse = this.sameRequest(requestId);
    if (reuse) return this.json(res, 200, this.opView(reuse));
    const str = (v: unknown) => (typeof v === 'string' ? v : '');
    const name = str(body.name);
    if (!NAME.test(name)) return this.error(res, 400, 'invalid', `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`);
    const mt = str(body.machineType).split('/').pop() ?? '';
    if (!MACHINE_TYPE.test(mt)) return this.error(res, 400, 'invalid', `Invalid value for field 'resource.machineType': '${str(body.machineType)}'. Machine type with name '${mt}' does not exist in zone '${zone}'.`);
    const disks = (body.disks ?? []) as { initializeParams?: { sourceImage?: string; diskSizeGb?: string | number; diskName?: string } }[];
    const image = disks[0]?.initializeParams?.sourceImage ?? '';
    const imagePath = image.replace(`${BASE}/`, '');
    if (!this.images.has(imagePath)) return this.error(res, 404, 'notFound', `The resource '${imagePath}' was not found`);
    const labels = (body.labels ?? {}) as Record<string, string>;
    const bad = this.badLabels(labels) ?? schedulingError(schedulingOf(body));
    if (bad) return this.error(res, 400, 'invalid', bad);
    if (this.instances.has(`${zone}/${name}`)) return this.error(res, 409, 'alreadyExists', `The resource 'projects/${this.o.project}/zones/${zone}/instances/${name}' already exists`);
    if (this.faults.exhaustedZones?.has(zone) || this.faults.quotaExceeded) {
      const [code, message] = this.faults.quotaExceeded
        ? ['QUOTA_EXCEEDED', "Quota 'CPUS' exceeded.  Limit: 24.0 in region " + zone.replace(/-[a-z]$/, '') + '.']
        : ['ZONE_RESOURCE_POOL_EXHAUSTED', `The zone 'projects/${this.o.project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`];
      const op = this.newOp(zone, 'insert', `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}`, requestId, 100);
      op.error = { errors: [{ code, message }] };
      op.httpErrorStatusCode = code === 'QUOTA_EXCEEDED' ? 403 : 503;
      op.httpErrorMessage = code === 'QUOTA_EXCEEDED' ? 'FORBIDDEN' : 'SERVICE UNAVAILABLE';
      return this.json(res, 200, this.opView(op));
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
    const c = this.o.containers;
    if (c) {
      const tag = c.images[imagePath];
      const script = ((body.metadata as { items?: { key: string; value: string }[] } | undefined)?.items ?? []).find((x) => x.key === 'startup-script')?.value ?? '';
      this.machine(inst, () => c.vms.create({ name: this.containerName(inst), image: tag ?? imagePath, network: c.network, ip: inst.networkIP, kind: 'gce', instanceId: inst.id, userData: script }));
    }
    const bootMs = this.o.bootMs ?? 300;
    setTimeout(() => {
      if (inst.status === 'PROVISIONING') inst.status = 'STAGING';
    }, bootMs / 2);
    this.operation(res, zone, 'insert', inst, requestId, bootMs, () => {
      if (this.instances.get(`${zone}/${name}`) !== inst || inst.status === 'TERMINATED') return;
      inst.status = 'RUNNING';
      inst.lastStartTimestamp = new Date().toISOString();
      this.boot(inst);
    });
  }

  private badLabels(labels: Record<string, string>): string | undefined {
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL_KEY.test(k)) return `Invalid value for field 'resource.labels': '${k}'. Label keys must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-'.`;
      if (!LABEL_VALUE.test(v)) return `Invalid value for field 'resource.labels': '${v}'. Label values may contain only lowercase letters, digits, '_' and '-'.`;
    }
    return undefined;
  }

  /** The subset of the list filter syntax our provider uses: `labels.k = "v"` terms joined by AND. */
  private filter(list: Inst[], filter: string | null): Inst[] {
    if (!filter) return list;
    const terms = [...filter.matchAll(/labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?/g)].map((m) => [m[1] ?? '', m[2] ?? ''] as const);
    return list.filter((i) => terms.every(([k, v]) => i.labels[k] === v));
  }

  private sameRequest(requestId: string | null): Op | undefined {
    return requestId ? this.requestIds.get(requestId) : undefined;
  }

  private newOp(zone: string, type: string, targetLink: string, requestId: string | null, ms: number): Op {
    const op: Op = {
      id: String(this.nextId++),
      name: `operation-${Date.now()}-${Math.random().toString(16).slice(2, 10)}`,
      zone,
      operationType: type,
      targetLink,
      status: ms > 0 ? 'RUNNING' : 'DONE',
      insertTime: new Date().toISOString(),
      doneAt: Date.now() + ms,
    };
    this.ops.set(op.name, op);
    if (requestId) this.requestIds.set(requestId, op);
    return op;
  }

  private operation(res: ServerResponse, zone: string, type: string, inst: Inst, requestId: string | null, ms: number, after?: () => void): void {
    const op = this.newOp(zone, type, `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${inst.name}`, requestId, ms);
    op.after = after;
    if (ms <= 0) after?.();
    else setTimeout(() => {
      op.status = 'DONE';
      op.after?.();
    }, ms);
    this.json(res, 200, this.opView(op));
  }

  private opView(op: Op): Record<string, unknown> {
    const done = op.status === 'DONE' || Date.now() >= op.doneAt;
    return {
      kind: 'compute#operation',
      id: op.id,
      name: op.name,
      ...(op.zone ? { zone: `${BASE}/projects/${this.o.project}/zones/${op.zone}` } : {}),
      operationType: op.operationType,
      targetLink: op.targetLink,
      ...(op.targetId ? { targetId: op.targetId } : {}),
      ...(op.user ? { user: op.user } : {}),
      status: done ? 'DONE' : op.status,
      progress: done ? 100 : 50,
      insertTime: op.insertTime,
      selfLink: `${BASE}/projects/${this.o.project}/${op.zone ? `zones/${op.zone}` : 'global'}/operations/${op.name}`,
      ...(op.error ? { error: op.error, httpErrorStatusCode: op.httpErrorStatusCode, httpErrorMessage: op.httpErrorMessage } : {}),
    };
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

  /** zoneOperations.list with the filter terms spot.ts understands. */
  private listOperations(zone: string, filter: string | null, res: ServerResponse): void {
    const match = operationFilter(filter);
    if (typeof match === 'string') return this.error(res, 400, 'invalid', match);
    const items = [...this.ops.values()].filter((op) => op.zone === zone).map((op) => this.opView(op)).filter(match);
    this.json(res, 200, { kind: 'compute#operationList', id: `projects/${this.o.project}/zones/${zone}/operations`, items });
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
    const op = this.newOp(zone, PREEMPTED_OPERATION, `${BASE}/projects/${this.o.project}/zones/${zone}/instances/${name}`, null, ms);
    op.targetId = inst.id;
    op.user = 'system';
    inst.status = 'STOPPING';
    setTimeout(() => {
      op.status = 'DONE';
      if (terminationAction(s) === 'DELETE') {
        this.kill(inst, true);
        this.instances.delete(`${zone}/${name}`);
        return;
      }
      this.kill(inst);
      inst.status = 'TERMINATED';
      inst.lastStopTimestamp = new Date().toISOString();
    }, ms);
  }

  // --- booting instances: local processes, or containers --------------------------------------

  private containerName(i: Inst): string {
    return `${this.o.containers?.namePrefix ?? 'gce'}-${i.name}`;
  }

  /** Container mode: runs `step` after the instance's earlier Docker actions (errors are logged). */
  private machine(i: Inst, step: () => Promise<void>): void {
    i.machine = (i.machine ?? Promise.resolve()).then(step).catch((e: unknown) => {
      process.stderr.write(`gce fake: instance ${i.name}: ${(e as Error).message}\n`);
    });
  }

  /** What the instance printed on its serial port 1 (the startup script's output). */
  private async serialPort(i: Inst): Promise<string> {
    const c = this.o.containers;
    if (c) return c.vms.console(this.containerName(i)).catch(() => ''); // not created yet: nothing printed
    const root = this.o.startupScripts ? join(this.o.startupScripts.rootDir, i.name) : undefined;
    try {
      return root ? readFileSync(join(root, 'console.log'), 'utf8').slice(-64 * 1024) : '';
    } catch {
      return '';
    }
  }

  private boot(i: Inst): void {
    const c = this.o.containers;
    if (c) return this.machine(i, () => c.vms.start(this.containerName(i)));
    const s = this.o.startupScripts;
    if (!s || i.pgid) return;
    const items = ((i.body.metadata as { items?: { key: string; value: string }[] } | undefined)?.items ?? []);
    const script = items.find((x) => x.key === 'startup-script')?.value;
    if (!script) return;
    const root = join(s.rootDir, i.name);
    mkdirSync(join(root, 'home'), { recursive: true });
    writeFileSync(join(root, 'startup.sh'), script, { mode: 0o700 });
    const log = openSync(join(root, 'console.log'), 'a');
    const child = spawn('bash', [join(root, 'startup.sh')], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH, HOME: join(root, 'home'), GITSPACES_ROOT: root, GITSPACES_AGENT: s.agentCommand.join(' '), GITSPACES_LISTEN_ADDRESS: i.networkIP, GITSPACES_HOME: join(root, 'home'), GITSPACES_AGENT_USER: 'self' },
    });
    closeSync(log);
    child.unref();
    i.pgid = child.pid;
  }

  /** Powers the instance off (stop) or, with `remove`, deletes it with its disk. */
  private kill(i: Inst, remove = false): void {
    const c = this.o.containers;
    if (c) {
      const name = this.containerName(i);
      return this.machine(i, () => (remove ? c.vms.remove(name) : c.vms.stop(name)));
    }
    if (!i.pgid) return;
    try {
      process.kill(-i.pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
    i.pgid = undefined;
  }

  /** Waits for every instance's Docker actions (container mode), e.g. before removing the network. */
  async settled(): Promise<void> {
    await Promise.all([...this.instances.values()].map((i) => i.machine ?? Promise.resolve()));
  }

  /** Removes the booted instances' directories (their disks). */
  wipe(): void {
    if (this.o.startupScripts) rmSync(this.o.startupScripts.rootDir, { recursive: true, force: true });
  }

  // --- responses ---------------------------------------------------------------------------------

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(body));
  }

  private error(res: ServerResponse, code: number, reason: string, message: string): void {
    this.json(res, code, { error: { code, message, errors: [{ message, domain: code === 403 || code === 429 ? 'usageLimits' : 'global', reason }] } });
  }

  private notFound(res: ServerResponse, what: string): void {
    this.error(res, 404, 'notFound', `The resource '${what}' was not found`);
  }
}
