// Scheduled warm pools: which minReady a pool entry's schedules put in force at an instant, and
// when that next changes. Pure (the clock is an argument); time zones through Intl.
//
// A schedule's cron marks the START of a window. At instant t the entry's minReady is that of the
// schedule that started most recently in (t - 8 days, t] (at the same instant, the later one in
// the list), else the entry's own minReady.
//
// Daylight saving time, decided here (docs/decisions.md has the why):
// - a start time that does not exist that day (Europe/Berlin 2026-03-29, 02:00 → 03:00) starts
//   at the first minute after the jump (03:00 local, 01:00 UTC), as Vixie cron runs such jobs
//   right after the change;
// - a start time that happens twice (2026-10-25, 02:00-02:59 twice) starts once, the first time.
import { SCHEDULE_LOOKBACK_DAYS, type PoolSchedule } from '../../api/pool-schedule.ts';
import { CronError, nextMatch, parseCron, prevMatch, type Cron } from './cron.ts';

export class ScheduleError extends Error {}

const MINUTE = 60_000;
const DAY_MS = 86_400_000;
const LOOKBACK_MS = SCHEDULE_LOOKBACK_DAYS * DAY_MS;
/** How far ahead nextChange looks (a yearly schedule still shows its next start). */
const HORIZON_MS = 400 * DAY_MS;
/** Wall minutes that can map to instants out of order: a DST fold is at most 3 hours (Troll). */
const FOLD_MINUTES = 180;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    } catch {
      throw new ScheduleError(`unknown time zone "${zone}"`);
    }
    // Only zones Intl accepted are kept: a bounded set.
    formatters.set(zone, f);
  }
  return f;
}

/** The wall-clock minute in `zone` at `instant` (see cron.ts). */
export function wallMinute(zone: string, instant: number): number {
  const p: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(instant)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0) / MINUTE;
}

function offsetAt(zone: string, instant: number): number {
  const minute = Math.floor(instant / MINUTE) * MINUTE;
  return wallMinute(zone, minute) * MINUTE - minute;
}

/**
 * The instant a wall minute happens in `zone`: the first of two in a fold, and for a minute the
 * clocks jump over, the instant of the jump (the first minute that exists after it).
 */
export function instantOf(zone: string, wall: number): number {
  const guess = wall * MINUTE;
  // Within a day either side there is at most one change of offset in every real zone.
  const offsets = [...new Set([offsetAt(zone, guess - DAY_MS), offsetAt(zone, guess), offsetAt(zone, guess + DAY_MS)])];
  const exact = offsets.map((o) => guess - o).filter((c) => wallMinute(zone, c) === wall);
  if (exact.length) return Math.min(...exact);
  // Skipped: the first minute whose wall clock is past `wall`.
  let lo = guess - Math.max(...offsets);
  let hi = guess - Math.min(...offsets);
  while (hi - lo > MINUTE) {
    const mid = lo + Math.floor((hi - lo) / 2 / MINUTE) * MINUTE;
    if (wallMinute(zone, mid) > wall) hi = mid;
    else lo = mid;
  }
  return hi;
}

interface Compiled {
  cron: Cron;
  zone: string;
  minReady: number;
}

interface Start {
  at: number;
  index: number;
}

/** The latest start of `s` in (since, t]. */
function lastStart(s: Compiled, t: number, since: number): number | undefined {
  const wt = wallMinute(s.zone, t);
  const found = prevMatch(s.cron, wt, wt - Math.ceil((t - since) / MINUTE) - 1440);
  let at = found === undefined ? undefined : instantOf(s.zone, found);
  // In a fold's second pass, a later wall minute may have started (its first pass) before t.
  let cursor = wt;
  for (;;) {
    const n = nextMatch(s.cron, cursor, wt + FOLD_MINUTES);
    if (n === undefined) break;
    const nAt = instantOf(s.zone, n);
    if (nAt > t) break;
    [at, cursor] = [nAt, n];
  }
  return at !== undefined && at > since ? at : undefined;
}

