// The route table: which Gitspace a request is for, from the Host (`<name>--<namespace>.<domain>`)
// or the path (`/gitspaces/<namespace>/<name>/…`), and where its agent is. Everything comes from
// the Gitspaces' own status (`status.route`), kept current by an informer: a route changes within
// the watch latency of the status change, and no upstream a client names is ever dialled.
import type { Gitspace, GitspaceInfra, Phase } from '../api/index.ts';
import { gitspaceHost, HOP_SECRET_KEY, hopSecretName } from '../api/index.ts';
import { keyOf, type Informer } from '../runtime/informer.ts';
import type { KubeObject } from '../runtime/kube.ts';

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export interface Target {
  key: string;
  namespace: string;
  name: string;
  infra: string;
  owner: string;
  sharedWith: string[];
  phase: Phase;
  /** The agent, when the Gitspace is Running. */
  upstream?: { host: string; port: number };
  /** The per-Gitspace secret the agent requires, when the runner has created it. */
  secret?: string;
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
  /** A forwarded port's host (`<port>--<name>--<namespace>.<domain>`): which port, who may use it. */
  port?: { number: number; visibility: PortVisibility };
}

export type PortVisibility = 'private' | 'shared' | 'public';

const PATH_PREFIX = /^\/gitspaces\/([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9]*)(\/.*)?$/;

/** Only `http://<IPv4 or DNS name>:<port>` is accepted as an upstream (what the runner writes). */
function parseUpstream(u: string | undefined): Target['upstream'] {
  if (!u) return undefined;
  const m = /^http:\/\/([0-9a-z.-]+):(\d{1,5})$/.exec(u);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65_536 ? { host: m[1] ?? '', port } : undefined;
}

/** Lower case, no port, no trailing dot. */
export function normaliseHost(h: string | undefined): string {
  return (h ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
}

export class RouteTable {
  private readonly gitspaces: Informer<Gitspace>;
  private readonly infras: Informer<GitspaceInfra>;
  private readonly secrets: Informer<SecretObject>;
  private readonly hosts = new Map<string, string>();
  private readonly hostOf = new Map<string, string>();
  /** Forwarded ports' hosts → Gitspace key and port, and each Gitspace's port hosts. */
  private readonly portHosts = new Map<string, { key: string; port: number; visibility: PortVisibility }>();
  private readonly portHostsOf = new Map<string, string[]>();

  constructor(gitspaces: Informer<Gitspace>, infras: Informer<GitspaceInfra>, secrets: Informer<SecretObject>) {
    this.gitspaces = gitspaces;
    this.infras = infras;
    this.secrets = secrets;
    const index = (g: Gitspace) => {
      const key = keyOf(g);
      const old = this.hostOf.get(key);
      const host = this.hostFor(g);
      if (old && old !== host) this.hosts.delete(old);
      if (host) {
        this.hosts.set(host, key);
        this.hostOf.set(key, host);
      }
      this.unindexPorts(key);
      const ports = (g.status?.route?.ports ?? []).map((p) => ({ host: normaliseHost(p.host), port: p.port, visibility: p.visibility ?? 'private' }));
      for (const p of ports) this.portHosts.set(p.host, { key, port: p.port, visibility: p.visibility });
      if (ports.length) this.portHostsOf.set(key, ports.map((p) => p.host));
    };
    gitspaces.on({
      add: index,
      update: (_, g) => {
        index(g);
      },
      delete: (g) => {
        const key = keyOf(g);
        this.targets.delete(key);
        const host = this.hostOf.get(key);
        if (host && this.hosts.get(host) === key) this.hosts.delete(host);
        this.hostOf.delete(key);
        this.unindexPorts(key);
      },
    });
    // An infra that appears (the informers sync in parallel) or changes its domain re-derives the
    // hosts of its Gitspaces.
    const reindex = (i: GitspaceInfra) => {
      for (const g of gitspaces.list()) if (g.spec.infraRef.name === i.metadata.name) index(g);
    };
    infras.on({ add: reindex, update: (_, i) => { reindex(i); } });
  }

  private unindexPorts(key: string): void {
    for (const h of this.portHostsOf.get(key) ?? []) if (this.portHosts.get(h)?.key === key) this.portHosts.delete(h);
    this.portHostsOf.delete(key);
  }

  private hostFor(g: Gitspace): string | undefined {
    const fromStatus = g.status?.route?.host;
    if (fromStatus) return normaliseHost(fromStatus);
    const domain = this.infras.get(g.spec.infraRef.name)?.spec.gateway.domain;
    return domain ? gitspaceHost(g.metadata.name ?? '', g.metadata.namespace ?? '', domain) : undefined;
  }

  /** Targets by Gitspace and its resourceVersion (and its Secret's): built once per change. */
  private readonly targets = new Map<string, { version: string; target: Target }>();

  private target(g: Gitspace): Target {
    const key = keyOf(g);
    const s = this.secrets.get(`${g.metadata.namespace ?? ''}/${hopSecretName(g.metadata.name ?? '')}`);
    const version = `${g.metadata.resourceVersion ?? ''}/${s?.metadata.resourceVersion ?? ''}`;
    const hit = this.targets.get(key);
    if (hit?.version === version) return hit.target;
    const target = this.buildTarget(g, s);
    this.targets.set(key, { version, target });
    return target;
  }

  private buildTarget(g: Gitspace, hopSecret: SecretObject | undefined): Target {
    const ns = g.metadata.namespace ?? '';
    const name = g.metadata.name ?? '';
    const phase = g.status?.phase ?? 'Pending';
    const upstream = phase === 'Running' ? parseUpstream(g.status?.route?.upstream) : undefined;
    // Only a Secret the Gitspace owns counts (decoded once per version: targets are cached by it).
    const raw = hopSecret?.metadata.ownerReferences?.some((o) => o.uid === g.metadata.uid) ? hopSecret.data?.[HOP_SECRET_KEY] : undefined;
    const secret = raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
    return {
      key: `${ns}/${name}`, namespace: ns, name, infra: g.spec.infraRef.name, owner: g.spec.owner, sharedWith: g.spec.sharedWith ?? [], phase,
      ...(upstream ? { upstream } : {}), ...(secret ? { secret } : {}),
    };
  }

  /** The Gitspace this request is for, or undefined (not ours: the gateway's own endpoints, or 404). */
  match(host: string, path: string): Match | undefined {
    const port = this.portHosts.get(host);
    if (port) {
      const g = this.gitspaces.get(port.key);
      if (!g) return undefined;
      // Public only while the infra allows public ports (the runner says so too; this is the gate).
      const visibility = port.visibility === 'public' && !this.infras.get(g.spec.infraRef.name)?.spec.gateway.allowPublicPorts ? 'shared' : port.visibility;
      return { target: this.target(g), path, cookiePath: '/', kind: 'port', host, port: { number: port.port, visibility } };
    }
    const byHost = this.hosts.get(host);
    if (byHost) {
      const g = this.gitspaces.get(byHost);
      if (g) return { target: this.target(g), path, cookiePath: '/', kind: 'host', host };
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
