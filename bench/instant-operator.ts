// The real operator with an instant-boot provider double and an always-ready agent probe, for the
// reconcile benchmark only: VMs "boot" at once, so what is measured is the controller and the API.
// On SIGTERM it prints one JSON line of counters (API calls by verb, reconciles, peak RSS).
import { readFileSync } from 'node:fs';
import type { AgentHealth } from '../src/api/index.ts';
import { createOperator } from '../src/controllers/operator.ts';
import type { CreateRequest, Instance, VmProvider } from '../src/providers/types.ts';
import { KubeClient } from '../src/runtime/kube.ts';
import { createLogger } from '../src/runtime/log.ts';

class InstantProvider implements VmProvider {
  readonly kind = 'local' as const;
  private readonly vms = new Map<string, Instance>();
  private next = 1;
  find(name: string): Promise<Instance | undefined> {
    return Promise.resolve(this.vms.get(name));
  }
  create(req: CreateRequest): Promise<Instance> {
    const existing = this.vms.get(req.name);
    if (existing) return Promise.resolve(existing);
    const n = this.next++;
    const inst: Instance = { id: req.name, name: req.name, zone: 'bench', state: 'running', privateIP: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, agentPort: 47100, machineType: req.machineType.providerType, createdAt: new Date().toISOString(), labels: req.labels };
    this.vms.set(req.name, inst);
    return Promise.resolve(inst);
  }
  start(inst: Instance): Promise<void> {
    const v = this.vms.get(inst.name);
    if (v) v.state = 'running';
    return Promise.resolve();
  }
  stop(inst: Instance): Promise<void> {
    const v = this.vms.get(inst.name);
    if (v) v.state = 'stopped';
    return Promise.resolve();
  }
  delete(inst: Instance): Promise<void> {
    this.vms.delete(inst.name);
    return Promise.resolve();
  }
  listOwned(): Promise<Instance[]> {
    return Promise.resolve([...this.vms.values()]);
  }
}

const ready: AgentHealth = {
  state: 'ready', restart: false, steps: [], ide: { type: 'ssh', ready: true }, checkout: '/home/gitspace/repo',
  forwardPorts: [], devcontainer: { found: false, notApplied: [], containerBuild: 'skipped' }, lastActivityTime: new Date().toISOString(),
};

const client = KubeClient.fromDefault();
const provider = new InstantProvider();
const workers = Number(process.argv[2] ?? 16);
const op = createOperator({
  client,
  log: createLogger({ component: 'bench-operator' }, 'warn'),
  providerFor: () => provider,
  probe: () => Promise.resolve({ ok: true, health: ready }),
  workers,
});
process.once('SIGTERM', () => {
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const stats = { calls: Object.fromEntries(client.calls), reconciles: op.runner.counts, infraReconciles: op.infra.counts, peakRssMB: Math.round(Number(hwm ?? 0) / 1024) };
  process.stdout.write(JSON.stringify(stats) + '\n');
  void op.manager.stop().then(() => process.exit(0));
});
await op.manager.start();
await Promise.all([op.gitspaces.waitForSync(), op.infras.waitForSync()]);
process.stdout.write('ready\n');
