// When a Running Gitspace will be stopped, and why, from its idle timeout and run-time limit; and
// the sentence `kubectl describe` shows ("idle since 10:42 UTC (ssh); stops at 11:42 UTC …").
// Pure: the decision (decide.ts) and the status (status.ts) share it.
import type { ActivitySource, AutoStopReason } from '../../api/index.ts';

export interface DeadlineInput {
  now: number;
  idleTimeoutMs: number;
  maxRunTimeMs: number;
  /** The last activity (ms since the epoch) and what it was. */
  lastActivity?: { at: number; source?: ActivitySource };
  /** When it last started running (ms). */
  startedAt?: number;
}

export interface Deadlines {
  /** The earliest stop ahead and its reason; undefined when neither limit applies. */
  stopsAt?: number;
  reason?: Extract<AutoStopReason, 'Idle' | 'MaxRunTime'>;
  /** When to warn of the run-time limit (an Event), if there is one. */
  warnAt?: number;
}

/** How long before the run-time limit the warning Event comes: 10 minutes, a sixth for short limits. */
export function warningLeadMs(maxRunTimeMs: number): number {
  return Math.min(10 * 60_000, Math.floor(maxRunTimeMs / 6));
}

export function deadlines(i: DeadlineInput): Deadlines {
  const idleAt = i.idleTimeoutMs > 0 ? (i.lastActivity?.at ?? i.now) + i.idleTimeoutMs : undefined;
  const runAt = i.maxRunTimeMs > 0 ? (i.startedAt ?? i.now) + i.maxRunTimeMs : undefined;
  const out: Deadlines = {};
  if (runAt !== undefined) out.warnAt = runAt - warningLeadMs(i.maxRunTimeMs);
  if (idleAt === undefined && runAt === undefined) return out;
  if (runAt !== undefined && (idleAt === undefined || runAt <= idleAt)) return { ...out, stopsAt: runAt, reason: 'MaxRunTime' };
  return { ...out, stopsAt: idleAt, reason: 'Idle' };
}

/** An ISO time to the second (2026-11-30T10:42:07Z), as status and messages show times. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** 10:42 UTC, or Nov 30 10:42 UTC when not today. */
export function clock(ms: number, now: number): string {
  const d = new Date(ms);
  const hm = `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')} UTC`;
  if (new Date(now).toISOString().slice(0, 10) === d.toISOString().slice(0, 10)) return hm;
  return `${d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })} ${String(d.getUTCDate())} ${hm}`;
}

/** A Go-style duration as people write it: 90m → 1h30m. */
export function human(ms: number): string {
  const m = Math.round(ms / 60_000);
  if (m < 60) return `${String(m)}m`;
  return `${String(Math.floor(m / 60))}h${m % 60 ? `${String(m % 60)}m` : ''}`;
}

/** "idle since 10:42 UTC (ssh); stops at 11:42 UTC (idle timeout 1h)". */
export function runningSentence(i: DeadlineInput, d: Deadlines): string {
  const parts: string[] = [];
  if (i.lastActivity) parts.push(`idle since ${clock(i.lastActivity.at, i.now)}${i.lastActivity.source ? ` (${i.lastActivity.source})` : ''}`);
  if (d.stopsAt !== undefined) {
    parts.push(`stops at ${clock(d.stopsAt, i.now)} (${d.reason === 'MaxRunTime' ? `run-time limit ${human(i.maxRunTimeMs)}` : `idle timeout ${human(i.idleTimeoutMs)}`})`);
  } else parts.push('no idle timeout or run-time limit: runs until stopped');
  return parts.join('; ');
}
