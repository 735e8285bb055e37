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
let op: ReturnType<typeof spawn> | undefined;
const cp = new ControlPlane({ dbPath: join(work, 'cp.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: TOKEN, users: { 'bench-user-token': 'dev@example.com' } });
try {
  const client = new KubeClient(cluster.access());
  await client.create({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } });
  await client.create(GITSPACE_INFRAS, {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'bench' },
    spec: { provider: { local: {} }, machineTypes: [{ name: 'small', providerType: 'local' }], allowedNamespaces: {}, gateway: { domain: 'bench.localhost' } },
  } as KubeObject);
  await cp.start();
  const url = `http://127.0.0.1:${cp.port}`;

  const appeared = new Map<string, number>();
  const watcher = new Informer<Gitspace>(client, GITSPACES, { namespace: 'bench' });
  watcher.on({ add: (g) => { if (!appeared.has(g.metadata.name ?? '')) appeared.set(g.metadata.name ?? '', Date.now()); } });
  watcher.start();
  await watcher.waitForSync();

  // The ceiling for the delegate's own writes: N Gitspace creates (CRD with CEL validation), 32 at
  // a time, before any operator runs — the fastest N tasks could become N objects here.
  await client.create({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gs-ceiling' } });
  const gsCeilingStart = Date.now();
  const plain = (i: number): Gitspace => ({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: `c${i}x`, namespace: 'gs-ceiling' }, spec: { infraRef: { name: 'bench' }, owner: 'dev@example.com', repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small', ide: { type: 'ssh' } } });
  await inParallel(Array.from({ length: N }, (_, i) => i), 32, (i) => client.create(GITSPACES, plain(i)));
  const gsCeilingMs = Date.now() - gsCeilingStart;
  await client.delete({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, undefined, 'gs-ceiling');
  await new Promise((r) => setTimeout(r, 3_000)); // let the namespace controller clear them before the operator starts

  op = spawn(process.execPath, [join(ROOT, 'bench/instant-operator.ts'), '16'], {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, GITSPACES_CONTROL_PLANE_URL: url, GITSPACES_DELEGATE_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  op.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready\n')) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1_000)); // the delegate registers and starts polling
  const operator = op;

  /** Sends the ids as create tasks (all at once, or one per `paceMs`) and waits for every result. */
  const run = async (ids: string[], paceMs: number) => {
    const asked = new Map<string, number>();
    const taskOf = new Map<string, string>();
    const t0 = Date.now();
    const ask = async (id: string) => {
      const r = await fetch(`${url}/api/v1/gitspaces`, {
        method: 'POST',
        headers: { authorization: 'Bearer bench-user-token', 'content-type': 'application/json' },
        body: JSON.stringify({ id, infra: 'bench', repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small', ide: { type: 'ssh' } }),
      });
      asked.set(id, Date.now());
      const body = (await r.json()) as { task?: string; error?: { message: string } };
      if (r.status !== 201 || !body.task) throw new Error(`create ${id}: ${r.status} ${JSON.stringify(body)}`);
      taskOf.set(id, body.task);
    };
    if (paceMs > 0) {
      const sent: Promise<void>[] = [];
      for (const id of ids) {
        sent.push(ask(id));
        await new Promise((r) => setTimeout(r, paceMs));
      }
      await Promise.all(sent);
    } else {
      await inParallel(ids, 32, ask);
    }
    const allAsked = Date.now();
    const results = new Map<string, number>();
    while (results.size < ids.length) {
      for (const [id, task] of taskOf) {
        if (results.has(id)) continue;
        const t = cp.store.getTask(task);
        if (t?.state === 'done') results.set(id, Date.parse(t.doneAt ?? '') || Date.now());
      }
      if (Date.now() - t0 > 15 * 60_000) throw new Error(`only ${results.size} of ${ids.length} tasks finished`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const toObject = [...asked].map(([id, at]) => (appeared.get(id) ?? NaN) - at).filter((x) => !Number.isNaN(x));
    const toResult = [...asked].map(([id, at]) => (results.get(id) ?? NaN) - at).filter((x) => !Number.isNaN(x));
    const failed = [...taskOf.values()].filter((t) => cp.store.getTask(t)?.outcome !== 'succeeded').length;
    return { askedMs: allAsked - t0, totalMs: Date.now() - t0, toObject, toResult, failed };
  };

  // The ceiling: how fast this apiserver takes plain creates (the delegate's Gitspace creates and
  // the operator's own writes share it).
  const ceilingStart = Date.now();
  await client.create({ group: '', version: 'v1', plural: 'namespaces', namespaced: false }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ceiling' } });
  await inParallel(Array.from({ length: N }, (_, i) => i), 32, (i) => client.create({ group: '', version: 'v1', plural: 'configmaps', namespaced: true }, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c${i}`, namespace: 'ceiling' }, data: { k: 'v' } }));
  const ceilingPerSec = N / ((Date.now() - ceilingStart) / 1000);

  const burst = await run(Array.from({ length: N }, (_, i) => `bench${i}`), 0);
  const PACED = Math.min(200, N);
  const paced = await run(Array.from({ length: PACED }, (_, i) => `paced${i}`), 50);
  operator.kill('SIGTERM');
  const stats = await new Promise<{ controlPlaneCalls?: Record<string, number> }>((resolve) => {
    operator.on('exit', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      resolve(line ? (JSON.parse(line) as { controlPlaneCalls?: Record<string, number> }) : {});
    });
  });
  const calls = stats.controlPlaneCalls ?? {};
  const tasks = N + PACED;
  const totalCalls = Object.values(calls).reduce((a, b) => a + b, 0);
  console.log(`\nDelegate loop: create tasks through the control plane, the delegate and the operator (instant boot)`);
  console.log(`  ceiling here: the apiserver takes ${Math.round(ceilingPerSec)} ConfigMap creates/s, and ${N} Gitspace creates (CEL-validated) in ${(gsCeilingMs / 1000).toFixed(1)} s with nothing else running`);
  for (const [name, r, n] of [[`burst of ${N}`, burst, N], [`${PACED} paced at 20/s`, paced, PACED]] as const) {
    console.log(`  ${name}: asked in ${(r.askedMs / 1000).toFixed(1)} s, all results after ${(r.totalMs / 1000).toFixed(1)} s (${(n / (r.totalMs / 1000)).toFixed(0)} tasks/s = ${((n / (r.totalMs / 1000)) / ceilingPerSec).toFixed(2)} of the create ceiling); ${r.failed} not succeeded`);
    console.log(`    task → Gitspace in the cluster: p50 ${pct(r.toObject, 50)} ms, p99 ${pct(r.toObject, 99)} ms (target p99 < 1 s)${n === N ? `; p99 ÷ the time the apiserver alone needs for ${N} Gitspace creates = ${(pct(r.toObject, 99) / gsCeilingMs).toFixed(2)}` : ''}`);
    console.log(`    task → result (Running reported): p50 ${pct(r.toResult, 50)} ms, p99 ${pct(r.toResult, 99)} ms`);
  }
  console.log(`  control-plane calls per task: ${(totalCalls / tasks).toFixed(2)} (${Object.entries(calls).map(([k, v]) => `${k} ${(v / tasks).toFixed(2)}`).join(', ')})`);
  watcher.stop();
} finally {
  if (op && op.exitCode === null) op.kill('SIGKILL');
  await cp.stop();
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
