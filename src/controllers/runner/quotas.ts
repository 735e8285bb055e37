// Quotas on an infra (spec.quotas): how many Gitspaces, and how many vCPUs, may run at once per
// namespace and per owner. A start is admitted here, synchronously — count and reserve with no
// await between them — so concurrent reconciles never admit past a quota; the reservation stands
// until the Gitspace's status shows it running (then the informer counts it) or it stops wanting to.
import type { Gitspace, GitspaceInfra } from '../../api/index.ts';
import { keyOf } from '../../runtime/informer.ts';

/** Phases in which a Gitspace holds capacity (its VM is, or is about to be, up). */
const HOLDS = new Set(['Provisioning', 'Starting', 'Running', 'Stopping']);
const RESERVATION_MS = 5 * 60_000;

interface Use {
  key: string;
  namespace: string;
  owner: string;
  vcpus: number;
}

export interface QuotaDeps {
  gitspaces: { list(): Gitspace[] };
  now: () => number;
}

type Limits = NonNullable<NonNullable<GitspaceInfra['spec']['quotas']>['perNamespace']>;

/** What a Gitspace uses of the quota, from the infra's machine type. */
function useOf(g: Gitspace, infra: GitspaceInfra): Use {
  return {
    key: keyOf(g), namespace: g.metadata.namespace ?? '', owner: g.spec.owner,
    vcpus: infra.spec.machineTypes.find((m) => m.name === g.spec.machineType)?.vcpus ?? 0,
  };
}

/** Over which limit `add` would take `uses`; undefined when within all. */
export function exceeded(limits: Limits | undefined, scope: string, uses: Use[], add: Use, infra: string): string | undefined {
  if (!limits) return undefined;
  const running = uses.length;
  const vcpus = uses.reduce((n, u) => n + u.vcpus, 0);
  const names = uses.slice(0, 5).map((u) => u.key.split('/')[1] ?? u.key).join(', ') + (uses.length > 5 ? ', …' : '');
  if (limits.maxRunning !== undefined && running + 1 > limits.maxRunning) {
    return `quota: ${scope} may run ${String(limits.maxRunning)} Gitspace(s) at once on infra "${infra}" and ${String(running)} run${running ? ` (${names})` : ''}; waiting for one to stop`;
  }
  if (limits.maxVCPUs !== undefined && vcpus + add.vcpus > limits.maxVCPUs) {
    return `quota: ${scope} may use ${String(limits.maxVCPUs)} vCPUs at once on infra "${infra}"; ${String(vcpus)} are in use${running ? ` (${names})` : ''} and this Gitspace needs ${String(add.vcpus)}; waiting for capacity`;
  }
  return undefined;
}

export class Quotas {
  private readonly d: QuotaDeps;
  /** Admitted starts not yet visible as running in the cache, by key. */
  private readonly reserved = new Map<string, { infra: string; use: Use; at: number }>();

  constructor(d: QuotaDeps) {
    this.d = d;
  }

  /** Admits a start (and reserves its capacity), or says which quota it would exceed. */
  admit(gs: Gitspace, infra: GitspaceInfra): string | undefined {
    const q = infra.spec.quotas;
    const infraName = infra.metadata.name ?? '';
    const me = useOf(gs, infra);
    if (!q) return undefined;
    const now = this.d.now();
    const uses = new Map<string, Use>();
    for (const g of this.d.gitspaces.list()) {
      if (g.spec.infraRef.name === infraName && HOLDS.has(g.status?.phase ?? '') && !g.metadata.deletionTimestamp) uses.set(keyOf(g), useOf(g, infra));
    }
    for (const [k, r] of this.reserved) {
      if (now - r.at > RESERVATION_MS) this.reserved.delete(k);
      else if (r.infra === infraName && !uses.has(k)) uses.set(k, r.use);
    }
    uses.delete(me.key);
    const all = [...uses.values()];
    const refusal =
      exceeded(q.perNamespace, `namespace "${me.namespace}"`, all.filter((u) => u.namespace === me.namespace), me, infraName) ??
      exceeded(q.perOwner, `owner "${me.owner}"`, all.filter((u) => u.owner === me.owner), me, infraName);
    if (!refusal) this.reserved.set(me.key, { infra: infraName, use: me, at: now });
    return refusal;
  }

  /** The Gitspace no longer needs its reservation (it runs and is counted, stopped, or is gone). */
  release(key: string): void {
    this.reserved.delete(key);
  }
}
