// Wires the operator: informers, the runner and infra controllers, and the manager that runs them.
// Concrete providers come in through `providerFor` (the CLI chooses them), so this stays cloud-free.
import { Counter, Gauge } from 'prom-client';
import { LABELS, MANAGED_BY, type Gitspace, type GitspaceInfra } from '../api/index.ts';
import { InstrumentedProvider } from '../providers/instrumented.ts';
import type { VmProvider } from '../providers/types.ts';
import { Controller } from '../runtime/controller.ts';
import { EventRecorder } from '../runtime/events.ts';
import { Informer, keyOf } from '../runtime/informer.ts';
import type { KubeClient, KubeObject } from '../runtime/kube.ts';
import type { Logger } from '../runtime/log.ts';
import { Manager, type ManagerOptions } from '../runtime/manager.ts';
import { InfraReconciler } from './infra/reconciler.ts';
import { OrphanSweeper, type SweepOptions } from './sweep/orphans.ts';
import { GITSPACE_INFRAS, GITSPACES, NAMESPACES, SECRETS } from './resources.ts';
import { costMetrics } from './cost-metrics.ts';
import { Delegate } from './delegate/delegate.ts';
import { WarmPool } from './pool/warm-pool.ts';
import { Enrolment, type EnrolmentDeps } from './enrolment.ts';
import { probeAgent, type AgentClaim, type AgentProbe } from './runner/agent-probe.ts';
import { InstanceObserver } from './runner/observer.ts';
import { RunnerReconciler, type ProviderFor, type Secret } from './runner/reconciler.ts';

export const OPERATOR_VERSION = '0.1.0';

export interface OperatorOptions {
  client: KubeClient;
  log: Logger;
  providerFor: ProviderFor;
  probe?: AgentProbe;
  workers?: number;
  healthPort?: number;
  leaderElection?: ManagerOptions['leaderElection'];
  identity?: string;
  onLostLeadership?: () => void;
  resyncMs?: number;
  /** The clock (tests move it to exercise idle timeouts). */
  now?: () => number;
  /** Orphan sweep; default every 5 minutes for VMs older than 15 minutes. */
  sweep?: SweepOptions | false;
  /** The operator's namespace (the enrolment key's Secret lives there). */
  namespace?: string;
  /** The agent bundles VMs download (version, sha256 per architecture); without, images must bring the agent. */
  agentBundle?: EnrolmentDeps['bundle'];
  /** Hands an unclaimed VM its Gitspace (tests replace it with their agent double). */
  claim?: AgentClaim;
  /** How old a shared instance list may be (default 1 s). */
  observeIntervalMs?: number;
  /** The gateway's URL inside the cluster, whose /readyz the infras' GatewayReady reports. */
  gatewayURL?: string;
  /** Sync with a control plane (the delegate controller); off when unset. */
  delegate?: { url: string; token: string; namespace: string; name: string; pollSeconds?: number };
}

export interface Operator {
  manager: Manager;
  runner: Controller;
  infra: Controller;
  gitspaces: Informer<Gitspace>;
  infras: Informer<GitspaceInfra>;
  delegate?: Delegate;
}

