// The route table: which Gitspace a request is for, from the Host (`<name>--<namespace>.<domain>`,
// a port's `<port>--<name>--<namespace>.<domain>`) or the path (`/gitspaces/<namespace>/<name>/…`),
// and where its agent is. Only derived facts are used: hosts from the name, namespace and the
// infra's domain; ports' numbers and visibility from status; the upstream is the instance's private
// address (checked) on the agent port, and the hop token is derived from the Gitspace's UID. What
// else status says (route.host, ports[].host, route.upstream) is never read: whoever can write a
// Gitspace's status must not be able to take another's host or make the gateway dial anything.
import type { Gitspace, GitspaceInfra, Phase } from '../api/index.ts';
import { AGENT_HTTP_PORT, gitspaceHost, hopToken, isSshHostKey, portHost } from '../api/index.ts';
import { keyOf, type Informer } from '../runtime/informer.ts';
import { dialable } from './addresses.ts';
import type { HopKey } from './hop-key.ts';

export interface Target {
  key: string;
  namespace: string;
  name: string;
  infra: string;
  owner: string;
  sharedWith: string[];
  phase: Phase;
  /** The agent, when the Gitspace is Running on a dialable address. */
  upstream?: { host: string; port: number };
  /** The hop token the agent requires, once the gateway has the hop key. */
  secret?: string;
  /** Its SSH server's public host key (status.sshHostKey, when it is a key line). */
  sshHostKey?: string;
}

export interface Match {
  target: Target;
  /** The path to send upstream (the path prefix stripped for path routes). */
  path: string;
  /** Where a session cookie for this Gitspace applies. */
  cookiePath: string;
  kind: 'host' | 'path' | 'port';
  /** The request's host, normalised. */
  host: string;
  /** A forwarded port's host: which port, who may use it. */
  port?: { number: number; visibility: PortVisibility };
}

export type PortVisibility = 'private' | 'shared' | 'public';

/** What a host stands for: a Gitspace's main host, or one of its forwarded ports. */
interface Claim {
  key: string;
  port?: number;
  visibility?: PortVisibility;
}

const PATH_PREFIX = /^\/gitspaces\/([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9]*)(\/.*)?$/;

