// The dev-container rows of `npm run bench:start` (also `node bench/start-devcontainer.ts [ROUNDS]`
// alone): apply a Gitspace whose devcontainer.json builds a Dockerfile → Running, on the local
// provider with the real operator process, the agent and the reference devcontainer CLI, against
// the test run's own Docker daemon. Three kinds:
//  - cold: the Dockerfile has a layer no earlier build made (a new marker), so it is built;
//  - warm: the same Dockerfile as a cold round before it (its layers cached on the "VM");
//  - restart: Stopped → Running of a Gitspace whose container exists (`up` only starts it).
// Each with its phases from the agent's step timings: instance ready, clone done, container up
// (`devcontainer up`), hooks done (Running). The ceiling, in the same run: the CLI alone,
// `devcontainer up` on a copy of the same workspace (warm), with nothing of ours around it.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_HTTP_PORT, SECRET_HEADER, type Gitspace } from '../src/api/index.ts';
import { TestCluster } from '../test/cluster/cluster.ts';
import { setCluster } from '../test/cluster/current.ts';
import { sharedDocker } from '../test/support/docker.ts';
import { commitAll, makeRepo, makeSshKey } from '../test/support/fixtures.ts';
import { STOCK_TAG, vmImagesScript } from '../test/support/gce-vms.ts';
import { gitspaceManifest, infraManifest, k8s } from '../test/support/gitspaces.ts';
import { hopTokenOf } from '../test/support/hop.ts';
import { startOperator } from '../test/support/operator.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const INFRA = 'bench-dc';

interface Row { kind: string; total: number; phases: Record<string, number> }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function repoWith(dir: string, marker: string): string {
  const repo = makeRepo(dir, '{ "build": { "dockerfile": "Dockerfile" }, "postCreateCommand": "true", "postStartCommand": "true" }');
  writeFileSync(join(repo, '.devcontainer/Dockerfile'), `FROM ${STOCK_TAG}\nRUN echo ${marker} > /etc/bench-marker\n`);
  commitAll(repo, 'dockerfile');
  return repo;
}

/** Phases (ms after the apply) from the agent's step timings in its health, read at Running. */
function phases(applied: number, g: Gitspace, steps: { name: string; finishedAt?: string }[]): Record<string, number> {
  const at = (n: string) => Date.parse(steps.find((x) => x.name === n)?.finishedAt ?? '') - applied;
  return { instanceReady: Date.parse(g.status?.instance?.createdAt ?? '') - applied, clone: at('clone'), containerUp: at('container'), running: NaN };
}

export async function devcontainerBench(rounds: number): Promise<{ rows: Row[]; ceiling: number[] }> {
  const docker = await sharedDocker();
  await vmImagesScript(docker, ['stock']);
  const work = mkdtempSync(join(tmpdir(), 'gitspaces-bench-dc-'));
  const cluster = await TestCluster.start();
  setCluster(cluster);
  const prev = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = docker.host;
  const op = await startOperator({ kubeconfig: cluster.kubeconfigPath, logDir: work });
  if (prev === undefined) delete process.env.DOCKER_HOST;
  else process.env.DOCKER_HOST = prev;
  const rows: Row[] = [];
  const ceiling: number[] = [];
  const key = makeSshKey();
  try {
    await k8s.apply(infraManifest(INFRA, join(work, 'instances')));
    const health = async (g: Gitspace) => {
      const r = await fetch(`http://${g.status?.instance?.privateIP ?? ''}:${String(AGENT_HTTP_PORT)}/healthz`, { headers: { [SECRET_HEADER]: await hopTokenOf(g) } });
      return (await r.json()) as { steps: { name: string; finishedAt?: string }[] };
    };
    for (let i = 0; i < rounds; i++) {
      const marker = `m${String(Date.now())}${String(i)}`;
      for (const kind of ['cold', 'warm']) {
        const repo = repoWith(mkdtempSync(join(work, 'repo-')), marker);
        const m = gitspaceManifest(`${kind}${String(i)}`, { infra: INFRA, repo, key });
        const applied = Date.now();
        await k8s.apply(m);
        const g = await k8s.waitPhase(m, 'Running', 600_000);
        const total = Date.now() - applied;
        rows.push({ kind, total, phases: { ...phases(applied, g, (await health(g)).steps), running: total } });
        if (kind === 'warm') {
          // The ceiling: the CLI alone on a copy of this workspace (its image cached, as for warm).
          const copy = mkdtempSync(join(work, 'cli-'));
          cpSync(repo, copy, { recursive: true });
          const cli = createRequire(import.meta.url).resolve('@devcontainers/cli/devcontainer.js');
          const t = Date.now();
          const r = spawnSync(process.execPath, [cli, 'up', '--workspace-folder', copy, '--id-label', `bench-ceiling=${copy}`, '--skip-post-create'], { env: { ...process.env, DOCKER_HOST: docker.host }, encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`devcontainer up (ceiling) failed: ${r.stderr.slice(-500)}`);
          ceiling.push(Date.now() - t);
          const id = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { containerId?: string }).containerId;
          if (id) await docker.run(['rm', '-f', id]);
          // Restart: stop, then time Stopped → Running.
          await k8s.patch(m, { spec: { state: 'Stopped' } });
          await k8s.waitPhase(m, 'Stopped', 120_000);
          const resumed = Date.now();
          await k8s.patch(m, { spec: { state: 'Running' } });
          const again = await k8s.waitPhase(m, 'Running', 300_000);
          const t2 = Date.now() - resumed;
          rows.push({ kind: 'restart', total: t2, phases: { ...phases(resumed, again, (await health(again)).steps), instanceReady: NaN, clone: NaN, running: t2 } });
        }
        await k8s.deleteAndWait(m, 120_000);
      }
    }
  } finally {
    await k8s.cleanUpInfra(INFRA).catch(() => undefined);
    await op.kill('SIGTERM');
    await cluster.stop();
    await docker.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { rows, ceiling };
}

export function printDevcontainerRows(r: { rows: Row[]; ceiling: number[] }): void {
  const floor = median(r.ceiling);
  console.log(`\ndev containers (local provider, Dockerfile FROM the Debian test image; ceiling: the CLI alone, warm: median ${s(floor)})`);
  console.log('kind      total     instance  clone     container up  running   total / ceiling');
  for (const kind of ['cold', 'warm', 'restart']) {
    const rows = r.rows.filter((x) => x.kind === kind);
    if (!rows.length) continue;
    const med = (p: string) => median(rows.map((x) => x.phases[p] ?? NaN));
    const cell = (ms: number) => (Number.isNaN(ms) ? '—' : s(ms)).padEnd(10);
    const totals = rows.map((x) => x.total);
    console.log(`${kind.padEnd(10)}${cell(median(totals))}${cell(med('instanceReady'))}${cell(med('clone'))}${cell(med('containerUp')).padEnd(14)}${cell(med('running'))}${(median(totals) / floor).toFixed(1)}×   (range ${s(Math.min(...totals))}–${s(Math.max(...totals))}, ${String(rows.length)} rounds)`);
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  printDevcontainerRows(await devcontainerBench(ROUNDS));
}
