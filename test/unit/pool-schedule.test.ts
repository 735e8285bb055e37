// Scheduled warm pools: cron parsing, the minReady in force at an instant and when it next
// changes, across daylight saving time in Europe/Berlin and America/New_York. A brute-force
// reference (every minute of the last 8 days through Intl) checks the DST rules independently.
import { expect } from 'chai';
import { CRON_PATTERN } from '../../src/api/pool-schedule.ts';
import { parseCron } from '../../src/controllers/pool/cron.ts';
import { effectiveMinReady, nextChange, schedulePlan, type ScheduledEntry } from '../../src/controllers/pool/schedule.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString().replace('.000Z', 'Z'));

const berlinWeekdays: ScheduledEntry = {
  minReady: 0,
  schedules: [
    { cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', minReady: 8 },
    { cron: '0 18 * * 1-5', timezone: 'Europe/Berlin', minReady: 0 },
  ],
};

describe('pool schedules: cron', () => {
  const good: [string, (c: ReturnType<typeof parseCron>) => void][] = [
    ['0 8 * * 1-5', (c) => { expect(c.minutesOfDay).to.deep.equal([480]); expect(c.daysOfWeek).to.deep.equal([false, true, true, true, true, true, false]); }],
    ['*/15 9-10 * * *', (c) => expect(c.minutesOfDay).to.deep.equal([540, 555, 570, 585, 600, 615, 630, 645])],
    ['0,30 9-17/4 * * *', (c) => expect(c.minutesOfDay).to.deep.equal([540, 570, 780, 810, 1020, 1050])],
    ['5/20 0 * * *', (c) => expect(c.minutesOfDay).to.deep.equal([5, 25, 45])],
    ['0 0 * * 5-7', (c) => expect(c.daysOfWeek).to.deep.equal([true, false, false, false, false, true, true])],
    ['0 0 * * MON-fri', (c) => expect(c.daysOfWeek).to.deep.equal([false, true, true, true, true, true, false])],
    ['0 0 1 jan,Jul *', (c) => { expect(c.months[1]).to.equal(true); expect(c.months[7]).to.equal(true); expect(c.months.filter(Boolean)).to.have.length(2); }],
    ['0 12 13 * 5', (c) => expect(c.eitherDay).to.equal(true)],
    ['0 12 */2 * 5', (c) => expect(c.eitherDay, 'a day field starting with * is unrestricted').to.equal(false)],
    ['0 0 29 2 *', (c) => expect(c.daysOfMonth[29]).to.equal(true)],
  ];
  for (const [expr, check] of good) {
    it(`reads ${expr}`, () => {
      check(parseCron(expr));
      expect(new RegExp(CRON_PATTERN).test(expr), 'the schema pattern admits it').to.equal(true);
    });
  }

  // [expression, message, whether the schema pattern already refuses it]
  const bad: [string, RegExp, boolean][] = [
    ['0 8 * *', /needs 5 fields .* got 4/, true],
    ['0 8 * * 1 2', /needs 5 fields .* got 6/, true],
    ['', /needs 5 fields .* got 0/, true],
    ['60 * * * *', /minute 60 is out of range 0-59/, true],
    ['* 24 * * *', /hour 24 is out of range 0-23/, true],
    ['* * 0 * *', /day-of-month 0 is out of range 1-31/, true],
    ['* * * 13 *', /month 13 is out of range 1-12/, true],
    ['* * * * 8', /day-of-week 8 is out of range 0-7/, true],
    ['* * * * MOO', /day-of-week "MOO" is not a number or a name/, true],
    ['*/0 * * * *', /step "\/0" must be a number from 1 to 99/, true],
    ['1-2-3 * * * *', /"1-2-3" is not a range/, true],
    ['1/2/3 * * * *', /is not a value, range or step/, true],
    ['5-3 * * * *', /minute range 5-3 goes backwards/, false],
    ['0 0 * * FRI-MON', /day-of-week range FRI-MON goes backwards/, false],
    ['0 0 31 2 *', /never matches/, false],
    ['0 0 30,31 feb *', /never matches/, false],
  ];
  for (const [expr, message, pattern] of bad) {
    it(`refuses ${JSON.stringify(expr)} with a message`, () => {
      expect(() => parseCron(expr)).to.throw(message);
      expect(new RegExp(CRON_PATTERN).test(expr), 'the schema pattern refuses it too').to.equal(!pattern);
    });
  }
});

/** [what, entry, instant, minReady in force, next change] */
type Row = [string, ScheduledEntry, string, number, string | undefined];

const springGap: ScheduledEntry = {
  minReady: 0,
  schedules: [
    { cron: '30 2 * * *', timezone: 'Europe/Berlin', minReady: 3 },
    { cron: '0 5 * * *', timezone: 'Europe/Berlin', minReady: 1 },
  ],
};
const autumnFold: ScheduledEntry = {
  minReady: 0,
  schedules: [
    { cron: '30 2 * * *', timezone: 'Europe/Berlin', minReady: 3 },
    { cron: '45 2 * * *', timezone: 'Europe/Berlin', minReady: 1 },
  ],
};
const newYork: ScheduledEntry = {
  minReady: 0,
  schedules: [
    { cron: '0 9 * * MON-FRI', timezone: 'America/New_York', minReady: 5 },
    { cron: '0 17 * * MON-FRI', timezone: 'America/New_York', minReady: 0 },
  ],
};

const rows: Row[] = [
  // Europe/Berlin weekdays 08:00-18:00, the week of the spring-forward (Sunday 2026-03-29).
  ['Berlin: Friday before 08:00 CET', berlinWeekdays, '2026-03-27T06:59:59Z', 0, '2026-03-27T07:00:00Z'],
  ['Berlin: Friday 08:00 CET opens', berlinWeekdays, '2026-03-27T07:00:00Z', 8, '2026-03-27T17:00:00Z'],
  ['Berlin: Friday 17:59 CET', berlinWeekdays, '2026-03-27T16:59:00Z', 8, '2026-03-27T17:00:00Z'],
  ['Berlin: Friday 18:00 CET closes until Monday 08:00 CEST', berlinWeekdays, '2026-03-27T17:00:00Z', 0, '2026-03-30T06:00:00Z'],
  ['Berlin: Sunday during the jump', berlinWeekdays, '2026-03-29T01:00:00Z', 0, '2026-03-30T06:00:00Z'],
  ['Berlin: Monday 07:59 CEST', berlinWeekdays, '2026-03-30T05:59:00Z', 0, '2026-03-30T06:00:00Z'],
  ['Berlin: Monday 08:00 CEST opens', berlinWeekdays, '2026-03-30T06:00:00Z', 8, '2026-03-30T16:00:00Z'],
  ['Berlin: Monday 09:00 CET would be 08:00 CEST', berlinWeekdays, '2026-03-30T07:00:00Z', 8, '2026-03-30T16:00:00Z'],
  // The fall-back week (Sunday 2026-10-25).
  ['Berlin: Friday 17:59 CEST', berlinWeekdays, '2026-10-23T15:59:00Z', 8, '2026-10-23T16:00:00Z'],
  ['Berlin: Friday 18:00 CEST closes until Monday 08:00 CET', berlinWeekdays, '2026-10-23T16:00:00Z', 0, '2026-10-26T07:00:00Z'],
  ['Berlin: Monday 07:00 CET (08:00 the week before)', berlinWeekdays, '2026-10-26T06:00:00Z', 0, '2026-10-26T07:00:00Z'],
  ['Berlin: Monday 08:00 CET opens', berlinWeekdays, '2026-10-26T07:00:00Z', 8, '2026-10-26T17:00:00Z'],
  ['Berlin: Saturday', berlinWeekdays, '2026-10-31T12:00:00Z', 0, '2026-11-02T07:00:00Z'],
  // A start at 02:30 on the spring-forward day: 02:30 does not exist, so it starts at 03:00 CEST.
  ['gap: the day before, 02:30 CET', springGap, '2026-03-28T01:30:00Z', 3, '2026-03-28T04:00:00Z'],
  ['gap: 01:59 CET, just before the jump', springGap, '2026-03-29T00:59:00Z', 1, '2026-03-29T01:00:00Z'],
  ['gap: 03:00 CEST, the first minute after 02:30 would have been', springGap, '2026-03-29T01:00:00Z', 3, '2026-03-29T03:00:00Z'],
  ['gap: 05:00 CEST', springGap, '2026-03-29T03:00:00Z', 1, '2026-03-30T00:30:00Z'],
  // 02:30 and 02:45 on the fall-back day happen twice: each starts once, the first time.
  ['fold: 02:29 CEST', autumnFold, '2026-10-25T00:29:00Z', 1, '2026-10-25T00:30:00Z'],
  ['fold: 02:30 CEST (first pass)', autumnFold, '2026-10-25T00:30:00Z', 3, '2026-10-25T00:45:00Z'],
  ['fold: 02:45 CEST (first pass); the second pass starts nothing', autumnFold, '2026-10-25T00:45:00Z', 1, '2026-10-26T01:30:00Z'],
  ['fold: 02:35 CET (second pass)', autumnFold, '2026-10-25T01:35:00Z', 1, '2026-10-26T01:30:00Z'],
  ['fold: 02:50 CET (second pass)', autumnFold, '2026-10-25T01:50:00Z', 1, '2026-10-26T01:30:00Z'],
  // America/New_York: clocks go forward on 2026-03-08 and back on 2026-11-01.
  ['New York: Friday 09:00 EST', newYork, '2026-03-06T14:00:00Z', 5, '2026-03-06T22:00:00Z'],
  ['New York: Friday 17:00 EST closes until Monday 09:00 EDT', newYork, '2026-03-06T22:00:00Z', 0, '2026-03-09T13:00:00Z'],
  ['New York: Monday 09:00 EDT', newYork, '2026-03-09T13:00:00Z', 5, '2026-03-09T21:00:00Z'],
  ['New York: Friday 17:00 EDT closes until Monday 09:00 EST', newYork, '2026-10-30T21:00:00Z', 0, '2026-11-02T14:00:00Z'],
  // UTC (the default zone), steps and lists.
  ['UTC: every 6 hours 2, otherwise 0 at :30', { minReady: 0, schedules: [{ cron: '0 */6 * * *', minReady: 2 }, { cron: '30 */6 * * *', minReady: 0 }] }, '2026-05-01T06:10:00Z', 2, '2026-05-01T06:30:00Z'],
  ['UTC: list of hours', { minReady: 4, schedules: [{ cron: '0 9,13 * * *', minReady: 2 }, { cron: '0 12,22 * * *', minReady: 1 }] }, '2026-05-01T12:30:00Z', 1, '2026-05-01T13:00:00Z'],
  ['UTC: day-of-month or day-of-week (Vixie)', { minReady: 0, schedules: [{ cron: '0 12 13 * 5', minReady: 2 }, { cron: '0 13 * * *', minReady: 0 }] }, '2026-05-13T12:00:00Z', 2, '2026-05-13T13:00:00Z'],
  ['UTC: same instant, the later schedule wins', { minReady: 0, schedules: [{ cron: '0 8 * * *', minReady: 5 }, { cron: '0 8 * * *', minReady: 2 }] }, '2026-05-01T09:00:00Z', 2, undefined],
  // Nothing started in the last 8 days: the entry's own minReady; a start lapses after 8 days.
  ['lookback: monthly start in force', { minReady: 1, schedules: [{ cron: '0 0 1 * *', minReady: 3 }] }, '2026-12-03T00:00:00Z', 3, '2026-12-09T00:00:00Z'],
  ['lookback: lapsed to the entry', { minReady: 1, schedules: [{ cron: '0 0 1 * *', minReady: 3 }] }, '2026-12-09T00:00:00Z', 1, '2027-01-01T00:00:00Z'],
  ['lookback: no start yet', { minReady: 1, schedules: [{ cron: '0 0 29 2 *', minReady: 3 }] }, '2026-12-09T00:00:00Z', 1, undefined],
  ['lookback: weekly start never lapses', { minReady: 0, schedules: [{ cron: '0 8 * * 1', minReady: 3 }] }, '2026-12-09T00:00:00Z', 3, undefined],
  ['no schedules', { minReady: 2 }, '2026-12-09T00:00:00Z', 2, undefined],
];

describe('pool schedules: minReady in force and the next change', () => {
  for (const [what, entry, t, minReady, next] of rows) {
    it(what, () => {
      expect(effectiveMinReady(entry, at(t)), 'minReady').to.equal(minReady);
      expect(iso(nextChange(entry, at(t))), 'nextChange').to.equal(next);
      // The value holds until the change, and the change is one.
      if (next) {
        expect(effectiveMinReady(entry, at(next) - 1)).to.equal(minReady);
        expect(effectiveMinReady(entry, at(next))).to.not.equal(minReady);
      }
    });
  }

  it('reports a zone Node does not know and a cron it cannot read, naming the schedule, and keeps the entry\'s minReady', () => {
    expect(schedulePlan({ minReady: 2, schedules: [{ cron: '0 8 * * *', timezone: 'Europe/Berln', minReady: 5 }] }, at('2026-05-01T09:00:00Z')))
      .to.deep.equal({ minReady: 2, error: 'schedules[0].timezone: unknown time zone "Europe/Berln"' });
    expect(schedulePlan({ minReady: 1, schedules: [{ cron: '0 8 * * *', minReady: 5 }, { cron: '0 9-7 * * *', minReady: 0 }] }, at('2026-05-01T09:00:00Z')))
      .to.deep.equal({ minReady: 1, error: 'schedules[1].cron "0 9-7 * * *": hour range 9-7 goes backwards' });
  });

  it('answers quickly even for every-minute schedules', () => {
    const entry = { minReady: 0, schedules: Array.from({ length: 16 }, () => ({ cron: '* * * * *', timezone: 'Europe/Berlin', minReady: 3 })) };
    const started = performance.now();
    expect(schedulePlan(entry, at('2026-10-25T01:30:00Z'))).to.deep.equal({ minReady: 3 });
    expect(performance.now() - started).to.be.below(1_000);
  });
});

/**
 * The reference: walk every minute of the last 8 days, read the wall clock with Intl and start a
 * schedule when the wall clock reaches one of its minutes — skipped minutes at the jump, repeated
 * ones only the first time.
 */
function reference(entry: ScheduledEntry, t: number): number {
  const MIN = 60_000;
  const formats = new Map<string, Intl.DateTimeFormat>();
  const fields = (zone: string, ms: number) => {
    const f = formats.get(zone) ?? new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    formats.set(zone, f);
    const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, Number(x.value)]));
    return Date.UTC(p.year ?? 0, (p.month ?? 1) - 1, p.day, p.hour, p.minute) / MIN;
  };
  let best: { at: number; value: number } | undefined;
  (entry.schedules ?? []).forEach((s) => {
    const cron = parseCron(s.cron);
    const matches = (wall: number) => {
      const d = new Date(wall * MIN);
      const dom = cron.daysOfMonth[d.getUTCDate()] ?? false;
      const dow = cron.daysOfWeek[d.getUTCDay()] ?? false;
      return (cron.months[d.getUTCMonth() + 1] ?? false) && (cron.eitherDay ? dom || dow : dom && dow) && cron.minutesOfDay.includes(d.getUTCHours() * 60 + d.getUTCMinutes());
    };
    const zone = s.timezone ?? 'UTC';
    const start = Math.floor(t / MIN) * MIN - 8 * 86_400_000;
    let highest = fields(zone, start);
    for (let x = start + MIN; x <= t; x += MIN) {
      const wall = fields(zone, x);
      // Every wall minute in (highest, wall] starts now: one if the clock ticked, more after a jump.
      for (let w = highest + 1; w <= wall; w++) if (matches(w) && (!best || x >= best.at)) best = { at: x, value: s.minReady };
      highest = Math.max(highest, wall);
    }
  });
  return best?.value ?? entry.minReady ?? 0;
}

