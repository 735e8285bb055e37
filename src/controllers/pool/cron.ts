// Five-field cron expressions, matched against wall-clock minutes. A "wall minute" is a local
// date and time counted as minutes since 1970-01-01 00:00 of the same calendar (what
// Date.UTC(y, m - 1, d, h, min) / 60000 gives), so day arithmetic needs no time zone; schedule.ts
// turns wall minutes into instants in a zone.
import { CRON_DAY_NAMES, CRON_MONTH_NAMES } from '../../api/pool-schedule.ts';

export class CronError extends Error {}

export interface Cron {
  /** Matching minutes of the day (hour * 60 + minute), ascending. */
  minutesOfDay: number[];
  daysOfMonth: boolean[];
  months: boolean[];
  daysOfWeek: boolean[];
  /** Both day fields restricted: a day matches when either does (Vixie cron). */
  eitherDay: boolean;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: CRON_MONTH_NAMES },
  // 7 is Sunday too; folded into 0 below.
  { name: 'day-of-week', min: 0, max: 7, names: CRON_DAY_NAMES },
];

const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function value(text: string, f: FieldSpec): number {
  const named = f.names?.indexOf(text.toUpperCase()) ?? -1;
  // Month names count from 1, day names from 0 (SUN).
  if (named >= 0) return f.name === 'month' ? named + 1 : named;
  if (!/^[0-9]{1,2}$/.test(text)) throw new CronError(`${f.name} "${text}" is not a number${f.names ? ' or a name' : ''}`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw new CronError(`${f.name} ${text} is out of range ${String(f.min)}-${String(f.max)}`);
  return n;
}

function parseField(text: string, f: FieldSpec): boolean[] {
  const set = new Array<boolean>(f.max + 1).fill(false);
  for (const element of text.split(',')) {
    const [range = '', step, extra] = element.split('/');
    if (extra !== undefined || range === '') throw new CronError(`${f.name} "${element}" is not a value, range or step`);
    let by = 1;
    if (step !== undefined) {
      if (!/^[0-9]{1,2}$/.test(step) || Number(step) === 0) throw new CronError(`${f.name} step "/${step}" must be a number from 1 to 99`);
      by = Number(step);
    }
    let lo: number;
    let hi: number;
    if (range === '*') [lo, hi] = [f.min, f.max];
    else {
      const [a = '', b, more] = range.split('-');
      if (more !== undefined) throw new CronError(`${f.name} "${range}" is not a range a-b`);
      lo = value(a, f);
      // A single value with a step runs to the end of the field ("5/15" is 5-59/15).
      hi = b !== undefined ? value(b, f) : step !== undefined ? f.max : lo;
      if (hi < lo) throw new CronError(`${f.name} range ${range} goes backwards`);
    }
    for (let v = lo; v <= hi; v += by) set[v] = true;
  }
  return set;
}

/** Parses `minute hour day-of-month month day-of-week`; throws a CronError saying what is wrong. */
export function parseCron(expr: string): Cron {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) throw new CronError(`needs 5 fields (minute hour day-of-month month day-of-week), got ${String(expr.trim() === '' ? 0 : parts.length)}`);
  const [minutes, hours, dom, months, dow] = parts.map((p, i) => parseField(p, FIELDS[i] as FieldSpec)) as [boolean[], boolean[], boolean[], boolean[], boolean[]];
  if (dow[7]) dow[0] = true;
  const minutesOfDay: number[] = [];
  for (let h = 0; h < 24; h++) for (let m = 0; m < 60; m++) if (hours[h] && minutes[m]) minutesOfDay.push(h * 60 + m);
  // Vixie cron reads a day field that starts with '*' as unrestricted, even with a step.
  const domRestricted = !(parts[2] ?? '').startsWith('*');
  const dowRestricted = !(parts[4] ?? '').startsWith('*');
  const cron: Cron = { minutesOfDay, daysOfMonth: dom, months, daysOfWeek: dow.slice(0, 7), eitherDay: domRestricted && dowRestricted };
  if (!cron.eitherDay && !months.some((on, m) => on && dom.slice(1, (DAYS_IN_MONTH[m] ?? 0) + 1).some(Boolean))) {
    throw new CronError('never matches: no chosen month has the chosen day of the month');
  }
  return cron;
}

const DAY = 1440;

function dayMatches(c: Cron, dayStart: number): boolean {
  const d = new Date(dayStart * 60_000);
  if (!c.months[d.getUTCMonth() + 1]) return false;
  const dom = c.daysOfMonth[d.getUTCDate()] ?? false;
  const dow = c.daysOfWeek[d.getUTCDay()] ?? false;
  return c.eitherDay ? dom || dow : dom && dow;
}

/** The first index in a sorted array whose value is >= x. */
function lowerBound(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] ?? 0) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The smallest matching wall minute after `wall`, up to `limit`. */
export function nextMatch(c: Cron, wall: number, limit: number): number | undefined {
  let day = Math.floor(wall / DAY) * DAY;
  let from = wall - day + 1;
  for (; day <= limit; day += DAY, from = 0) {
    if (!dayMatches(c, day)) continue;
    const m = c.minutesOfDay[lowerBound(c.minutesOfDay, from)];
    if (m !== undefined) return day + m <= limit ? day + m : undefined;
  }
  return undefined;
}

/** The largest matching wall minute at or before `wall`, down to `limit`. */
export function prevMatch(c: Cron, wall: number, limit: number): number | undefined {
  let day = Math.floor(wall / DAY) * DAY;
  let upTo = wall - day;
  for (; day + DAY > limit; day -= DAY, upTo = DAY - 1) {
    if (!dayMatches(c, day)) continue;
    const m = c.minutesOfDay[lowerBound(c.minutesOfDay, upTo + 1) - 1];
    if (m !== undefined) return day + m >= limit ? day + m : undefined;
  }
  return undefined;
}
