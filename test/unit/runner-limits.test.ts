// The operator's stops by the clock: the idle deadline and the run-time limit (which comes first,
// the warning before it, the sentence kubectl describe shows), and the VM of a Failed Gitspace.
import { expect } from 'chai';
import { decide, type DecideInput } from '../../src/controllers/runner/decide.ts';
import { deadlines, runningSentence, warningLeadMs } from '../../src/controllers/runner/deadlines.ts';

const M = 60_000;
const T0 = Date.parse('2026-11-30T10:00:00Z');
const ready = (lastActivity: number, source: 'ssh' | 'ide' = 'ssh'): DecideInput['agent'] => ({ reachable: true, state: 'ready', lastActivityTime: new Date(lastActivity).toISOString(), lastActivitySource: source });
const running: Pick<DecideInput, 'desired' | 'instance'> = { desired: 'Running', instance: { state: 'running', address: '10.0.0.2' } };

describe('runner: idle timeout, run-time limit, failed VMs', () => {
  it('stops at the earlier of the idle deadline and the run-time limit', () => {
    const table: [string, Parameters<typeof deadlines>[0], number | undefined, string | undefined][] = [
      ['idle only', { now: T0, idleTimeoutMs: 60 * M, maxRunTimeMs: 0, lastActivity: { at: T0 - 10 * M } }, T0 + 50 * M, 'Idle'],
      ['limit only', { now: T0, idleTimeoutMs: 0, maxRunTimeMs: 8 * 60 * M, startedAt: T0 - 60 * M }, T0 + 7 * 60 * M, 'MaxRunTime'],
      ['limit first', { now: T0, idleTimeoutMs: 60 * M, maxRunTimeMs: 120 * M, startedAt: T0 - 100 * M, lastActivity: { at: T0 } }, T0 + 20 * M, 'MaxRunTime'],
      ['idle first', { now: T0, idleTimeoutMs: 60 * M, maxRunTimeMs: 600 * M, startedAt: T0, lastActivity: { at: T0 } }, T0 + 60 * M, 'Idle'],
      ['neither', { now: T0, idleTimeoutMs: 0, maxRunTimeMs: 0 }, undefined, undefined],
    ];
    for (const [name, input, at, reason] of table) {
      const d = deadlines(input);
      expect([d.stopsAt, d.reason], name).to.deep.equal([at, reason]);
    }
    expect(warningLeadMs(8 * 60 * M)).to.equal(10 * M);
    expect(warningLeadMs(12 * M)).to.equal(2 * M);
  });

  it('reads as a sentence: idle since when (how), stops at when (why)', () => {
    const input = { now: T0, idleTimeoutMs: 60 * M, maxRunTimeMs: 0, lastActivity: { at: T0 - 18 * M, source: 'ssh' as const } };
    expect(runningSentence(input, deadlines(input))).to.equal('idle since 09:42 UTC (ssh); stops at 10:42 UTC (idle timeout 1h)');
    const limit = { now: T0, idleTimeoutMs: 0, maxRunTimeMs: 90 * M, startedAt: T0 - 30 * M };
    expect(runningSentence(limit, deadlines(limit))).to.equal('stops at 11:00 UTC (run-time limit 1h30m)');
    // A stop after midnight UTC names its day (CI once ran this at 22:11 UTC).
    const late = { now: Date.parse('2026-11-30T22:11:00Z'), idleTimeoutMs: 0, maxRunTimeMs: 120 * M, startedAt: Date.parse('2026-11-30T22:11:00Z') };
    expect(runningSentence(late, deadlines(late))).to.equal('stops at Dec 1 00:11 UTC (run-time limit 2h)');
  });

  it('stops a busy Gitspace at its run-time limit, and looks again at the warning time', () => {
    const base = { ...running, idleTimeoutMs: 60 * M, maxRunTimeMs: 120 * M, startedAt: T0 };
    const before = decide({ ...base, agent: ready(T0 + 100 * M), now: T0 + 100 * M });
    expect(before.action).to.equal('none');
    expect(before.deadlines).to.include({ stopsAt: T0 + 120 * M, reason: 'MaxRunTime', warnAt: T0 + 110 * M });
    expect(before.requeueAfterMs).to.be.at.most(30_000);
    const at = decide({ ...base, agent: ready(T0 + 120 * M - 1), now: T0 + 120 * M });
    expect(at).to.include({ action: 'autoStop', stopReason: 'MaxRunTime', phase: 'Stopping' });
    // Idle comes first when the user went away.
    expect(decide({ ...base, agent: ready(T0), now: T0 + 61 * M })).to.include({ action: 'autoStop', stopReason: 'Idle' });
  });

  it('says why a Gitspace the operator stopped is Stopped (run-time limit) or still Failed (its VM stopped)', () => {
    const stopped = { desired: 'Stopped' as const, instance: { state: 'stopped' as const }, idleTimeoutMs: 0, now: T0 };
    expect(decide({ ...stopped, hold: 'MaxRunTime', maxRunTimeMs: 480 * M })).to.include({ phase: 'Stopped', action: 'none' });
    expect(decide({ ...stopped, hold: 'MaxRunTime', maxRunTimeMs: 480 * M }).message).to.include('run-time limit (8h)');
    const failed = decide({ ...stopped, hold: 'Failed', failedStopAfterMs: 30 * M });
    expect(failed).to.include({ phase: 'Failed', action: 'none' });
    expect(failed.message).to.include('disk is kept');
  });

  it('stops the VM of a Failed Gitspace after failedStopAfter, never before, and not at all with 0', () => {
    const agent: DecideInput['agent'] = { reachable: true, state: 'failed', step: { name: 'postCreateCommand', message: 'exit 1' } };
    const base = { ...running, agent, idleTimeoutMs: 60 * M, failedSince: T0 };
    expect(decide({ ...base, failedStopAfterMs: 30 * M, now: T0 + 29 * M })).to.include({ action: 'none', phase: 'Failed' });
    expect(decide({ ...base, failedStopAfterMs: 30 * M, now: T0 + 29 * M }).requeueAfterMs).to.be.at.most(30_000);
    expect(decide({ ...base, failedStopAfterMs: 30 * M, now: T0 + 30 * M })).to.include({ action: 'autoStop', stopReason: 'Failed', phase: 'Failed' });
    expect(decide({ ...base, failedStopAfterMs: 0, now: T0 + 300 * M })).to.include({ action: 'none', phase: 'Failed' });
  });

  it('archives a Gitspace stopped past deleteAfterStopped, and stays Archived while the cloud finishes the delete', () => {
    const H = 3_600_000;
    const base = { desired: 'Stopped' as const, idleTimeoutMs: 0, deleteAfterStoppedMs: 48 * H, stoppedSince: T0 };
    const before = decide({ ...base, instance: { state: 'stopped' }, now: T0 + 47 * H });
    expect(before).to.include({ action: 'none', phase: 'Stopped', archiveAt: T0 + 48 * H, archiveWarnAt: T0 + 48 * H - 4.8 * H });
    expect(before.message).to.equal(`stopped; the instance and its disk are kept; deleted at ${new Date(T0 + 48 * H).toISOString().slice(11, 16)} UTC (deleteAfterStopped 48h) unless started before then`);
    expect(decide({ ...base, instance: { state: 'stopped' }, now: T0 + 48 * H })).to.include({ action: 'archive', phase: 'Archived' });
    for (const state of ['stopping', 'terminated'] as const) expect(decide({ ...base, archived: true, instance: { state }, now: T0 + 49 * H }), state).to.include({ action: 'none', phase: 'Archived' });
    expect(decide({ ...base, archived: true, now: T0 + 49 * H })).to.include({ action: 'none', phase: 'Archived' });
    // Started again: a new VM.
    expect(decide({ ...base, desired: 'Running', archived: true, now: T0 + 49 * H })).to.include({ action: 'create', phase: 'Provisioning' });
    // A Failed Gitspace whose VM was stopped is kept for inspection, then archived the same way.
    const failed = { ...base, hold: 'Failed' as const, failedStopAfterMs: 30 * M, instance: { state: 'stopped' as const } };
    expect(decide({ ...failed, now: T0 + 47 * H })).to.include({ action: 'none', phase: 'Failed', archiveAt: T0 + 48 * H });
    expect(decide({ ...failed, now: T0 + 47 * H }).message).to.match(/^set-up failed; .*; deleted at 10:00 UTC \(deleteAfterStopped 48h\) unless started before then$/);
    expect(decide({ ...failed, now: T0 + 48 * H })).to.include({ action: 'archive', phase: 'Archived' });
    // Without retention nothing is archived.
    expect(decide({ ...base, deleteAfterStoppedMs: 0, instance: { state: 'stopped' }, now: T0 + 4800 * H })).to.include({ action: 'none', phase: 'Stopped' });
  });
});
