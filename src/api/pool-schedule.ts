// Schedules of a warm pool entry: cron start times (in a time zone) that set the pool's minReady.
// The pattern refuses what it can (field count, value ranges, syntax) at apply time; what a
// pattern cannot see (an IANA zone Node does not know, a reversed range such as 5-3) the pool
// reports as PoolReady=False reason BadSchedule.
import { array, integer, object, string, type Infer } from './schema.ts';

/** Case-insensitive alternatives for names, as RE2 (the API server) and JavaScript both read them. */
const names = (list: string[]) => list.map((n) => Array.from(n, (c) => `[${c.toUpperCase()}${c.toLowerCase()}]`).join('')).join('|');

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** One cron field: `*`, a value or a range a-b, optionally with a step /n; a comma list of those. */
const field = (value: string) => {
  const element = `(\\*|(${value})(-(${value}))?)(/[1-9][0-9]?)?`;
  return `${element}(,${element})*`;
};

export const CRON_FIELDS = {
  minute: '[0-5]?[0-9]',
  hour: '[01]?[0-9]|2[0-3]',
  dayOfMonth: '0?[1-9]|[12][0-9]|3[01]',
  month: `0?[1-9]|1[0-2]|${names(MONTH_NAMES)}`,
  dayOfWeek: `[0-7]|${names(DAY_NAMES)}`,
} as const;

export const CRON_PATTERN = `^${Object.values(CRON_FIELDS).map(field).join(' +')}$`;
export const CRON_MONTH_NAMES = MONTH_NAMES;
export const CRON_DAY_NAMES = DAY_NAMES;

/** An IANA zone's shape (Area/Location[/Sub], UTC, Etc/GMT+5); whether Node knows it is checked at run time. */
export const TIME_ZONE_PATTERN = '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$';

/** How far back a schedule's last start still counts (a weekly schedule always has one). */
export const SCHEDULE_LOOKBACK_DAYS = 8;

const poolSchedule = object(
  {
    cron: string({
      description:
        'When this schedule starts, as a 5-field cron expression: minute hour day-of-month month day-of-week, each `*`, a value, a range a-b, a step */n or a-b/n, or a comma list of those (names JAN-DEC and SUN-SAT allowed; 0 and 7 are Sunday). When both day fields are restricted, either matching is enough (as in Vixie cron). E.g. `0 8 * * 1-5` is 08:00 on weekdays.',
      minLength: 9,
      maxLength: 128,
      pattern: CRON_PATTERN,
    }),
    timezone: string({
      description:
        'The IANA time zone the cron expression is read in, e.g. Europe/Berlin (default UTC). Daylight saving time: a start time that does not exist that day (clocks jump forward over it) starts at the first minute after the jump; one that happens twice (clocks go back) starts once, the first time. A zone Node does not know is reported as PoolReady=False reason BadSchedule.',
      minLength: 1,
      maxLength: 64,
      pattern: TIME_ZONE_PATTERN,
      default: 'UTC',
    }),
    minReady: integer({ description: "The pool's minReady from this schedule's start until another schedule of the entry starts. At most the entry's max.", minimum: 0, maximum: 100 }),
  },
  { description: 'A start time (cron + time zone) and the minReady that holds from then on.', required: ['cron', 'minReady'] },
);

export const poolSchedules = array(poolSchedule, {
  description:
    `Scheduled minReady. Each schedule's cron marks the start of a window: at any time the pool keeps the minReady of the schedule that started most recently (a tie at the same instant goes to the later one in this list), and the entry's own minReady when none has started in the last ${String(SCHEDULE_LOOKBACK_DAYS)} days. E.g. {cron: "0 8 * * 1-5", timezone: Europe/Berlin, minReady: 8} and {cron: "0 18 * * 1-5", timezone: Europe/Berlin, minReady: 0} keep 8 ready on weekdays from 08:00 to 18:00 Berlin time and none otherwise. When the value drops, ready unclaimed VMs above it are deleted. The operator never writes the spec: status.pool[].minReady and nextChange show the value in force and when it next changes.`,
  maxItems: 16,
  listType: 'atomic',
});

export type PoolSchedule = Infer<typeof poolSchedule>;
