// The resize decision table: a stopped VM is resized, a running one gets pendingChanges, a
// smaller disk is refused; and the MachineUpToDate condition each case writes.
import { expect } from 'chai';
import { planResize, resizeBackoffMs, resizeCondition, type ResizeInput } from '../../src/controllers/runner/resize.ts';
import { gitspaceStatusSchema } from '../../src/api/gitspace.ts';

const offered = [
  { name: 'small', providerType: 'e2-standard-2', diskSizeGB: 50 },
  { name: 'large', providerType: 'e2-standard-4', diskSizeGB: 100 },
  { name: 'tiny-disk', providerType: 'e2-standard-2', diskSizeGB: 20 },
];
const large = offered[1]!;
const vm = (state: 'running' | 'stopped' | 'stopping' | 'pending' | 'terminated', machineType = 'e2-standard-2', diskSizeGB: number | null = 50) => ({ state, machineType, ...(diskSizeGB !== null ? { diskSizeGB } : {}) });

describe('runner planResize()', () => {
  const rows: [string, ResizeInput, { resize?: object; fields: string[]; refused?: RegExp; summary?: string; when?: RegExp }][] = [
    ['no instance: nothing (the create uses the new type)', { want: large, offered }, { fields: [] }],
    ['terminated instance: nothing', { instance: vm('terminated'), want: large, offered }, { fields: [] }],
    ['unchanged: nothing', { instance: vm('running'), want: offered[0]!, offered }, { fields: [] }],
    ['stopped, type and disk grow: resize both', { instance: vm('stopped'), want: large, offered }, {
      resize: { providerType: 'e2-standard-4', diskSizeGB: 100 }, fields: ['machineType', 'diskSizeGB'],
      summary: 'e2-standard-2 → e2-standard-4, disk 50 → 100 GB', when: /before the next start/,
    }],
    ['running, type and disk grow: pending, no resize', { instance: vm('running'), want: large, offered }, { fields: ['machineType', 'diskSizeGB'], when: /at the next stop/ }],
    ['stopping: pending, not yet', { instance: vm('stopping'), want: large, offered }, { fields: ['machineType', 'diskSizeGB'], when: /at the next stop/ }],
    ['booting: pending', { instance: vm('pending'), want: large, offered }, { fields: ['machineType', 'diskSizeGB'] }],
    ['stopped, disk only grows', { instance: vm('stopped', 'e2-standard-4', 50), want: large, offered }, { resize: { diskSizeGB: 100 }, fields: ['diskSizeGB'], summary: 'disk 50 → 100 GB' }],
    ['stopped, smaller disk: refused, nothing to do', { instance: vm('stopped', 'e2-standard-2', 100), want: offered[0]!, offered }, { fields: [], refused: /^disks only grow: 100 → 50 GB/ }],
    ['running, smaller disk: refused, VM kept as it is', { instance: vm('running', 'e2-standard-2', 100), want: offered[2]!, offered }, { fields: [], refused: /^disks only grow: 100 → 20 GB/ }],
    ['stopped, new type and smaller disk: the type changes, the disk stays', { instance: vm('stopped', 'e2-standard-4', 100), want: offered[2]!, offered }, {
      resize: { providerType: 'e2-standard-2' }, fields: ['machineType'], refused: /disks only grow: 100 → 20 GB/, summary: 'e2-standard-4 → e2-standard-2',
    }],
    ['stopped standard VM, machine type now spot, GCE: made spot before it starts', { instance: { ...vm('stopped'), spot: false }, want: { ...offered[0]!, spot: true }, offered, spotChangeable: true }, {
      resize: { spot: true }, fields: ['spot'], summary: 'standard → spot', when: /before the next start/,
    }],
    ['running spot VM, machine type now standard, GCE: pending', { instance: { ...vm('running'), spot: true }, want: offered[0]!, offered, spotChangeable: true }, { fields: ['spot'], when: /at the next stop/ }],
    ['stopped spot VM, machine type now standard, EC2: refused, it stays spot', { instance: { ...vm('stopped'), spot: true }, want: offered[0]!, offered, spotChangeable: false }, {
      fields: [], refused: /^machine type small is now standard but this cloud cannot switch an existing instance between spot and standard: it stays spot until it is archived or re-created$/,
    }],
    ['spot unknown on the instance (local): not compared', { instance: vm('stopped'), want: { ...offered[0]!, spot: true }, offered, spotChangeable: true }, { fields: [] }],
    ['stopped, everything changes, EC2: type and disk resized, spot refused', { instance: { ...vm('stopped'), spot: false }, want: { ...large, spot: true }, offered, spotChangeable: false }, {
      resize: { providerType: 'e2-standard-4', diskSizeGB: 100 }, fields: ['machineType', 'diskSizeGB'], refused: /cannot switch an existing instance between spot and standard/,
    }],
    ['disk size unknown (not reported): only the type is compared', { instance: vm('stopped', 'e2-standard-2', null), want: large, offered }, { resize: { providerType: 'e2-standard-4' }, fields: ['machineType'] }],
  ];
  for (const [name, input, want] of rows) {
    it(name, () => {
      const p = planResize(input);
      expect(p.resize).to.deep.equal(want.resize);
      expect(p.pending.map((c) => c.field)).to.deep.equal(want.fields);
      if (want.refused) expect(p.refused).to.match(want.refused);
      else expect(p.refused).to.equal(undefined);
      if (want.summary !== undefined) expect(p.summary).to.equal(want.summary);
      if (want.when) for (const c of p.pending) expect(c.message).to.match(want.when);
    });
  }

  it('names both machine types in the message when the infra offers the current one', () => {
    const p = planResize({ instance: vm('running'), want: large, offered });
    expect(p.pending[0]).to.deep.equal({ field: 'machineType', from: 'e2-standard-2', to: 'e2-standard-4', message: 'machineType small → large (e2-standard-2 → e2-standard-4) is applied at the next stop' });
    expect(p.pending[1]).to.deep.equal({ field: 'diskSizeGB', from: '50', to: '100', message: 'disk 50 → 100 GB is applied at the next stop' });
  });

  it('shows the provider type when no entry of the infra has it', () => {
    const p = planResize({ instance: vm('running', 'n2-standard-8'), want: large, offered });
    expect(p.pending[0]?.message).to.equal('machineType n2-standard-8 → large (e2-standard-4) is applied at the next stop');
  });

  it('fits the status schema (pendingChanges bounded)', () => {
    const json = gitspaceStatusSchema.json as { properties: { pendingChanges: { maxItems?: number; items?: { properties?: Record<string, { maxLength?: number }> } } } };
    const s = json.properties.pendingChanges;
    const p = planResize({ instance: { ...vm('running', 'x'.repeat(128), 1000), spot: true }, want: { name: 'y'.repeat(63), providerType: 'z'.repeat(128), diskSizeGB: 65536 }, offered: [], spotChangeable: true });
    expect(p.pending).to.have.length(3);
    expect(p.pending.length).to.be.at.most(s.maxItems ?? 0);
    for (const c of p.pending) expect(c.message.length).to.be.at.most(s.items?.properties?.message?.maxLength ?? 0);
  });
});

