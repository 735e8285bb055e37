// A Gitspace's VM is its user's (root or sudo): its "agent" may answer anything. One that drips a
// byte a second and one that streams without end must not hold the operator's workers or grow its
// memory: with only two runner workers, other tenants' Gitspaces (real agents on the local
// provider) still converge while both hostile ones are probed, and the hostile ones say why.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_HTTP_PORT, type GitspaceInfra } from '../../src/api/index.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { InMemoryProvider } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';

/** An "agent" on `address` that never finishes its answer: a byte a second, or as much as it can. */
function hostileAgent(address: string, mode: 'drip' | 'flood'): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (mode === 'drip') {
      const t = setInterval(() => res.write(' '), 1000);
      res.on('close', () => { clearInterval(t); });
      return;
    }
    const chunk = Buffer.alloc(1 << 20, 0x20);
    const pump = () => {
      while (!res.destroyed && res.write(chunk)) { /* until the socket pushes back */ }
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  return new Promise((resolve) => server.listen(AGENT_HTTP_PORT, address, () => { resolve(server); }));
}

describe('hostile agents cannot stall or bloat the operator', function () {
  this.timeout(180_000);
  let work: string;
  let op: Operator;
  const servers: Server[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-hostile-'));
    // The in-memory provider hands out 127.13.0.1, .2, … in create order: the hostile agents are there.
    servers.push(await hostileAgent('127.13.0.1', 'drip'), await hostileAgent('127.13.0.2', 'flood'));
    await k8s.apply(infraManifest('hostile', ''));
    await k8s.apply(infraManifest('tenants', join(work, 'instances')));
    const hostile = new InMemoryProvider();
    const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = createOperator({
      client: new KubeClient(testCluster().access()),
      log: createLogger({ component: 'operator' }, 'error'),
      providerFor: (i: GitspaceInfra) => (i.metadata.name === 'hostile' ? hostile : local),
      workers: 2,
      sweep: false,
    });
    await op.manager.start();
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('tenants');
      await k8s.cleanUpInfra('hostile');
    } finally {
      await op.manager.stop();
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('other tenants converge while a dripping and a flooding agent are probed, and the heap stays flat', async () => {
    const key = makeSshKey();
    const drip = gitspaceManifest('drip', { infra: 'hostile', repo: '/nowhere', key });
    const flood = gitspaceManifest('flood', { infra: 'hostile', repo: '/nowhere', key });
    await k8s.apply(drip);
    await k8s.waitFor(drip, (g) => g.status?.instance?.privateIP === '127.13.0.1', 30_000);
    await k8s.apply(flood);
    await k8s.waitFor(flood, (g) => g.status?.instance?.privateIP === '127.13.0.2', 30_000);
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;

    const repo = makeRepo(work);
    const tenants = ['t1', 't2', 't3'].map((n) => gitspaceManifest(n, { infra: 'tenants', repo, key }));
    const t0 = Date.now();
    for (const m of tenants) await k8s.apply(m);
    await Promise.all(tenants.map((m) => k8s.waitPhase(m, 'Running', 90_000)));
    const took = Date.now() - t0;

    // The hostile ones wait, saying what their agents did.
    const d = await k8s.waitFor(drip, (g) => /no complete answer within 5 s/.test(g.status?.message ?? '') || /no complete answer within 5 s/.test(JSON.stringify(g.status?.conditions ?? [])), 30_000);
    const f = await k8s.waitFor(flood, (g) => /exceeds 262144 bytes/.test(JSON.stringify(g.status?.conditions ?? [])), 30_000);
    expect(d.status?.phase).to.equal('Starting');
    expect(f.status?.phase).to.equal('Starting');
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(heapGrowth, `heap grew ${String(heapGrowth >> 20)} MiB`).to.be.below(64 << 20);
    console.log(`      three tenants Running in ${String(took)} ms beside a dripping and a flooding agent; heap ${heapGrowth >= 0 ? '+' : ''}${String(Math.round(heapGrowth / 1048576))} MiB`);
  });
});
