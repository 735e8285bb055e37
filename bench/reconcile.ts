// `npm run bench:reconcile [N …]`: N Gitspaces applied at once against a real API server; the
// operator (real controllers, instant-boot provider double) converges them to Running.
// Prints time to all Running, reconciles/s, API writes per Gitspace and the operator's peak RSS,
// and - measured in the same run on the same apiserver - the time a plain loop needs for the same
// number of writes (the ceiling on this machine), with our time as a ratio to it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gitspace } from '../src/api/index.ts';
import { GITSPACES } from '../src/controllers/resources.ts';
import { Informer } from '../src/runtime/informer.ts';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { TestCluster } from '../test/cluster/cluster.ts';
import { inParallel } from './support/parallel.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const NS = sizes.length ? sizes : [100, 1000, 5000];
const CONCURRENCY = 64;


function gitspace(ns: string, i: number): Gitspace {
  return {
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'Gitspace',
    metadata: { name: `g${i}`, namespace: ns },
    spec: { infraRef: { name: 'bench' }, owner: `user${i}@example.com`, repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small', ide: { type: 'ssh' } },
  };
}

async function runOne(n: number): Promise<Record<string, string | number>> {
  const cluster = await TestCluster.start({});
  try {
    const client = new KubeClient(cluster.access());
    await client.create({ group: 'gitspaces.dev', version: 'v1alpha1', plural: 'gitspaceinfras', namespaced: false }, {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'bench' },
      spec: { provider: { local: {} }, machineTypes: [{ name: 'small', providerType: 'local' }], allowedNamespaces: {}, gateway: { domain: 'bench.localhost' } },
    } as KubeObject);
    for (const ns of ['bench', 'ceiling']) await client.create({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });

    const op = spawn(process.execPath, [join(ROOT, 'bench/instant-operator.ts'), '16'], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    op.stdout.on('data', (d: Buffer) => (out += d.toString()));
    while (!out.includes('ready\n')) await new Promise((r) => setTimeout(r, 50));

    // Watch for Running before applying, so nothing is missed (an informer: it re-watches if the
    // apiserver closes the stream).
    const running = new Set<string>();
    let allRunning!: () => void;
    const done = new Promise<void>((r) => (allRunning = r));
    const watcher = new Informer<Gitspace>(client, GITSPACES, { namespace: 'bench', onError: (e) => { process.stderr.write(`bench watch: ${String(e)}\n`); } });
    const see = (g: Gitspace) => {
      if (g.status?.phase === 'Running') running.add(g.metadata.name ?? '');
      if (running.size === n) allRunning();
    };
    watcher.on({ add: see, update: (_, g) => { see(g); } });
    watcher.start();
    await watcher.waitForSync();

    const t0 = performance.now();
    await inParallel(Array.from({ length: n }, (_, i) => i), CONCURRENCY, (i) => client.create(GITSPACES, gitspace('bench', i)));
    const applied = performance.now() - t0;
    await done;
    const converged = performance.now() - t0;
    watcher.stop();

    op.kill('SIGTERM');
    await new Promise((r) => op.once('exit', r));
    const stats = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { calls: Record<string, number>; reconciles: { success: number; error: number; requeue: number }; peakRssMB: number };
    const writeVerbs = ['POST', 'PUT', 'PATCH', 'PATCH/status', 'PUT/status', 'DELETE'];
    const opWrites = writeVerbs.reduce((s, v) => s + (stats.calls[v] ?? 0), 0);
    const reconciles = stats.reconciles.success + stats.reconciles.error + stats.reconciles.requeue;
    const writesPerGs = (opWrites + n) / n; // + the apply itself
    const statusPerGs = (stats.calls['PATCH/status'] ?? 0) / n;

    // Ceiling: the same number of writes from a plain loop, no controller.
    const perObject = Math.max(1, Math.round(writesPerGs));
    const c0 = performance.now();
    await inParallel(Array.from({ length: n }, (_, i) => i), CONCURRENCY, async (i) => {
      const g = gitspace('ceiling', i);
      await client.create(GITSPACES, g);
      for (let k = 1; k < perObject; k++) await client.patch(GITSPACES, 'ceiling', g.metadata.name ?? '', { status: { phase: 'Provisioning', message: `write ${k}` } }, { subresource: 'status' });
    });
    const ceiling = performance.now() - c0;
    client.close();
    return {
      N: n,
      'apply s': (applied / 1000).toFixed(1),
      'all Running s': (converged / 1000).toFixed(1),
      'reconciles': reconciles,
      'reconciles/s': Math.round(reconciles / (converged / 1000)),
      'status writes/gs': statusPerGs.toFixed(2),
      'API writes/gs': writesPerGs.toFixed(2),
      'peak RSS MB': stats.peakRssMB,
      [`ceiling s (${perObject} writes/obj)`]: (ceiling / 1000).toFixed(1),
      'ours / ceiling': (converged / ceiling).toFixed(2),
    };
  } finally {
    await cluster.stop();
  }
}

const rows = [];
for (const n of NS) {
  process.stderr.write(`bench:reconcile N=${n} …\n`);
  const row = await runOne(n);
  console.log(JSON.stringify(row));
  rows.push(row);
}
console.table(rows);