describe('pool schedules: against a minute-by-minute reference', function () {
  this.timeout(60_000);
  const cases: [ScheduledEntry, string[]][] = [
    [springGap, ['2026-03-29T00:59:00Z', '2026-03-29T01:00:00Z', '2026-03-29T02:59:00Z', '2026-03-29T03:00:00Z']],
    [autumnFold, ['2026-10-25T00:44:00Z', '2026-10-25T00:45:00Z', '2026-10-25T01:30:00Z', '2026-10-25T01:46:00Z']],
    [{ minReady: 0, schedules: [{ cron: '*/20 2 * * *', timezone: 'Europe/Berlin', minReady: 2 }, { cron: '10 3 * * *', timezone: 'Europe/Berlin', minReady: 1 }] }, ['2026-03-29T01:00:00Z', '2026-03-29T01:10:00Z', '2026-10-25T01:05:00Z', '2026-10-25T02:10:00Z']],
    [newYork, ['2026-03-08T07:30:00Z', '2026-03-09T12:59:00Z', '2026-03-09T13:00:00Z', '2026-11-01T06:30:00Z']],
  ];
  for (const [entry, times] of cases) {
    it(`agrees on ${entry.schedules?.map((s) => `"${s.cron}" ${s.timezone ?? 'UTC'}`).join(', ') ?? ''}`, () => {
      for (const t of times) expect(effectiveMinReady(entry, at(t)), t).to.equal(reference(entry, at(t)));
    });
  }
});

describe('pool schedules: nextChange against a minute-by-minute scan', function () {
  this.timeout(60_000);
  const cases: [string, ScheduledEntry, string][] = [
    ['Berlin weekdays over the spring-forward weekend', berlinWeekdays, '2026-03-27T17:00:00Z'],
    ['Berlin weekdays over the fall-back weekend', berlinWeekdays, '2026-10-23T16:30:00Z'],
    ['a start skipped by the jump', springGap, '2026-03-28T23:00:00Z'],
    ['starts in a repeated hour', autumnFold, '2026-10-25T00:40:00Z'],
  ];
  for (const [what, entry, from] of cases) {
    it(what, () => {
      const t0 = at(from);
      const v0 = effectiveMinReady(entry, t0);
      let t = t0 + 60_000;
      while (effectiveMinReady(entry, t) === v0) t += 60_000;
      expect(iso(nextChange(entry, t0))).to.equal(iso(t));
    });
  }
});