describe('runner resizeCondition()', () => {
  const pending = planResize({ instance: vm('running'), want: large, offered });
  const refused = planResize({ instance: vm('running', 'e2-standard-2', 100), want: offered[0]!, offered });
  const none = planResize({ instance: vm('running'), want: offered[0]!, offered });
  const rows: [string, ReturnType<typeof planResize>, Parameters<typeof resizeCondition>[1], { status: string } | undefined, [string, string] | undefined][] = [
    ['never drifted: no condition', none, {}, undefined, undefined],
    ['pending', pending, {}, undefined, ['False', 'ResizePending']],
    ['refused wins over pending', refused, {}, undefined, ['False', 'ResizeRefused']],
    ['the cloud refused', pending, { failure: 'quota' }, undefined, ['False', 'ResizeFailed']],
    ['just resized', none, { resized: 'e2-standard-2 → e2-standard-4' }, undefined, ['True', 'Resized']],
    ['back in line after a pending change was withdrawn', none, {}, { status: 'False' }, ['True', 'UpToDate']],
    ['still in line: leave the condition as it is', none, {}, { status: 'True' }, undefined],
  ];
  for (const [name, plan, outcome, old, want] of rows) {
    it(name, () => {
      const c = resizeCondition(plan, outcome, old);
      if (!want) expect(c).to.equal(undefined);
      else expect([c?.status, c?.reason]).to.deep.equal(want);
    });
  }

  it('carries the refusal text', () => {
    expect(resizeCondition(refused, {}, undefined)?.message).to.match(/^disks only grow: 100 → 50 GB/);
  });

  it('backs off 5 s, doubling, at most 5 minutes', () => {
    expect([1, 2, 3, 7, 20].map(resizeBackoffMs)).to.deep.equal([5_000, 10_000, 20_000, 300_000, 300_000]);
  });
});
