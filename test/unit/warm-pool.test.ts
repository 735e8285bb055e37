// The warm pool's count of VMs under way: a create that finishes while a pass awaits its list must
// not be counted as missing (that made one VM too many under load).
import { expect } from 'chai';
import { WarmPool, type WarmPoolDeps } from '../../src/controllers/pool/warm-pool.ts';
import type { GitspaceInfra } from '../../src/api/index.ts';
import type { CreateRequest, Instance, VmProvider } from '../../src/providers/types.ts';

describe('warm pool', () => {
  it('counts a create that ends during a pass as a member, not as missing', async () => {
    const cloud = new Map<string, Instance>();
    const creates: { req: CreateRequest; finish: () => void }[] = [];
    const gate: { list?: Promise<void> } = {};
    const provider = {
      create: (req: CreateRequest) => new Promise<Instance>((resolve) => {
        const inst: Instance = { id: req.name, name: req.name, zone: req.zone ?? 'z', state: 'running', privateIP: '10.0.0.1', agentPort: 1, machineType: 'small', createdAt: '', labels: req.labels };
        creates.push({ req, finish: () => { cloud.set(req.name, inst); resolve(inst); } });
      }),
      delete: () => Promise.resolve(),
    } as unknown as VmProvider;
    const deps = {
      gitspaces: { list: () => [] },
      enrolment: { boot: () => Promise.resolve({ facts: {}, labels: {} }) },
      observer: {
        // The list is what the cloud had when asked, answered after `gate.list` (a slow list call).
        all: async () => {
          const snapshot = [...cloud.values()];
          await gate.list;
          return snapshot;
        },
        put: () => undefined,
        forget: () => undefined,
      },
      probe: () => Promise.resolve({ ok: false }),
      log: { info: () => undefined, warn: () => undefined },
    } as unknown as WarmPoolDeps;
    const pool = new WarmPool(deps);
    const infra = {
      metadata: { name: 'i' },
      spec: { machineTypes: [{ name: 'small' }], pool: [{ machineType: 'small', zone: 'z', minReady: 2, max: 5 }] },
    } as unknown as GitspaceInfra;

    await pool.reconcile(infra, provider);
    await new Promise((r) => setImmediate(r));
    expect(creates).to.have.length(2);
    // The next pass lists the cloud (still empty); the two creates finish before the list answers.
    let release!: () => void;
    gate.list = new Promise((r) => (release = r));
    const pass = pool.reconcile(infra, provider);
    for (const c of creates) c.finish();
    await new Promise((r) => setImmediate(r));
    release();
    await pass;
    await new Promise((r) => setImmediate(r));
    expect(creates, 'no third VM').to.have.length(2);
    await pool.drain();
  });
});