export function createOperator(o: OperatorOptions): Operator {
  const manager = new Manager({
    client: o.client,
    log: o.log,
    ...(o.leaderElection ? { leaderElection: o.leaderElection } : {}),
    ...(o.identity ? { identity: o.identity } : {}),
    ...(o.healthPort !== undefined ? { healthPort: o.healthPort } : {}),
    ...(o.onLostLeadership ? { onLostLeadership: o.onLostLeadership } : {}),
  });
  const onError = (e: unknown) => {
    o.log.warn('watch failed; reconnecting', { error: e });
  };
  const resyncMs = o.resyncMs ?? 10 * 60_000;
  const gitspaces = manager.addInformer(new Informer<Gitspace>(o.client, GITSPACES, { resyncMs, onError }));
  const infras = manager.addInformer(new Informer<GitspaceInfra>(o.client, GITSPACE_INFRAS, { resyncMs, onError }));
  // Only the operator's own key Secrets (enrolment, hop): no Secret of a tenant is listed or watched.
  const secrets = manager.addInformer(new Informer<Secret>(o.client, SECRETS, { namespace: o.namespace ?? 'default', labelSelector: `${LABELS.managedBy}=${MANAGED_BY}`, onError }));
  const namespaces = manager.addInformer(new Informer<KubeObject>(o.client, NAMESPACES, { onError }));
  const events = new EventRecorder(o.client, 'gitspaces.dev/operator', manager.identity, o.log);

  // Every provider goes through one rate-limited, counted wrapper (kept per provider instance, so
  // its token buckets persist across reconciles).
  const calls = new Counter({
    name: 'gitspaces_provider_operations_total',
    help: 'VM provider operations by provider, operation and outcome',
    labelNames: ['provider', 'operation', 'outcome'],
    registers: [manager.metrics.registry],
  });
  const wrapped = new WeakMap<VmProvider, VmProvider>();
  const providerFor = async (infra: GitspaceInfra): Promise<VmProvider> => {
    const inner = await o.providerFor(infra);
    let w = wrapped.get(inner);
    if (!w) wrapped.set(inner, (w = new InstrumentedProvider(inner, { calls })));
    return w;
  };

  const probe = o.probe ?? probeAgent;
  // One list of instances per infra per interval, shared by the runner and the warm pool.
  const observer = new InstanceObserver(o.observeIntervalMs ?? 1_000);
  // The infra controller is built after the pool; settled creates reach it through this.
  const infraRef: { controller?: Controller } = {};
  const enrolment = new Enrolment({ client: o.client, secrets, namespace: o.namespace ?? 'default', ...(o.agentBundle ? { bundle: o.agentBundle } : {}) });
  const pool = new WarmPool({
    gitspaces, enrolment, observer, probe, log: o.log.child({ component: 'pool' }),
    ...(o.now ? { now: o.now } : {}),
    onSettled: (name) => {
      infraRef.controller?.queue.add(name);
    },
  });
  manager.onStop(() => pool.drain());

  const cost = costMetrics(manager.metrics.registry, gitspaces, o.now);
  manager.onStop(() => { cost.stop(); return Promise.resolve(); });
  const runner = manager.addController(
    new Controller({
      name: 'gitspace',
      workers: o.workers ?? 4,
      metrics: manager.metrics,
      log: o.log.child({ controller: 'gitspace' }),
      reconciler: new RunnerReconciler({
        client: o.client, gitspaces, infras, namespaces, providerFor, probe, pool, enrolment, observer, events, log: o.log, ...(o.claim ? { claim: o.claim } : {}), ...(o.now ? { now: o.now } : {}),
        cost,
      }),
    }),
  );
  runner.watch(gitspaces);
  runner.watch(infras, (infra) => gitspaces.list().filter((g) => g.spec.infraRef.name === infra.metadata.name).map(keyOf));
  // A namespace's labels decide which infras it may use.
  runner.watch(namespaces, (n) => gitspaces.list().filter((g) => g.metadata.namespace === n.metadata.name).map(keyOf));

  const infra = manager.addController(
    new Controller({
      name: 'gitspaceinfra',
      workers: 1,
      metrics: manager.metrics,
      log: o.log.child({ controller: 'gitspaceinfra' }),
      reconciler: new InfraReconciler({
        client: o.client, infras, gitspaces, providerFor, events, pool,
        gateway: { client: o.client, namespace: o.namespace ?? 'default', ...(o.gatewayURL ? { gatewayURL: o.gatewayURL } : {}), ...(o.now ? { now: o.now } : {}) },
      }),
    }),
  );
  infraRef.controller = infra;
  infra.watch(infras);
  // Phase counts: coalesce bursts of Gitspace changes into one infra status write per second.
  infra.watch(gitspaces, (g) => [g.spec.infraRef.name], 1_000);

  if (o.sweep !== false) {
    const deleted = new Counter({ name: 'gitspaces_orphans_deleted_total', help: 'VMs deleted by the orphan sweep', labelNames: ['provider'], registers: [manager.metrics.registry] });
    const sweeper = new OrphanSweeper({ infras, gitspaces, providerFor, events, log: o.log.child({ component: 'sweep' }), deleted }, o.sweep ?? { intervalMs: 5 * 60_000, graceMs: 15 * 60_000 });
    manager.onLeading(() => { sweeper.start(); });
    manager.onStop(() => sweeper.stop());
  }

  // Gitspaces by phase, computed from the cache when scraped.
  new Gauge({
    name: 'gitspaces_instances',
    help: 'Gitspaces by phase',
    labelNames: ['phase'],
    registers: [manager.metrics.registry],
    collect() {
      this.reset();
      for (const g of gitspaces.list()) this.inc({ phase: g.status?.phase ?? 'Pending' });
    },
  });
  let delegate: Delegate | undefined;
  if (o.delegate) {
    const d = new Delegate({ ...o.delegate, version: OPERATOR_VERSION, client: o.client, gitspaces, infras, namespaces, log: o.log.child({ controller: 'delegate' }) });
    // Only the leader talks to the control plane: one delegate per cluster, whatever the replicas.
    manager.onLeading(() => {
      void Promise.all([gitspaces.waitForSync(), infras.waitForSync(), namespaces.waitForSync()]).then(() => { d.start(); });
    });
    manager.onStop(() => d.stop());
    delegate = d;
  }
  return { manager, runner, infra, gitspaces, infras, ...(delegate ? { delegate } : {}) };
}
