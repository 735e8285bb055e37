// The operator survives what production throws at it: being killed mid-provisioning (20 rounds),
// the API server restarting under it, and running as two replicas with one leader.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gitspace } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually, sleep } from '../support/wait.ts';

/** Live processes whose command line mentions `dir`, by instance directory name. */
function processesUnder(dir: string): Map<string, number> {
  const counts = new Map<string, number>();
  const out = execFileSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    if (line.startsWith('Z')) continue;
    const m = new RegExp(`agent --root ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(gs-[0-9a-f-]+)(?:\\s|$)`).exec(line);
    if (m?.[1]) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  return counts;
}

describe('operator resilience', function () {
  this.timeout(240_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let instances: string;
  const ops: OperatorProcess[] = [];
  const infra = 'resilience';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-resilience-'));
    repo = makeRepo(work);
    key = makeSshKey();
    instances = join(work, 'instances');
    await k8s.apply(infraManifest(infra, instances));
  });

  async function operator(args: string[] = [], name = 'operator'): Promise<OperatorProcess> {
    const op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args, name });
    ops.push(op);
    return op;
  }

  async function cleanUp(ms: Manifest[]): Promise<void> {
    await Promise.all(ms.map((m) => k8s.deleteAndWait(m, 90_000)));
  }

  afterEach(async () => {
    for (const op of ops.splice(0)) await op.kill('SIGKILL');
  });

  after(async () => {
    const op = await operator();
    try {
      await k8s.cleanUpInfra(infra);
    } finally {
      await op.kill('SIGTERM');
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('keeps exactly one instance per Gitspace when killed (-9) at random points during provisioning, 20 rounds', async () => {
    const ms: Manifest[] = [];
    const kills: number[] = [];
    for (let round = 0; round < 20; round++) {
      const op = await operator([], `crash-${round}`);
      const m = gitspaceManifest(`crash-${round}`, { infra, repo, key });
      ms.push(m);
      await k8s.apply(m);
      const at = Math.floor(Math.random() * 1500);
      kills.push(at);
      await sleep(at);
      await op.kill('SIGKILL');
    }
    const finalOp = await operator([], 'crash-final');
    const all = await Promise.all(ms.map((m) => k8s.waitPhase(m, 'Running', 120_000)));
    const names = all.map((g) => g.status?.instance?.name).sort();
    expect(new Set(names).size, 'distinct instances').to.equal(20);
    expect(readdirSync(instances).sort(), 'instance directories').to.deep.equal(names);
    expect(all.every((g: Gitspace) => g.status?.instance?.name === `gs-${g.metadata.uid ?? ''}`)).to.equal(true);
    const procs = processesUnder(instances);
    expect([...procs.keys()].sort(), 'one agent per instance').to.deep.equal(names);
    expect([...procs.values()].every((n) => n === 1), `agent counts ${JSON.stringify([...procs])}`).to.equal(true);
    // Nothing is left once they are deleted.
    await cleanUp(ms);
    expect(readdirSync(instances)).to.deep.equal([]);
    expect(processesUnder(instances).size).to.equal(0);
    await finalOp.kill('SIGTERM');
    console.log(`      kill points (ms after apply): ${kills.join(', ')}`);
  });

  it('reconnects and converges after the API server restarts under it', async () => {
    await operator();
    const before = gitspaceManifest('before-restart', { infra, repo, key });
    await k8s.apply(before);
    await k8s.waitPhase(before, 'Running', 60_000);
    await testCluster().restartApiServer(2_000);
    // New work after the restart is seen (the watch was re-established) ...
    const after = gitspaceManifest('after-restart', { infra, repo, key });
    await k8s.apply(after);
    await k8s.waitPhase(after, 'Running', 60_000);
    // ... and changes to objects from before the restart too.
    await k8s.patch(before, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(before, 'Stopped', 30_000);
    await cleanUp([before, after]);
  });

  it('runs as two replicas with one leader, fails over within the lease duration, and never provisions twice', async () => {
    const leaseMs = 4_000;
    const args = ['--leader-elect', '--lease-duration-ms', String(leaseMs)];
    const a = await operator([...args, '--identity', 'replica-a'], 'replica-a');
    const b = await operator([...args, '--identity', 'replica-b'], 'replica-b');
    const leaseHolder = async () => {
      const r = await testCluster().request('GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/gitspaces-operator');
      return r.status === 200 ? ((r.json as { spec?: { holderIdentity?: string } }).spec?.holderIdentity ?? '') : '';
    };
    const first = await eventually('a leader', 20_000, async () => (await leaseHolder()) || undefined);
    const leader = first === 'replica-a' ? a : b;
    const standby = first === 'replica-a' ? b : a;
    const isMaster = async (op: OperatorProcess) => /leader_election_master_status\{name="gitspaces-operator"\} 1/.test(await op.metrics());
    expect(await isMaster(leader)).to.equal(true);
    expect(await isMaster(standby)).to.equal(false);

    const one = gitspaceManifest('leader-1', { infra, repo, key });
    await k8s.apply(one);
    await k8s.waitPhase(one, 'Running', 60_000);

    // Kill the leader outright; the standby must take the lease within about a lease duration.
    await leader.kill('SIGKILL');
    const t0 = Date.now();
    const second = await eventually('the standby to take the lease', 20_000, async () => {
      const h = await leaseHolder();
      return h && h !== first ? h : undefined;
    });
    const failoverMs = Date.now() - t0;
    console.log(`      failover: ${second} took the lease ${failoverMs} ms after ${first} was killed (lease ${leaseMs} ms)`);
    expect(failoverMs).to.be.lessThan(leaseMs + 2_000);
    const two = gitspaceManifest('leader-2', { infra, repo, key });
    await k8s.apply(two);
    await k8s.waitPhase(two, 'Running', 60_000);
    expect(await isMaster(standby)).to.equal(true);

    // A graceful stop releases the lease, so a new replica takes over at once.
    await standby.kill('SIGTERM');
    expect(await leaseHolder()).to.equal('');
    const c = await operator([...args, '--identity', 'replica-c'], 'replica-c');
    const t1 = Date.now();
    await eventually('replica-c to lead', 10_000, async () => (await leaseHolder()) === 'replica-c');
    expect(Date.now() - t1).to.be.lessThan(leaseMs);
    expect(await isMaster(c)).to.equal(true);

    // Exactly one instance per Gitspace throughout.
    const live = await Promise.all([one, two].map((m) => k8s.get(m)));
    expect(readdirSync(instances).sort()).to.deep.equal(live.map((g) => g?.status?.instance?.name).sort());
    await cleanUp([one, two]);
    expect(existsSync(instances) ? readdirSync(instances) : []).to.deep.equal([]);
  });
});
