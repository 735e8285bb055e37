// The GCE fake's global/firewalls: insert, get, list, patch and delete, each change answered with a
// global operation; names, source ranges and target tags are checked as GCE checks them.
import type { ServerResponse } from 'node:http';
import type { Operations } from './operations.ts';
import { BASE, error, json, notFound } from './responses.ts';
import { NAME } from './validation.ts';

export interface Firewall {
  name: string;
  network: string;
  direction: string;
  sourceRanges: string[];
  targetTags: string[];
  allowed: { IPProtocol: string; ports?: string[] }[];
  description?: string;
}

function invalid(f: Partial<Firewall>): string | undefined {
  for (const c of f.sourceRanges ?? []) if (!/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(c)) return `Invalid value for field 'resource.sourceRanges[0]': '${c}'. Must be a CIDR address range that is contained in the network.`;
  for (const t of f.targetTags ?? []) if (!NAME.test(t)) return `Invalid value for field 'resource.targetTags[0]': '${t}'.`;
  return undefined;
}

export class FirewallApi {
  private readonly project: string;
  private readonly firewalls: Map<string, Firewall>;
  private readonly ops: Operations;

  /** `firewalls` is the fake's own map, which tests read. */
  constructor(project: string, firewalls: Map<string, Firewall>, ops: Operations) {
    this.project = project;
    this.firewalls = firewalls;
    this.ops = ops;
  }

  /** A request to global/firewalls, or to global/firewalls/{name} when `name` is given. */
  handle(method: string, name: string | undefined, requestId: string | null, body: Record<string, unknown>, res: ServerResponse): void {
    const link = (n: string) => `${BASE}/projects/${this.project}/global/firewalls/${n}`;
    const done = (type: string, n: string) => {
      this.ops.send(res, this.ops.byRequest(requestId) ?? this.ops.run('', type, link(n), requestId, 200));
    };
    if (!name && method === 'GET') return json(res, 200, { kind: 'compute#firewallList', items: [...this.firewalls.values()].map((f) => ({ ...f, kind: 'compute#firewall', selfLink: link(f.name) })) });
    if (!name && method === 'POST') {
      const reuse = this.ops.byRequest(requestId);
      if (reuse) return this.ops.send(res, reuse);
      const f = body as unknown as Firewall;
      if (!NAME.test(f.name)) return error(res, 400, 'invalid', `Invalid value for field 'resource.name': '${f.name}'.`);
      const bad = invalid(f);
      if (bad) return error(res, 400, 'invalid', bad);
      if (this.firewalls.has(f.name)) return error(res, 409, 'alreadyExists', `The resource 'projects/${this.project}/global/firewalls/${f.name}' already exists`);
      this.firewalls.set(f.name, { ...f, direction: f.direction || 'INGRESS' });
      return done('insert', f.name);
    }
    const fw = name ? this.firewalls.get(name) : undefined;
    if (!name || !fw) return notFound(res, `projects/${this.project}/global/firewalls/${name ?? ''}`);
    if (method === 'GET') return json(res, 200, { ...fw, kind: 'compute#firewall', selfLink: link(fw.name) });
    if (method === 'PATCH') {
      const bad = invalid(body);
      if (bad) return error(res, 400, 'invalid', bad);
      Object.assign(fw, body, { name: fw.name });
      return done('patch', fw.name);
    }
    if (method === 'DELETE') {
      this.firewalls.delete(fw.name);
      return done('delete', fw.name);
    }
    return error(res, 405, 'methodNotAllowed', 'Method not allowed');
  }
}
