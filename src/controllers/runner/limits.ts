// The operator's own stops besides the idle timeout: the run-time limit (maxRunTime, with a
// warning Event before it) and the VM of a Failed Gitspace (stopped after failedStopAfter, disk
// kept, counted in a metric). What decide() needs to know of them, and their bookkeeping.
import { parseDuration, type AutoStopReason, type Gitspace, type GitspaceInfra } from '../../api/index.ts';
import type { Counter } from 'prom-client';
import { keyOf } from '../../runtime/informer.ts';
import type { DecideInput, Decision } from './decide.ts';
import { human } from './deadlines.ts';
import { autoStopHolds } from './status.ts';

const DEFAULT_FAILED_STOP_AFTER = '30m';

export interface LimitsDeps {
  now: () => number;
  event: (gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string) => void;
  /** VMs of Failed Gitspaces stopped, by infra. */
  failedStopped?: Counter<'infra'>;
}

/** How a stop of the operator's own is recorded: the Event reason and lastRequest.via. */
export const STOP_KINDS: Record<AutoStopReason, { reason: string; via: string }> = {
  Idle: { reason: 'AutoStopped', via: 'idle-timeout' },
  MaxRunTime: { reason: 'MaxRunTimeReached', via: 'max-run-time' },
  Failed: { reason: 'FailedVMStopped', via: 'failed-stop-after' },
  Preempted: { reason: 'Preempted', via: 'spot-preemption' }, // the cloud's stop, recorded by preemption.ts
};

export class StopLimits {
  private readonly d: LimitsDeps;
  /** The run-time deadline each Gitspace was warned of (one warning per run). */
  private readonly warned = new Map<string, number>();

  constructor(d: LimitsDeps) {
    this.d = d;
  }

  maxRunTimeMs(gs: Gitspace, infra: GitspaceInfra): number {
    return parseDuration(gs.spec.maxRunTime ?? infra.spec.maxRunTime ?? '0') ?? 0;
  }

  private static failedStopAfterMs(infra: GitspaceInfra): number {
    return parseDuration(infra.spec.failedStopAfter ?? DEFAULT_FAILED_STOP_AFTER) ?? 0;
  }

  /** decide()'s inputs for the limits, from spec, infra and status. */
  inputs(gs: Gitspace, infra: GitspaceInfra): Pick<DecideInput, 'maxRunTimeMs' | 'startedAt' | 'failedStopAfterMs' | 'failedSince' | 'hold' | 'deleteAfterStoppedMs' | 'stoppedSince' | 'archived'> {
    const s = gs.status;
    const started = Date.parse(s?.startedAt ?? '');
    const failed = Date.parse(s?.failedAt ?? '');
    const stopped = Date.parse(s?.stoppedAt ?? '');
    return {
      deleteAfterStoppedMs: parseDuration(gs.spec.deleteAfterStopped ?? infra.spec.deleteAfterStopped ?? '0') ?? 0,
      ...(!Number.isNaN(stopped) ? { stoppedSince: stopped } : {}),
      ...(s?.archivedAt ? { archived: true } : {}),
      maxRunTimeMs: this.maxRunTimeMs(gs, infra),
      failedStopAfterMs: StopLimits.failedStopAfterMs(infra),
      ...(s?.phase === 'Running' && !Number.isNaN(started) ? { startedAt: started } : {}),
      ...(s?.phase === 'Failed' && !Number.isNaN(failed) ? { failedSince: failed } : {}),
      ...(s?.autoStopped && autoStopHolds(gs) ? { hold: s.autoStopped.reason ?? 'Idle' } : {}),
    };
  }

  /** The Event and lastRequest of a stop decided now. */
  why(gs: Gitspace, infra: GitspaceInfra, reason: AutoStopReason): { via: string; reason: string; message: string } {
    const k = STOP_KINDS[reason];
    const message = reason === 'MaxRunTime'
      ? `stopped by the operator: running since ${gs.status?.startedAt ?? 'an unknown time'}, its run-time limit (${human(this.maxRunTimeMs(gs, infra))}) is reached`
      : reason === 'Failed'
        ? `stopped the VM of the failed Gitspace ${human(StopLimits.failedStopAfterMs(infra))} after it failed (the disk is kept for inspection)`
        : '';
    return { ...k, message };
  }

  /** Counts a stop whose intent is written (after the write: a conflict retried must not count twice). */
  stopped(infra: GitspaceInfra, reason: AutoStopReason): void {
    if (reason === 'Failed') this.d.failedStopped?.inc({ infra: infra.metadata.name ?? '' });
  }

  /** A warning Event once per run, when the run-time limit is near. */
  warn(gs: Gitspace, d: Decision): void {
    const dl = d.deadlines;
    if (d.phase !== 'Running' || !dl || dl.warnAt === undefined || this.d.now() < dl.warnAt) return;
    const runAt = dl.reason === 'MaxRunTime' ? dl.stopsAt : undefined;
    if (runAt === undefined || this.warned.get(keyOf(gs)) === runAt) return;
    this.warned.set(keyOf(gs), runAt);
    const mins = Math.max(1, Math.round((runAt - this.d.now()) / 60_000));
    this.d.event(gs, 'Warning', 'StopSoon', `the run-time limit stops this Gitspace at ${new Date(runAt).toISOString()} (in about ${String(mins)} min), busy or not; save your work`);
  }

  /** A warning Event once, a day (or a tenth of the retention) before a stopped Gitspace is archived. */
  warnArchive(gs: Gitspace, d: Decision): void {
    if (d.archiveAt === undefined || d.archiveWarnAt === undefined || this.d.now() < d.archiveWarnAt) return;
    const k = `archive/${keyOf(gs)}`;
    if (this.warned.get(k) === d.archiveAt) return;
    this.warned.set(k, d.archiveAt);
    this.d.event(gs, 'Warning', 'ArchiveSoon', `this stopped Gitspace's VM and disk are deleted at ${new Date(d.archiveAt).toISOString()} (deleteAfterStopped); start it before then to keep them, or push your work`);
  }

  forget(key: string): void {
    this.warned.delete(key);
    this.warned.delete(`archive/${key}`);
  }
}
