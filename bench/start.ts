// `npm run bench:start`: how long from applying a Gitspace (as kubectl apply does) to a usable
// VS Code workbench in Chromium, for a cold start and for a warm-pool claim, on the local provider
// with the real operator, gateway, agent and code-server. Each phase is printed so the slow step
// shows: scheduled (the runner's first status), instance ready, clone done, IDE ready (the workbench
// page served by code-server), workbench loaded (the explorer lists the checkout in the browser).
// The floor, measured in the same run: a fresh browser loading the workbench of a Gitspace whose
// code-server is already running.
// Then the GCE fake, whose instances boot like VMs (bench/start-gce.ts): a stock image cold start
// (the bundle downloaded at boot; `ide: ssh`, as the stock image has no code-server), a baked image
// cold start and a warm-pool claim on the baked image, each with its phases: instance created,
// booted, agent up, claimed, clone done, IDE ready, workbench loaded. Medians and ranges per kind.
// Last, dev containers (bench/start-devcontainer.ts): a Dockerfile built cold, warm, and a restart.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { AGENT_HTTP_PORT, HOP_KEY_FIELD, HOP_KEY_SECRET, hopToken, SECRET_HEADER, type AgentHealth, type Gitspace } from '../src/api/index.ts';
import { DOMAIN, ROOT, Stack } from '../demo/stack.ts';
import { freePort, TestCluster } from '../test/cluster/cluster.ts';
import { makeRepo, makeSshKey } from '../test/support/fixtures.ts';
import { TestIssuer } from '../test/support/issuer.ts';
import { GCE_KINDS, gceBench, type GcePhases, type GceRow } from './start-gce.ts';
import { devcontainerBench, printDevcontainerRows } from './start-devcontainer.ts';

const NS = 'default';
const OWNER = 'dev@example.com';
const ROUNDS = Number(process.argv[2] ?? 3);
/** A GCE cold start boots a VM: 2 rounds of each GCE kind unless told. */
const GCE_ROUNDS = Number(process.argv[2] ?? 2);

interface Phases { scheduled: number; instanceReady: number; clone: number; ideReady: number; workbench: number }

const cs = spawnSync('bash', [join(ROOT, 'scripts/fetch-code-server.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
if (cs.status !== 0) throw new Error('scripts/fetch-code-server.sh failed');

const work = mkdtempSync(join(tmpdir(), 'gitspaces-bench-start-'));
const cluster = await TestCluster.start();
const issuer = await TestIssuer.start();
const gatewayPort = await freePort();
const stack = new Stack({
  work, kubeconfig: cluster.kubeconfigPath, infraName: 'bench', issuer: { url: issuer.url, audience: issuer.audience },
  pool: { minReady: 1, max: 1 },
  ports: { controlPlane: await freePort(), gateway: gatewayPort, operatorHealth: await freePort() },
});
let browser: Browser | undefined;
let localStopped = false;

const get = async (name: string) => (await cluster.request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`)).json as Gitspace;
const conditionTrue = (g: Gitspace, type: string) => g.status?.conditions?.find((c) => c.type === type)?.status === 'True';

async function agentHealth(g: Gitspace): Promise<AgentHealth> {
  const key = (await cluster.request('GET', `/api/v1/namespaces/${NS}/secrets/${HOP_KEY_SECRET}`)).json as { data: Record<string, string> };
  const token = hopToken(Buffer.from(key.data[HOP_KEY_FIELD] ?? '', 'base64').toString('utf8'), g.metadata.uid ?? '');
  const r = await fetch(`http://${g.status?.instance?.privateIP ?? ''}:${String(AGENT_HTTP_PORT)}/healthz`, { headers: { [SECRET_HEADER]: token } });
  return (await r.json()) as AgentHealth;
}

/** Loads the workbench in a fresh browser context and waits until the explorer lists the checkout. */
async function workbench(name: string): Promise<void> {
  const context = await browser?.newContext();
  if (!context) throw new Error('no browser');
  const page = await context.newPage();
  await page.goto(`http://${name}--${NS}.${DOMAIN}:${String(gatewayPort)}/?token=${await issuer.token(OWNER)}`);
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().waitFor({ timeout: 120_000 });
  await context.close();
}

async function start(name: string, repo: string, key: string, machineType = 'small'): Promise<Phases & { pooled: boolean }> {
  const t0 = performance.now();
  const appliedAt = Date.now(); // the agent runs on this machine: same clock
  const r = await cluster.request('POST', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`, {
    body: {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: NS },
      spec: { infraRef: { name: 'bench' }, owner: OWNER, repository: { url: `file://${repo}` }, ide: { type: 'vscode-web' }, machineType, sshPublicKeys: [key] },
    },
  });
  if (r.status !== 201) throw new Error(`apply: ${String(r.status)}`);
  const seen: Partial<Phases> = {};
  let g: Gitspace;
  for (;;) {
    g = await get(name);
    const t = performance.now() - t0;
    if (seen.scheduled === undefined && g.status?.phase) seen.scheduled = t;
    if (seen.instanceReady === undefined && conditionTrue(g, 'InstanceReady')) seen.instanceReady = t;
    if (seen.ideReady === undefined && conditionTrue(g, 'IDEReady')) seen.ideReady = t;
    if (g.status?.phase === 'Running' && seen.ideReady !== undefined) break;
    if (g.status?.phase === 'Failed') throw new Error(`${name} failed: ${g.status.message ?? ''}`);
    if (t > 180_000) throw new Error(`${name} not Running after 180 s`);
    await new Promise((res) => setTimeout(res, 25));
  }
  await workbench(name);
  seen.workbench = performance.now() - t0;
  // The agent's own clock says when its clone step finished; relative to the apply.
  const h = await agentHealth(g);
  const clone = h.steps.find((s) => s.name === 'clone');
  seen.clone = clone?.finishedAt ? Date.parse(clone.finishedAt) - appliedAt : NaN;
  return { ...(seen as Phases), pooled: Boolean(g.status?.instance?.pooled) };
}

async function poolReady(): Promise<void> {
  for (let i = 0; i < 1_200; i++) {
    const infra = (await cluster.request('GET', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/bench')).json as { status?: { pool?: { ready?: number }[] } };
    if ((infra.status?.pool?.[0]?.ready ?? 0) >= 1) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the warm pool did not fill');
}

async function remove(name: string): Promise<void> {
  await cluster.request('DELETE', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`);
  for (let i = 0; i < 600 && (await cluster.request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`)).status !== 404; i++) await new Promise((res) => setTimeout(res, 100));
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '   –' : `${(ms / 1000).toFixed(1).padStart(5)} s`);
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}
const range = (xs: number[]) => `${(Math.min(...xs) / 1000).toFixed(1)}–${(Math.max(...xs) / 1000).toFixed(1)} s`;
/** Median and range of the values that apply ('–' when none do). */
const summary = (xs: number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x));
  return v.length ? `${fmt(median(v)).trim()} (${range(v)})` : '–';
};

