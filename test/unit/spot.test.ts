// Spot VMs, the pure parts: when a preemption is news (and when it is an old one a start has
// answered), what a held preemption looks like, how each cloud's fields read as a preemption
// (GCE: preempted operations against lastStartTimestamp; EC2: StateTransitionReason's time), and
// the GCE fake's checks of an insert's scheduling and of an operations filter.
import { expect } from 'chai';
import { decide } from '../../src/controllers/runner/decide.ts';
import { newPreemption, preemptedDecision, preemptionInput, type PreemptionInput } from '../../src/controllers/runner/preemption.ts';
import { transitionTime } from '../../src/providers/aws/provider.ts';
import { isSpot, lastPreemption, PREEMPTED_OPERATION, SPOT_SCHEDULING } from '../../src/providers/gcp/preemption.ts';
import type { Gitspace } from '../../src/api/index.ts';
import { operationFilter, schedulingError, terminationAction } from '../fakes/gce/spot.ts';

const T0 = Date.parse('2026-11-30T10:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString().replace('.000Z', 'Z');

describe('spot VMs', () => {
  it('records a preemption once: only while the VM was meant to be up, and not one a later start answered', () => {
    const preempted = { state: 'stopped' as const, stopReason: 'preempted' as const, preemptedAt: at(-2) };
    const base: PreemptionInput = { desired: 'Running', instance: preempted, phase: 'Running', now: T0 };
    const table: [string, Partial<PreemptionInput>, string | undefined][] = [
      ['running, then preempted', {}, at(-2)],
      ['preempted while starting', { phase: 'Starting' }, at(-2)],
      ['preempted while EC2 was stopping it for the interruption', { phase: 'Stopping' }, at(-2)],
      ['the cloud did not say when: when it was seen', { instance: { state: 'stopped', stopReason: 'preempted' } }, at(0)],
      ['already recorded: the phase is Stopped', { phase: 'Stopped' }, undefined],
      ['held (an idle stop or this preemption): desired Stopped', { desired: 'Stopped' }, undefined],
      ['a stop of ours, not the cloud', { instance: { state: 'stopped' } }, undefined],
      ['not stopped (yet)', { instance: { state: 'stopping', stopReason: 'preempted' } }, undefined],
      ['no instance', { instance: undefined }, undefined],
      ['a wake after it (a stale look while starting again)', { phase: 'Starting', wake: at(-1) }, undefined],
      ['a start request after it', { phase: 'Starting', lastStart: at(-1) }, undefined],
      ['a wake before it does not answer it', { wake: at(-5), lastStart: at(-6) }, at(-2)],
      ['a Failed Gitspace keeps its own story', { phase: 'Failed' }, undefined],
    ];
    for (const [name, over, want] of table) expect(newPreemption({ ...base, ...over }), name).to.equal(want);
  });

  it('holds a preempted Gitspace Stopped with reason Preempted, and stops a VM the cloud restarted by itself', () => {
    const d = decide({ desired: 'Stopped', hold: 'Preempted', preemptedAt: at(-2), instance: { state: 'stopped' }, idleTimeoutMs: 0, now: T0 });
    expect(d).to.deep.equal(preemptedDecision(at(-2)));
    // Looked at again: EC2 may restart an interrupted instance by itself.
    expect(d).to.include({ action: 'none', phase: 'Stopped', requeueAfterMs: 30_000 });
    expect(d.conditions.Ready).to.deep.equal({ status: 'False', reason: 'Preempted', message: `the cloud reclaimed the spot VM at ${at(-2)}; start it again to resume (the disk is kept)` });
    // EC2 restarts an interrupted instance when capacity returns: while held, it is stopped again.
    expect(decide({ desired: 'Stopped', hold: 'Preempted', instance: { state: 'running' }, idleTimeoutMs: 0, now: T0 }).action).to.equal('stop');
    // A wake lifts the hold (desired Running): the same VM is started.
    expect(decide({ desired: 'Running', instance: { state: 'stopped' }, idleTimeoutMs: 0, now: T0 }).action).to.equal('start');
    const gs = (reason: string) => ({ status: { autoStopped: { at: at(-2), generation: 1, reason } } }) as unknown as Gitspace;
    expect(preemptionInput(gs('Preempted'))).to.deep.equal({ preemptedAt: at(-2) });
    expect(preemptionInput(gs('Idle'))).to.deep.equal({});
  });

  it('reads a GCE preemption from compute.instances.preempted operations later than the last start', () => {
    const vm = { scheduling: { provisioningModel: 'SPOT' }, creationTimestamp: at(-60), lastStartTimestamp: at(-30) };
    const op = (t: string, type = PREEMPTED_OPERATION) => ({ operationType: type, insertTime: t });
    const table: [string, Parameters<typeof lastPreemption>[1], string | undefined][] = [
      ['preempted after the last start', [op(at(-5))], new Date(T0 - 5 * 60_000).toISOString()],
      ['the latest of several', [op(at(-40)), op(at(-5)), op(at(-20))], new Date(T0 - 5 * 60_000).toISOString()],
      ['an old preemption, started since (then stopped by us)', [op(at(-40))], undefined],
      ['another kind of operation', [op(at(-5), 'stop')], undefined],
      ['none', [], undefined],
    ];
    for (const [name, ops, want] of table) expect(lastPreemption(vm, ops), name).to.equal(want);
    expect(lastPreemption({ creationTimestamp: at(-60) }, [op(at(-5))]), 'never started again: since creation').to.equal(new Date(T0 - 5 * 60_000).toISOString());
    expect([isSpot(vm), isSpot({ scheduling: { preemptible: true } }), isSpot({ scheduling: { provisioningModel: 'STANDARD' } }), isSpot({})]).to.deep.equal([true, true, false, false]);
  });

  it('reads the time of an EC2 state transition', () => {
    expect(transitionTime('Service initiated (2026-11-30 10:42:07 GMT)')).to.equal('2026-11-30T10:42:07.000Z');
    expect(transitionTime('User initiated (2026-11-30 10:42:07 UTC)')).to.equal('2026-11-30T10:42:07.000Z');
    expect(transitionTime('')).to.equal(undefined);
    expect(transitionTime(undefined)).to.equal(undefined);
    expect(transitionTime('User initiated (yesterday)')).to.equal(undefined);
  });

  it('GCE fake: checks scheduling as GCE does, and filters operations', () => {
    expect(schedulingError({ ...SPOT_SCHEDULING })).to.equal(undefined);
    expect(schedulingError({})).to.equal(undefined);
    expect(schedulingError({ provisioningModel: 'SPOT', automaticRestart: true })).to.match(/automaticRestart/);
    expect(schedulingError({ provisioningModel: 'SPOT', onHostMaintenance: 'MIGRATE' })).to.match(/onHostMaintenance/);
    expect(schedulingError({ provisioningModel: 'CHEAP' })).to.match(/provisioningModel/);
    expect(schedulingError({ provisioningModel: 'SPOT', instanceTerminationAction: 'PAUSE' })).to.match(/instanceTerminationAction/);
    expect([terminationAction({ provisioningModel: 'SPOT' }), terminationAction({ instanceTerminationAction: 'DELETE' })]).to.deep.equal(['STOP', 'DELETE']);
    const match = operationFilter(`operationType="${PREEMPTED_OPERATION}" AND targetLink="https://x/i1"`);
    if (typeof match === 'string') throw new Error(match);
    expect(match({ operationType: PREEMPTED_OPERATION, targetLink: 'https://x/i1' })).to.equal(true);
    expect(match({ operationType: PREEMPTED_OPERATION, targetLink: 'https://x/i2' })).to.equal(false);
    expect(match({ operationType: 'stop', targetLink: 'https://x/i1' })).to.equal(false);
    expect(operationFilter('name != x')).to.be.a('string');
  });
});
