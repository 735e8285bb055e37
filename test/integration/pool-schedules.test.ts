// Scheduled warm pools against the real API server and the GCE fake (real @google-cloud/compute
// client; an agent double answers for the pooled VMs, as nothing boots here), with the operator's
// clock moved across windows: a weekday window in Europe/Berlin fills the pool and, when it
// closes, the surplus ready VMs are deleted down to the off-hours value; a window that closes at a
// time the spring-forward jump skips closes at the jump (the operator wakes itself for it); on the
// fall-back day a start in the repeated hour happens once. The spec is written only by "Argo CD":
// the operator's writes show no spec field in managedFields and the generation never moves.
import { expect } from 'chai';
import type { GitspaceInfra } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { testCluster } from '../cluster/current.ts';
import { GceFake } from '../fakes/gce/server.ts';
import { gceInfra, gceProvider, startGceFake } from '../support/gce.ts';
import { k8s } from '../support/gitspaces.ts';
import { AgentDouble, startInProcessOperator } from '../support/provider-double.ts';
import { resourcePath, statusMessage, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-devenvs';
const ZONE = 'europe-west1-b';
const INFRA = 'gcp-scheduled-pool';
/** The field manager of the GitOps tool that owns the spec. */
const GITOPS = 'argocd-controller';

const infraManifest = (over: { schedules?: unknown[]; max?: number } = {}): Manifest => gceInfra(INFRA, {
  project: PROJECT,
  zones: [ZONE],
  machineTypes: [{ name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 }, { name: 'night', providerType: 'e2-standard-4', diskSizeGB: 20 }],
  pool: [
    {
      machineType: 'small', zone: ZONE, minReady: 0, max: over.max ?? 4,
      schedules: over.schedules ?? [
        { cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', minReady: 3 },
        { cron: '0 18 * * 1-5', timezone: 'Europe/Berlin', minReady: 1 },
      ],
    },
    {
      // 01:00 to 02:30 every night; 02:30 does not exist on 2026-03-29 and happens twice on 2026-10-25.
      machineType: 'night', zone: ZONE, minReady: 0, max: 2,
      schedules: [
        { cron: '0 1 * * *', timezone: 'Europe/Berlin', minReady: 2 },
        { cron: '30 2 * * *', timezone: 'Europe/Berlin', minReady: 0 },
      ],
    },
  ],
});

type Pool = NonNullable<NonNullable<GitspaceInfra['status']>['pool']>[number];
const condition = (i: GitspaceInfra | undefined, type: string) => i?.status?.conditions?.find((c) => c.type === type);
const poolOf = (i: GitspaceInfra | undefined, machineType: string): Pool | undefined => i?.status?.pool?.find((p) => p.machineType === machineType);

describe('Scheduled warm pools against the GCE fake, with the operator\'s clock moved', function () {
  this.timeout(180_000);
  let fake: GceFake;
  let op: Operator;
  let offsetMs = 0;
  let generation = 0;
  let poke = 0;
  const setClock = (iso: string) => {
    offsetMs = Date.parse(iso) - Date.now();
  };
  const nudge = () => k8s.patch(infraManifest(), { metadata: { annotations: { 'test/poke': String(++poke) } } });
  const infra = () => k8s.get<GitspaceInfra>(infraManifest());
  const pooled = (machineType: string) => [...fake.instances.values()].filter((i) => i.labels['gitspaces-dev_pool'] === machineType);
  const deletes = () => fake.calls.filter((c) => c.method === 'DELETE' && c.path.includes('/instances/')).length;
  /** The status shows `want` for a pool, it has that many VMs in the cloud, and PoolReady is True. */
  const settled = (what: string, machineType: string, want: Partial<Pool>, ms = 30_000) =>
    k8s.waitFor<GitspaceInfra>(infraManifest(), (i) => {
      const p = poolOf(i, machineType);
      return !!p && Object.entries(want).every(([k, v]) => p[k as keyof Pool] === v) && p.provisioning === 0 && pooled(machineType).length === p.ready && condition(i, 'PoolReady')?.status === 'True';
    }, ms).catch((e: unknown) => { throw new Error(`${what}: ${(e as Error).message}`); });
  /** Writes the spec as the GitOps tool does (its own field manager). */
  const gitopsWrite = async (method: 'POST' | 'PUT', m: Manifest) => {
    const r = await testCluster().request(method, `${resourcePath(m, method === 'PUT')}?fieldManager=${GITOPS}`, { body: m });
    expect(r.status, statusMessage(r)).to.be.oneOf([200, 201]);
    generation = (r.json as GitspaceInfra).metadata.generation ?? 0;
  };

  before(async () => {
    const started = await startGceFake({ project: PROJECT, bootMs: 300, stopMs: 200 });
    fake = started.fake;
    const port = started.port;
    const gcp = gceProvider({ project: PROJECT, zones: [ZONE], port, networkTag: `gitspaces-${INFRA}` });
    const agent = new AgentDouble((address) => Promise.resolve([...fake.instances.values()].find((i) => i.networkIP === address && i.status === 'RUNNING')?.name));
    // Friday 2026-03-27, 07:59:50 in Berlin (CET): ten seconds before the weekday window opens.
    setClock('2026-03-27T06:59:50Z');
    await gitopsWrite('POST', infraManifest());
    op = await startInProcessOperator({ provider: gcp, agent, sweep: false, now: () => Date.now() + offsetMs });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
      expect([...fake.instances.values()].filter((i) => i.labels['gitspaces-dev_infra'] === INFRA), 'VMs left').to.have.length(0);
    } finally {
      await op.manager.stop();
      await fake.stop();
    }
  });

  it('refuses schedules the schema can judge, naming the field', async () => {
    const refused = async (schedules: unknown[], message: RegExp) => {
      const m = infraManifest({ schedules });
      const r = await testCluster().request('POST', `${resourcePath(m)}?dryRun=All`, { body: { ...m, metadata: { name: 'bad-schedule' } } });
      expect(r.status, statusMessage(r)).to.equal(422);
      expect(statusMessage(r)).to.match(message);
    };
    await refused([{ cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', minReady: 5 }], /spec\.pool\[0\]\.schedules: Invalid value: .*every schedules\[\]\.minReady must not exceed max/);
    await refused([{ cron: '0 25 * * *', minReady: 1 }], /spec\.pool\[0\]\.schedules\[0\]\.cron: Invalid value: "0 25 \* \* \*"/);
    await refused([{ cron: '0 8 * *', minReady: 1 }], /spec\.pool\[0\]\.schedules\[0\]\.cron/);
    await refused([{ cron: '0 8 * * *', timezone: '../../etc/passwd', minReady: 1 }], /spec\.pool\[0\]\.schedules\[0\]\.timezone/);
    await refused(Array.from({ length: 17 }, () => ({ cron: '0 8 * * *', minReady: 1 })), /spec\.pool\[0\]\.schedules: Too many: 17: must have at most 16 items/);
  });

  it('fills to the off-hours value, then to the window\'s when it opens, and deletes the surplus ready VMs when it closes', async () => {
    // Before 08:00: the value from Thursday 18:00.
    let i = await settled('the off-hours pool', 'small', { ready: 1, minReady: 1, nextChange: '2026-03-27T07:00:00.000Z' });
    expect(poolOf(i, 'night')).to.include({ ready: 0, minReady: 0, nextChange: '2026-03-28T00:00:00.000Z' });

    setClock('2026-03-27T07:00:05Z');
    await nudge();
    await settled('the window open', 'small', { ready: 3, minReady: 3, nextChange: '2026-03-27T17:00:00.000Z' });
    const open = pooled('small').map((v) => v.name);
    expect(open).to.have.length(3);

    // 18:00:05 in Berlin: down to one, by deleting two ready VMs; the next start is Monday 08:00 CEST.
    const before = deletes();
    setClock('2026-03-27T17:00:05Z');
    await nudge();
    i = await settled('the window closed', 'small', { ready: 1, minReady: 1, nextChange: '2026-03-30T06:00:00.000Z' });
    expect(deletes() - before, 'VMs deleted').to.equal(2);
    expect(open, 'the one left was one of the ready VMs').to.include(pooled('small')[0]?.name);
    expect(condition(i, 'PoolReady')).to.include({ status: 'True', reason: 'Filled' });
  });

  it('closes a window whose end the spring-forward jump skips at the jump, waking itself for it', async () => {
    // Sunday 2026-03-29, 01:00:05 CET: the night window is open until 02:30, which does not exist
    // today: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
    setClock('2026-03-29T00:00:05Z');
    await nudge();
    await settled('the night window open', 'night', { ready: 2, minReady: 2, nextChange: '2026-03-29T01:00:00.000Z' });
    expect(poolOf(await infra(), 'small')).to.include({ ready: 1, minReady: 1 });

    // Four seconds before the jump, one last nudge; then nothing but the operator's own timer.
    setClock('2026-03-29T00:59:56Z');
    await nudge();
    await new Promise((r) => setTimeout(r, 1_000));
    const from = Date.now();
    await settled('the night window closed at the jump', 'night', { ready: 0, minReady: 0, nextChange: '2026-03-29T23:00:00.000Z' }, 15_000);
    // At the jump (about 3 s from here), not at the 30 s periodic look. (Monday 01:00 CEST is 23:00 UTC.)
    expect(Date.now() - from).to.be.below(12_000);
  });

  it('starts once in the hour the fall-back repeats', async () => {
    // Saturday 2026-10-24, 01:00:05 CEST: the night window opens; it closes at the first 02:30.
    setClock('2026-10-24T23:00:05Z');
    await nudge();
    await settled('the night window open', 'night', { ready: 2, minReady: 2, nextChange: '2026-10-25T00:30:00.000Z' });
    // 02:35 CET, the second pass of 02:30: closed since the first, and not started again.
    setClock('2026-10-25T01:35:00Z');
    await nudge();
    await settled('the night window closed', 'night', { ready: 0, minReady: 0, nextChange: '2026-10-26T00:00:00.000Z' });
  });

  it('reports a time zone Node does not know as PoolReady=False BadSchedule naming the entry, and keeps the entry\'s minReady', async () => {
    const current = await infra();
    const m = infraManifest({ schedules: [{ cron: '0 8 * * 1-5', timezone: 'Europe/Berln', minReady: 3 }] });
    await gitopsWrite('PUT', { ...m, metadata: { ...m.metadata, resourceVersion: current?.metadata.resourceVersion } });
    const bad = await k8s.waitFor<GitspaceInfra>(infraManifest(), (i) => condition(i, 'PoolReady')?.reason === 'BadSchedule', 20_000);
    expect(condition(bad, 'PoolReady')?.status).to.equal('False');
    expect(condition(bad, 'PoolReady')?.message).to.include('pool entry small/europe-west1-b: schedules[0].timezone: unknown time zone "Europe/Berln"');
    // The entry's own minReady (0): the one VM left goes.
    await eventually('the small pool emptied', 20_000, () => pooled('small').length === 0);
    expect(poolOf(await infra(), 'small')).to.include({ minReady: 0 });
  });

  it('never writes the spec (Argo CD keeps it in sync): only the GitOps manager owns spec fields, and the generation is its own', async () => {
    const full = (await testCluster().request('GET', resourcePath(infraManifest(), true))).json as GitspaceInfra & { metadata: { managedFields?: { manager: string; operation: string; subresource?: string; fieldsV1?: Record<string, unknown> }[] } };
    const fields = full.metadata.managedFields ?? [];
    expect(fields.some((f) => f.subresource === 'status'), 'the operator wrote status').to.equal(true);
    for (const f of fields) {
      if (f.manager !== GITOPS) expect(Object.keys(f.fieldsV1 ?? {}), `${f.manager} ${f.operation} ${f.subresource ?? ''}`).to.not.include('f:spec');
    }
    expect(full.metadata.generation, 'generation').to.equal(generation);
  });
});
