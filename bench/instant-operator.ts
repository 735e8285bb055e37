// The real operator with an instant-boot provider double and an always-ready agent probe, for the
// reconcile benchmark only: VMs "boot" at once, so what is measured is the controller and the API.
// On SIGTERM it prints one JSON line of counters (API calls by verb, reconciles, peak RSS).
import { readFileSync } from 'node:fs';
import { createOperator } from '../src/controllers/operator.ts';
import { KubeClient } from '../src/runtime/kube.ts';
import { createLogger } from '../src/runtime/log.ts';
import { InMemoryProvider, readyHealth } from '../test/support/provider-double.ts';

const client = KubeClient.fromDefault();
const provider = new InMemoryProvider();
const workers = Number(process.argv[2] ?? 16);
const op = createOperator({
  client,
  log: createLogger({ component: 'bench-operator' }, 'warn'),
  providerFor: () => provider,
  probe: () => Promise.resolve({ ok: true, health: readyHealth() }),
  workers,
  // With a control plane (bench:delegate), the delegate controller too.
  ...(process.env.GITSPACES_CONTROL_PLANE_URL
    ? { delegate: { url: process.env.GITSPACES_CONTROL_PLANE_URL, token: process.env.GITSPACES_DELEGATE_TOKEN ?? '', namespace: 'bench', name: 'bench', pollSeconds: 25 } }
    : {}),
});
process.once('SIGTERM', () => {
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const stats = { calls: Object.fromEntries(client.calls), reconciles: op.runner.counts, infraReconciles: op.infra.counts, peakRssMB: Math.round(Number(hwm ?? 0) / 1024), ...(op.delegate ? { controlPlaneCalls: Object.fromEntries(op.delegate.cp.calls) } : {}) };
  process.stdout.write(JSON.stringify(stats) + '\n');
  void op.manager.stop().then(() => process.exit(0));
});
await op.manager.start();
await Promise.all([op.gitspaces.waitForSync(), op.infras.waitForSync()]);
process.stdout.write('ready\n');
