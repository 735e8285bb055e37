// The warm pool with schedules: it fills to the minReady in force and, when a window closes,
// deletes ready unclaimed VMs down to the new value — never a booting one, never one a Gitspace
// reserved meanwhile, never more than the surplus.
import { expect } from 'chai';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { WarmPool, type WarmPoolDeps } from '../../src/controllers/pool/warm-pool.ts';
import type { CreateRequest, Instance, VmProvider } from '../../src/providers/types.ts';

const WINDOW = [
  { cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', minReady: 3 },
  { cron: '0 18 * * 1-5', timezone: 'Europe/Berlin', minReady: 1 },
];

function setup(o: { schedules?: typeof WINDOW; minReady?: number } = {}) {
  const clock = { now: Date.parse('2026-03-27T07:00:05Z') }; // Friday 08:00:05 in Berlin
  const cloud = new Map<string, Instance>();
  const deleted: string[] = [];
  let n = 0;
  const hooks: { duringList?: () => void } = {};
  const provider = {
    create: (req: CreateRequest) => {
      const inst: Instance = { id: req.name, name: req.name, zone: req.zone ?? 'z', state: 'running', privateIP: req.name, agentPort: 1, machineType: 'small', createdAt: new Date(Date.UTC(2026, 0, 1, 0, n++)).toISOString(), labels: req.labels };
      cloud.set(req.name, inst);
      return Promise.resolve(inst);
    },
    delete: (i: Instance) => {
      deleted.push(i.name);
      cloud.delete(i.name);
      return Promise.resolve('gone');
    },
  } as unknown as VmProvider;
  const booting = new Set<string>();
  const deps = {
    gitspaces: { list: () => [] },
    enrolment: { boot: () => Promise.resolve({ facts: {}, labels: {} }) },
    observer: {
      all: async () => {
        const list = [...cloud.values()];
        await Promise.resolve();
        hooks.duringList?.();
        return list;
      },
      put: () => undefined,
      forget: () => undefined,
    },
    // The agent of a booting VM does not answer yet.
    probe: (address: string) => Promise.resolve(booting.has(address) ? { ok: false, error: 'ECONNREFUSED' } : { ok: true, health: { state: 'unclaimed', instance: address } }),
    log: { info: () => undefined, warn: () => undefined },
    now: () => clock.now,
  } as unknown as WarmPoolDeps;
  const pool = new WarmPool(deps);
  const infra = {
    metadata: { name: 'i' },
    spec: { machineTypes: [{ name: 'small' }], pool: [{ machineType: 'small', zone: 'z', minReady: o.minReady ?? 0, max: 5, schedules: o.schedules ?? WINDOW }] },
  } as unknown as GitspaceInfra;
  const pass = async () => {
    const r = await pool.reconcile(infra, provider);
    await pool.drain();
    return r;
  };
  return { clock, cloud, deleted, booting, hooks, pool, pass, provider, infra };
}

describe('warm pool with schedules', () => {
  it('fills to the window\'s minReady, reports it and when it changes, and trims to the off-hours value when the window closes', async () => {
    const s = setup();
    const first = await s.pass();
    expect(first.status[0]).to.include({ minReady: 3, nextChange: '2026-03-27T17:00:00.000Z' });
    expect(first.nextChangeInMs).to.equal(Date.parse('2026-03-27T17:00:00Z') - s.clock.now);
    expect(s.cloud.size).to.equal(3);
    const filled = await s.pass();
    expect(filled.status[0]).to.include({ ready: 3, provisioning: 0 });
    expect(filled.deleted).to.equal(0);

    // 18:00:01 Berlin: the window closes; the oldest ready VM stays.
    const oldest = [...s.cloud.keys()][0];
    s.clock.now = Date.parse('2026-03-27T17:00:01Z');
    const closed = await s.pass();
    expect(closed.status[0]).to.include({ minReady: 1, nextChange: '2026-03-30T06:00:00.000Z' }); // Monday 08:00 CEST
    expect(closed.deleted).to.equal(2);
    expect([...s.cloud.keys()]).to.deep.equal([oldest]);
    expect(closed.scheduleErrors).to.deep.equal([]);
    // Level-based: the next pass has nothing more to delete.
    expect((await s.pass()).deleted).to.equal(0);
    expect(s.cloud.size).to.equal(1);
  });

  it('deletes only ready VMs, at most the surplus: a booting one stays (it is deleted once ready)', async () => {
    const s = setup();
    await s.pass();
    const [a, b, c] = [...s.cloud.keys()];
    s.booting.add(c ?? '');
    s.clock.now = Date.parse('2026-03-27T17:00:01Z');
    const r = await s.pass();
    expect(r.deleted).to.equal(1);
    expect([...s.cloud.keys()]).to.deep.equal([a, c]);
    expect(s.deleted).to.deep.equal([b]);
    s.booting.clear();
    expect((await s.pass()).deleted).to.equal(1);
    expect([...s.cloud.keys()]).to.deep.equal([a]);
  });

  it('never deletes a VM a Gitspace reserved while the pass listed the cloud', async () => {
    const s = setup({ schedules: [WINDOW[0]!, { ...WINDOW[1]!, minReady: 0 }] });
    await s.pass();
    await s.pass(); // the pool knows its three ready VMs
    s.clock.now = Date.parse('2026-03-27T17:00:01Z');
    let taken: string | undefined;
    s.hooks.duringList = () => {
      taken = s.pool.reserve('i', 'small', undefined)?.name;
    };
    const r = await s.pass();
    expect(taken).to.be.a('string');
    expect(r.deleted).to.equal(2);
    expect([...s.cloud.keys()]).to.deep.equal([taken]);
  });

  it('keeps the entry\'s own minReady and reports a schedule it cannot read', async () => {
    const s = setup({ minReady: 2, schedules: [{ cron: '0 8 * * 1-5', timezone: 'Mars/Olympus', minReady: 4 }] });
    const r = await s.pass();
    expect(r.scheduleErrors).to.deep.equal(['pool entry small/z: schedules[0].timezone: unknown time zone "Mars/Olympus"']);
    expect(r.status[0]).to.include({ minReady: 2 });
    expect(r.status[0]).to.not.have.property('nextChange');
    expect(r.nextChangeInMs).to.equal(undefined);
    expect(s.cloud.size).to.equal(2);
  });
});