/** The first start of `s` after t, up to `until`. */
function nextStart(s: Compiled, t: number, until: number): number | undefined {
  let cursor = wallMinute(s.zone, t);
  const limit = cursor + Math.ceil((until - t) / MINUTE) + 1440;
  for (;;) {
    const n = nextMatch(s.cron, cursor, limit);
    if (n === undefined) return undefined;
    const at = instantOf(s.zone, n);
    // Minutes of a fold's first pass (already started) and of a skipped hour (all at the jump) are passed over.
    if (at > t) return at <= until ? at : undefined;
    cursor = n;
  }
}

export interface ScheduledEntry {
  minReady?: number;
  schedules?: PoolSchedule[];
}

/** Parses an entry's schedules; a ScheduleError names the schedule and what is wrong. */
function compile(entry: ScheduledEntry): Compiled[] {
  return (entry.schedules ?? []).map((s, i) => {
    const zone = s.timezone ?? 'UTC';
    try {
      formatter(zone);
    } catch (e) {
      throw new ScheduleError(`schedules[${String(i)}].timezone: ${(e as Error).message}`);
    }
    try {
      return { cron: parseCron(s.cron), zone, minReady: s.minReady };
    } catch (e) {
      if (e instanceof CronError) throw new ScheduleError(`schedules[${String(i)}].cron "${s.cron}": ${e.message}`);
      throw e;
    }
  });
}

function winner(all: Compiled[], t: number): Start | undefined {
  let best: Start | undefined;
  all.forEach((s, index) => {
    const at = lastStart(s, t, t - LOOKBACK_MS);
    if (at !== undefined && (!best || at >= best.at)) best = { at, index };
  });
  return best;
}

function valueAt(all: Compiled[], fallback: number, t: number): { value: number; start?: Start } {
  const w = winner(all, t);
  return w ? { value: all[w.index]?.minReady ?? fallback, start: w } : { value: fallback };
}

/** The entry's minReady in force at `now` (ms). Throws a ScheduleError for a schedule it cannot read. */
export function effectiveMinReady(entry: ScheduledEntry, now: number): number {
  return valueAt(compile(entry), entry.minReady ?? 0, now).value;
}

/** When (ms) the entry's minReady next changes after `now`; undefined when not within 400 days. */
export function nextChange(entry: ScheduledEntry, now: number): number | undefined {
  return plan(compile(entry), entry.minReady ?? 0, now).nextChange;
}

function plan(all: Compiled[], fallback: number, now: number): { minReady: number; nextChange?: number } {
  const until = now + HORIZON_MS;
  const first = valueAt(all, fallback, now);
  const cur = first.value;
  let { start } = first;
  let t = now;
  // Each round passes one instant where a schedule of another value started but lost a tie.
  for (let round = 0; round < 100; round++) {
    let other = Infinity;
    for (const s of all) {
      if (s.minReady === cur) continue;
      const at = nextStart(s, t, until);
      if (at !== undefined && at < other) other = at;
    }
    // Without a start of the same value for 8 days, the value lapses to the entry's own.
    if (start && fallback !== cur) {
      let last = start.at;
      while (last + LOOKBACK_MS < other && last + LOOKBACK_MS <= until) {
        let latest: number | undefined;
        for (const s of all) {
          if (s.minReady !== cur) continue;
          const at = lastStart(s, last + LOOKBACK_MS, last);
          if (at !== undefined && (latest === undefined || at > latest)) latest = at;
        }
        if (latest === undefined) return { minReady: cur, nextChange: last + LOOKBACK_MS };
        last = latest;
      }
    }
    if (other === Infinity) return { minReady: cur };
    const next = valueAt(all, fallback, other);
    if (next.value !== cur) return { minReady: cur, nextChange: other };
    t = other;
    start = next.start;
  }
  return { minReady: cur };
}

export type SchedulePlan = { minReady: number; nextChange?: number; error?: undefined } | { minReady: number; nextChange?: undefined; error: string };

/**
 * What the pool keeps for an entry at `now`: the scheduled minReady and when it next changes, or,
 * when a schedule cannot be read, the entry's own minReady and the error (reported, not thrown).
 */
export function schedulePlan(entry: ScheduledEntry, now: number): SchedulePlan {
  const fallback = entry.minReady ?? 0;
  if (!entry.schedules?.length) return { minReady: fallback };
  let all: Compiled[];
  try {
    all = compile(entry);
  } catch (e) {
    if (e instanceof ScheduleError) return { minReady: fallback, error: e.message };
    throw e;
  }
  return plan(all, fallback, now);
}