/** Lower case, no port, no trailing dot. */
export function normaliseHost(h: string | undefined): string {
  return (h ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
}

export class RouteTable {
  private readonly gitspaces: Informer<Gitspace>;
  private readonly infras: Informer<GitspaceInfra>;
  private readonly hopKey: HopKey;
  /** Host → every Gitspace (or port) that would be served there: more than one is refused. */
  private readonly hosts = new Map<string, Claim[]>();
  private readonly hostsOf = new Map<string, string[]>();
  /** Called once per host that two Gitspaces would share (neither is served there). */
  onConflict: (host: string, keys: string[]) => void = () => undefined;

  constructor(gitspaces: Informer<Gitspace>, infras: Informer<GitspaceInfra>, hopKey: HopKey) {
    this.gitspaces = gitspaces;
    this.infras = infras;
    this.hopKey = hopKey;
    gitspaces.on({
      add: (g) => {
        this.index(g);
      },
      update: (_, g) => {
        this.index(g);
      },
      delete: (g) => {
        this.unindex(keyOf(g));
        this.targets.delete(keyOf(g));
      },
    });
    // An infra that appears (the informers sync in parallel) or changes its domain re-derives the
    // hosts of its Gitspaces.
    const reindex = (i: GitspaceInfra) => {
      for (const g of gitspaces.list()) if (g.spec.infraRef.name === i.metadata.name) this.index(g);
    };
    infras.on({ add: reindex, update: (_, i) => { reindex(i); }, delete: reindex });
  }

  private claims(g: Gitspace): Map<string, Claim> {
    const out = new Map<string, Claim>();
    const infra = this.infras.get(g.spec.infraRef.name);
    const domain = infra?.spec.gateway.domain.toLowerCase();
    if (!infra || !domain) return out;
    const key = keyOf(g);
    const name = g.metadata.name ?? '';
    const ns = g.metadata.namespace ?? '';
    out.set(normaliseHost(gitspaceHost(name, ns, domain)), { key });
    for (const p of g.status?.route?.ports ?? []) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65_535) continue;
      // Public only while the infra allows public ports (the runner says so too; this is the gate).
      const visibility = p.visibility === 'public' && !infra.spec.gateway.allowPublicPorts ? 'shared' : (p.visibility ?? 'private');
      out.set(normaliseHost(portHost(p.port, name, ns, domain)), { key, port: p.port, visibility });
    }
    return out;
  }

  private index(g: Gitspace): void {
    const key = keyOf(g);
    this.unindex(key);
    const mine = this.claims(g);
    for (const [host, claim] of mine) {
      const all = [...(this.hosts.get(host) ?? []), claim];
      this.hosts.set(host, all);
      if (all.length === 2) this.onConflict(host, all.map((c) => c.key));
    }
    this.hostsOf.set(key, [...mine.keys()]);
  }

  private unindex(key: string): void {
    for (const h of this.hostsOf.get(key) ?? []) {
      const left = (this.hosts.get(h) ?? []).filter((c) => c.key !== key);
      if (left.length) this.hosts.set(h, left);
      else this.hosts.delete(h);
    }
    this.hostsOf.delete(key);
  }

  /** Targets by Gitspace, its infra's and the hop key's versions: built once per change. */
  private readonly targets = new Map<string, { version: string; target: Target }>();

  private target(g: Gitspace): Target {
    const key = keyOf(g);
    const infra = this.infras.get(g.spec.infraRef.name);
    const version = `${g.metadata.resourceVersion ?? ''}/${infra?.metadata.resourceVersion ?? ''}/${this.hopKey.version()}`;
    const hit = this.targets.get(key);
    if (hit?.version === version) return hit.target;
    const target = buildTarget(g, infra, this.hopKey.key());
    this.targets.set(key, { version, target });
    return target;
  }

  /** The Gitspace this request is for, or undefined (not ours: the gateway's own endpoints, or 404). */
  match(host: string, path: string): Match | undefined {
    const claims = this.hosts.get(host);
    if (claims) {
      const c = claims.length === 1 ? claims[0] : undefined;
      const g = c ? this.gitspaces.get(c.key) : undefined;
      if (!c || !g) return undefined;
      if (c.port !== undefined) return { target: this.target(g), path, cookiePath: '/', kind: 'port', host, port: { number: c.port, visibility: c.visibility ?? 'private' } };
      return { target: this.target(g), path, cookiePath: '/', kind: 'host', host };
    }
    const m = PATH_PREFIX.exec(path.split('?')[0] ?? '');
    if (!m) return undefined;
    const g = this.gitspaces.get(`${m[1] ?? ''}/${m[2] ?? ''}`);
    if (!g) return undefined;
    const query = path.includes('?') ? path.slice(path.indexOf('?')) : '';
    return { target: this.target(g), path: (m[3] ?? '/') + query, cookiePath: `/gitspaces/${m[1] ?? ''}/${m[2] ?? ''}/`, kind: 'path', host };
  }

  /** Whether the path names a Gitspace route at all (for 404 versus the gateway's own pages). */
  static isGitspacePath(path: string): boolean {
    return path.startsWith('/gitspaces/');
  }

  issuerFor(t: Target): GitspaceInfra['spec']['auth'] {
    return this.infras.get(t.infra)?.spec.auth;
  }

  get size(): number {
    return this.hosts.size;
  }
}

function buildTarget(g: Gitspace, infra: GitspaceInfra | undefined, hopKey: string | undefined): Target {
  const ns = g.metadata.namespace ?? '';
  const name = g.metadata.name ?? '';
  const phase = g.status?.phase ?? 'Pending';
  const ip = g.status?.instance?.privateIP;
  const upstream = phase === 'Running' && ip && dialable(ip, infra?.spec.provider.local !== undefined) ? { host: ip, port: AGENT_HTTP_PORT } : undefined;
  const uid = g.metadata.uid;
  return {
    key: `${ns}/${name}`, namespace: ns, name, infra: g.spec.infraRef.name, owner: g.spec.owner, sharedWith: g.spec.sharedWith ?? [], phase,
    ...(upstream ? { upstream } : {}), ...(hopKey && uid ? { secret: hopToken(hopKey, uid) } : {}),
    ...(isSshHostKey(g.status?.sshHostKey) ? { sshHostKey: g.status.sshHostKey } : {}),
  };
}
