// Metrics for cost: VM time by infra, machine type and namespace (running VMs, accounted every
// minute and at each scrape, from the cache), warm-pool hits and misses, the time from a create or
// start request to Running, VMs of Failed Gitspaces stopped and spot VMs preempted. What a platform
// team charges back and sizes pools with.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Gitspace } from '../api/index.ts';
import type { Informer } from '../runtime/informer.ts';

/** Phases in which the Gitspace's VM is up (and billed). */
const BILLED = new Set(['Starting', 'Running', 'Stopping']);

export interface CostMetrics {
  poolClaims: Counter<'infra' | 'machine_type' | 'result'>;
  timeToReady: Histogram<'infra' | 'pooled'>;
  failedStopped: Counter<'infra'>;
  preemptions: Counter<'infra' | 'machine_type'>;
  stop(): void;
}

export function costMetrics(registry: Registry, gitspaces: Informer<Gitspace>, now: () => number = Date.now): CostMetrics {
  const registers = [registry];
  let last = now();
  // Accounted every minute, and at each scrape so the counter is current.
  const vmSeconds = new Counter({
    name: 'gitspaces_vm_running_seconds_total', help: 'Seconds Gitspace VMs were up (Starting, Running, Stopping), by infra, machine type and namespace', labelNames: ['infra', 'machine_type', 'namespace'], registers,
    collect() {
      account();
    },
  });
  const account = () => {
    const t = now();
    const secs = Math.max(0, (t - last) / 1000);
    last = t;
    if (secs === 0) return;
    for (const g of gitspaces.list()) {
      if (BILLED.has(g.status?.phase ?? '')) vmSeconds.inc({ infra: g.spec.infraRef.name, machine_type: g.spec.machineType, namespace: g.metadata.namespace ?? '' }, secs);
    }
  };
  const timer = setInterval(account, 60_000);
  timer.unref();
  return {
    poolClaims: new Counter({ name: 'gitspaces_pool_claims_total', help: 'Gitspace starts on a machine type with a warm pool: a ready pool VM claimed (hit) or none (miss)', labelNames: ['infra', 'machine_type', 'result'], registers }),
    timeToReady: new Histogram({ name: 'gitspaces_time_to_ready_seconds', help: 'From a create or start request to Running', labelNames: ['infra', 'pooled'], buckets: [5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600], registers }),
    failedStopped: new Counter({ name: 'gitspaces_failed_vms_stopped_total', help: 'VMs of Failed Gitspaces stopped after failedStopAfter (disk kept)', labelNames: ['infra'], registers }),
    preemptions: new Counter({ name: 'gitspaces_preemptions_total', help: 'Spot VMs of Gitspaces the cloud preempted while they ran (stopped, disk kept), by infra and machine type', labelNames: ['infra', 'machine_type'], registers }),
    stop: () => { clearInterval(timer); },
  };
}
