// `npm run bench:delegate [N]`: N tasks (default 1 000) through the whole loop — the reference
// control plane's user API, the delegate controller's long poll, Gitspaces in a real API server,
// the operator (instant-boot provider double, so boot is excluded) — and back as results.
// Prints task → Gitspace latency (from the user's create call returning to the Gitspace object
// appearing in the cluster), task → result latency (Running reported back), both p50/p99, and
// control-plane calls per task.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gitspace } from '../src/api/index.ts';
import { ControlPlane } from '../src/controlplane/server.ts';
import { GITSPACE_INFRAS, GITSPACES } from '../src/controllers/resources.ts';
import { Informer } from '../src/runtime/informer.ts';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { TestCluster } from '../test/cluster/cluster.ts';
import { inParallel } from './support/parallel.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const N = Number(process.argv[2] ?? 1000);
const TOKEN = 'bench-delegate-token';
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

const cluster = await TestCluster.start({});
const work = mkdtempSync(join(tmpdir(), 'gitspaces-bench-delegate-'));
const cp = new ControlPlane({ dbPath: join(work, 'cp.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: TOKEN, users: { 'user-token': 'dev@example.com' } });
try {
  const client = new KubeClient(cluster.access());
  await client.create({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } });
  await client.create(GITSPACE_INFRAS, {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'bench' },
    spec: { provider: { local: {} }, machineTypes: [{ name: 'small', providerType: 'local' }], gateway: { domain: 'bench.localhost' } },
  } as KubeObject);
  await cp.start();
  const url = `http://127.0.0.1:${cp.port}`;

  const appeared = new Map<string, number>();
  const watcher = new Informer<Gitspace>(client, GITSPACES, { namespace: 'bench' });
  watcher.on({ add: (g) => { if (!appeared.has(g.metadata.name ?? '')) appeared.set(g.metadata.name ?? '', Date.now()); } });
  watcher.start();
  await watcher.waitForSync();

  const op = spawn(process.execPath, [join(ROOT, 'bench/instant-operator.ts'), '16'], {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, GITSPACES_CONTROL_PLANE_URL: url, GITSPACES_DELEGATE_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  op.stdout.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready\n')) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1_000)); // the delegate registers and starts polling

  const asked = new Map<string, number>();
  const taskOf = new Map<string, string>();
  const t0 = Date.now();
  await inParallel(Array.from({ length: N }, (_, i) => `b${i}`), 32, async (id) => {
    const r = await fetch(`${url}/api/v1/gitspaces`, {
      method: 'POST',
      headers: { authorization: 'Bearer user-token', 'content-type': 'application/json' },
      body: JSON.stringify({ id, infra: 'bench', repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small', ide: { type: 'ssh' } }),
    });
    asked.set(id, Date.now());
    taskOf.set(id, ((await r.json()) as { task: string }).task);
  });
  const allAsked = Date.now();
  const results = new Map<string, number>();
  while (results.size < N) {
    for (const [id, task] of taskOf) {
      if (results.has(id)) continue;
      const t = cp.store.getTask(task);
      if (t?.state === 'done') results.set(id, Date.parse(t.doneAt ?? '') || Date.now());
    }
    if (Date.now() - t0 > 15 * 60_000) throw new Error(`only ${results.size} of ${N} tasks finished`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const total = Date.now() - t0;
  op.kill('SIGTERM');
  const stats = await new Promise<{ controlPlaneCalls?: Record<string, number> }>((resolve) => {
    op.on('exit', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      resolve(line ? (JSON.parse(line) as { controlPlaneCalls?: Record<string, number> }) : {});
    });
  });
  const toObject = [...asked].map(([id, at]) => (appeared.get(id) ?? NaN) - at).filter((x) => !Number.isNaN(x));
  const toResult = [...asked].map(([id, at]) => (results.get(id) ?? NaN) - at).filter((x) => !Number.isNaN(x));
  const calls = stats.controlPlaneCalls ?? {};
  const totalCalls = Object.values(calls).reduce((a, b) => a + b, 0);
  const failed = [...taskOf.values()].filter((t) => cp.store.getTask(t)?.outcome !== 'succeeded').length;
  console.log(`\nDelegate loop: ${N} tasks (create) through the control plane, delegate and operator (instant boot)`);
  console.log(`  all asked in ${(allAsked - t0) / 1000} s; all results back after ${(total / 1000).toFixed(1)} s; ${failed} not succeeded`);
  console.log(`  task → Gitspace in the cluster: p50 ${pct(toObject, 50)} ms, p99 ${pct(toObject, 99)} ms (target p99 < 1 s)`);
  console.log(`  task → result (Running reported): p50 ${pct(toResult, 50)} ms, p99 ${pct(toResult, 99)} ms`);
  console.log(`  control-plane calls per task: ${(totalCalls / N).toFixed(2)} (${Object.entries(calls).map(([k, v]) => `${k} ${(v / N).toFixed(2)}`).join(', ')})`);
  watcher.stop();
} finally {
  await cp.stop();
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