const GCE_PHASES: [keyof GcePhases, string][] = [['inserted', 'GCE insert'], ['created', 'instance created'], ['booted', 'booted'], ['agentUp', 'agent up'], ['claimed', 'claimed'], ['clone', 'clone done'], ['container', 'container up'], ['ideReady', 'IDE ready'], ['workbench', 'workbench loaded']];

/** A pool VM was created, booted and ran its agent before the apply: "pool" there, not a time. */
const BEFORE_APPLY = new Set<keyof GcePhases>(['inserted', 'booted', 'agentUp']);
function gceCell(r: GceRow, k: keyof GcePhases): string {
  return r.pooled && BEFORE_APPLY.has(k) ? '  pool' : fmt(r.p[k]);
}

function printGce(rows: GceRow[], floors: number[]): void {
  const out = (s: string) => process.stdout.write(s);
  out([
    '',
    `GCE fake, ${String(GCE_ROUNDS)} rounds each: instances are containers booting Debian 12 with systemd (a fake cloud guest runs the`,
    'startup script); the real operator, GCE client, gateway and agent; everything on this machine. Times are from the apply:',
    '  GCE insert        the instance\'s creationTimestamp in the fake (status.instance.createdAt)',
    '  instance created  status.instance has an id (the runner writes it after the insert operation and a first look at the agent)',
    '  booted            the fake cloud guest started the startup script (its timestamped header on the serial console)',
    '  agent up          the startup script said "agent unit … runs" (the guest\'s timestamped footer right after that line)',
    '  claimed           the AgentEnrolled Event',
    '  clone done        the agent\'s clone step (its own clock; the VMs share this machine\'s)',
    '  container up      the agent\'s container step (`devcontainer up`: pull, build, start) finished; dev container kinds only',
    '  IDE ready         the IDEReady condition (polled every 50 ms; the runner looks about once a second while a Gitspace starts)',
    '  workbench loaded  the explorer lists README.md in Chromium, through the gateway',
    'stock cold start: the stock image has no code-server, so `ide: ssh`: IDE ready is the agent\'s SSH server up; no workbench.',
    'pool claim: the pool VM was inserted, booted and its agent up before the apply ("pool"); instance created is when the',
    'Gitspace\'s status named it with its id.',
    'dev container kinds: the image baked with Docker; the repository\'s Dockerfile builds FROM an image in a registry on this',
    'host (Debian\'s docker-registry): the cold start pulls it in its container step; the pool VM pulled it while unclaimed.',
    '',
  ].join('\n'));
  out(`\n| start | ${GCE_PHASES.map(([, h]) => h).join(' | ')} |\n|---|${GCE_PHASES.map(() => '---|').join('')}\n`);
  for (const r of rows) out(`| ${r.kind} | ${GCE_PHASES.map(([k]) => gceCell(r, k)).join(' | ')} |\n`);
  out(`\nmedian (range) per kind:\n\n| start | n | ${GCE_PHASES.map(([, h]) => h).join(' | ')} |\n|---|---|${GCE_PHASES.map(() => '---|').join('')}\n`);
  for (const kind of GCE_KINDS) {
    const of = rows.filter((r) => r.kind === kind);
    if (of.length) out(`| ${kind} | ${String(of.length)} | ${GCE_PHASES.map(([k]) => (of[0]?.pooled && BEFORE_APPLY.has(k) ? 'pool' : summary(of.map((r) => r.p[k])))).join(' | ')} |\n`);
  }
  if (floors.length) {
    const floor = median(floors);
    out(`\nfloor on the GCE fake (fresh browser, code-server already running in the VM, through the gateway): median ${fmt(floor).trim()} (${range(floors)}, n=${String(floors.length)})\n`);
    const pool = rows.filter((r) => r.kind === 'pool claim').map((r) => r.p.workbench);
    if (pool.length) out(`GCE pool claim = floor + ${fmt(median(pool) - floor).trim()} of ours\n`);
  }
}

try {
  await stack.start();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const repo = makeRepo(work);
  const key = makeSshKey().publicLine;
  const rows: { kind: string; p: Phases & { pooled: boolean } }[] = [];
  const floors: number[] = [];
  process.stdout.write(`bench:start — ${String(ROUNDS)} rounds each, local provider, code-server 4.139.1, Debian Chromium (2 cores, everything on one machine); then the GCE fake, ${String(GCE_ROUNDS)} rounds each\n`);
  for (let i = 0; i < ROUNDS; i++) {
    // Warm: the pool has a booted VM waiting (pool agent); the Gitspace claims it.
    await poolReady();
    const warm = await start(`warm${String(i)}`, repo, key);
    rows.push({ kind: 'pool claim', p: warm });
    // Floor: a fresh browser on a Gitspace whose code-server already runs.
    const f0 = performance.now();
    await workbench(`warm${String(i)}`);
    floors.push(performance.now() - f0);
    await remove(`warm${String(i)}`);
    // Cold: a machine type without a warm pool, so the VM is created and boots for this Gitspace.
    const cold = await start(`cold${String(i)}`, repo, key, 'unpooled');
    rows.push({ kind: cold.pooled ? 'pool claim' : 'cold start', p: cold });
    await remove(`cold${String(i)}`);
  }
  // The local stack's operator would take the GCE infras for real GCE: the GCE rows get a control plane of their own.
  localStopped = true;
  try {
    await stack.stop();
  } finally {
    await cluster.stop();
  }
  process.stdout.write('\nscheduled, instance ready and IDE ready are when the Gitspace\'s status said so (the runner looks about once a second while a Gitspace starts); clone done is the agent\'s own clock.\n');
  process.stdout.write('\n| start | scheduled | instance ready | clone done | IDE ready | workbench loaded |\n|---|---|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.kind} | ${fmt(r.p.scheduled)} | ${fmt(r.p.instanceReady)} | ${fmt(r.p.clone)} | ${fmt(r.p.ideReady)} | ${fmt(r.p.workbench)} |\n`);
  for (const kind of ['cold start', 'pool claim']) {
    const ws = rows.filter((r) => r.kind === kind).map((r) => r.p.workbench);
    if (ws.length) process.stdout.write(`\n${kind}: median apply → usable workbench ${fmt(median(ws))} (${range(ws)}, n=${String(ws.length)})`);
  }
  const floor = median(floors);
  process.stdout.write(`\nfloor (fresh browser, code-server already running): median ${fmt(floor)} (n=${String(floors.length)})\n`);
  const pool = rows.filter((r) => r.kind === 'pool claim').map((r) => r.p.workbench);
  if (pool.length) process.stdout.write(`pool claim = floor + ${fmt(median(pool) - floor)} of ours (goal: ≤ 10 s in all)\n`);

  const gce = await gceBench({ rounds: GCE_ROUNDS, browser, issuer, owner: OWNER, sshPublicKey: key, say: (line) => process.stderr.write(`${line}\n`) });
  printGce(gce.rows, gce.floors);
  printDevcontainerRows(await devcontainerBench(ROUNDS));
  process.stdout.write(`\nbench:start ran ${(process.uptime() / 60).toFixed(1)} min\n`);
} finally {
  await browser?.close();
  if (!localStopped) {
    await stack.stop();
    await cluster.stop();
  }
  await issuer.stop();
  rmSync(work, { recursive: true, force: true });
}
