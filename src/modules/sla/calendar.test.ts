import { spawnSync } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../platform/errors.ts';
import { Calendar, type CalendarSpec, formatInstant, parseInstant } from './calendar.ts';
import { civilFromDays, daysFromCivil, localToUtc, offsetAt, ZoneTable } from './zone.ts';

const t = (iso: string) => parseInstant(iso);
const NY_9_17: CalendarSpec = {
  timeZone: 'America/New_York',
  weekly: {
    mon: [['09:00', '17:00']],
    tue: [['09:00', '17:00']],
    wed: [['09:00', '17:00']],
    thu: [['09:00', '17:00']],
    fri: [['09:00', '17:00']],
  },
};

describe('the examples that pin the semantics', () => {
  const cal = Calendar.load(NY_9_17);
  it.each([
    ['2026-03-02T14:00:00Z', 8 * 3600, '2026-03-02T22:00:00Z'], // ends exactly at 17:00: that end, not the next day
    ['2026-03-06T21:30:00Z', 3600, '2026-03-09T13:30:00Z'], // Monday after spring-forward
    ['2026-03-07T15:00:00Z', 0, '2026-03-09T13:00:00Z'], // zero from a Saturday: the next business moment
    ['2026-03-04T21:59:30Z', 60, '2026-03-05T14:00:30Z'],
  ])('deadline(%s, %i s) = %s', (start, seconds, expected) => {
    expect(formatInstant(cal.deadline(t(start), seconds))).toBe(expected);
  });

  it('counts a 25-hour day in an always-open Chicago calendar', () => {
    const always = Calendar.load({ timeZone: 'America/Chicago', alwaysOpen: true });
    expect(always.elapsed(t('2026-11-01T05:00:00Z'), t('2026-11-02T06:00:00Z'))).toBe(90_000);
  });

  it('gives a 01:00–04:00 window on the spring-forward Sunday two hours (07:00Z–09:00Z)', () => {
    const sunday = Calendar.load({ timeZone: 'America/Chicago', weekly: { sun: [['01:00', '04:00']] } });
    expect(sunday.elapsed(t('2026-03-08T00:00:00Z'), t('2026-03-09T00:00:00Z'))).toBe(7200);
    expect(formatInstant(sunday.deadline(t('2026-03-08T00:00:00Z'), 0))).toBe('2026-03-08T07:00:00Z');
    expect(formatInstant(sunday.deadline(t('2026-03-08T00:00:00Z'), 7200))).toBe('2026-03-08T09:00:00Z');
  });

  it('gives the same window four hours on the fall-back Sunday', () => {
    const sunday = Calendar.load({ timeZone: 'America/Chicago', weekly: { sun: [['01:00', '04:00']] } });
    expect(sunday.elapsed(t('2026-11-01T00:00:00Z'), t('2026-11-02T00:00:00Z'))).toBe(4 * 3600);
  });
});

describe('calendar features', () => {
  it('splits overnight windows at midnight; a holiday removes its own date only', () => {
    const night = Calendar.load({
      timeZone: 'UTC',
      weekly: { thu: [['22:00', '06:00']] },
      holidays: ['2026-03-06'],
    });
    // Thu 2026-03-05 22:00 → Fri 06:00 is 8 h, but Friday 2026-03-06 is a holiday: only the Thursday part counts.
    expect(night.elapsed(t('2026-03-05T00:00:00Z'), t('2026-03-07T00:00:00Z'))).toBe(2 * 3600);
    expect(night.elapsed(t('2026-03-12T00:00:00Z'), t('2026-03-14T00:00:00Z'))).toBe(8 * 3600);
  });

  it('unites overlapping windows, accepts seconds and 24:00, and honours recurring holidays', () => {
    const cal = Calendar.load({
      timeZone: 'Europe/Berlin',
      weekly: {
        mon: [
          ['09:00', '12:00'],
          ['11:00', '13:30:30'],
        ],
        tue: [['20:00', '24:00']],
      },
      recurringHolidays: ['01-05'],
    });
    expect(cal.elapsed(t('2026-03-01T00:00:00Z'), t('2026-03-03T00:00:00Z'))).toBe(4 * 3600 + 30 * 60 + 30);
    expect(cal.elapsed(t('2026-03-03T00:00:00Z'), t('2026-03-04T00:00:00Z'))).toBe(4 * 3600);
    // 2026-01-05 is a Monday and a recurring holiday.
    expect(cal.elapsed(t('2026-01-05T00:00:00Z'), t('2026-01-06T00:00:00Z'))).toBe(0);
  });

  it('unites windows after placing them in UTC, so a window starting in a DST gap removes no time', () => {
    // Found by the property below: 02:45 on the spring-forward Sunday moves to 03:45 EDT, but the
    // overlapping 03:00 window still starts at 03:00 EDT (07:00Z).
    const cal = Calendar.load({
      timeZone: 'America/New_York',
      weekly: {
        sun: [
          ['03:00', '00:00'],
          ['02:45', '00:00'],
        ],
      },
    });
    expect(formatInstant(cal.deadline(t('2026-03-08T00:00:00Z'), 0))).toBe('2026-03-08T07:00:00Z');
    expect(cal.elapsed(t('2026-03-08T00:00:00Z'), t('2026-03-09T06:00:00Z'))).toBe(21 * 3600); // 03:00 EDT to midnight
  });

  it('crosses year ends', () => {
    const cal = Calendar.load(NY_9_17);
    expect(formatInstant(cal.deadline(t('2026-12-31T21:00:00Z'), 2 * 3600))).toBe('2027-01-01T15:00:00Z');
    expect(cal.elapsed(t('2026-12-31T21:00:00Z'), t('2027-01-01T15:00:00Z'))).toBe(2 * 3600);
  });

  it.each([
    [{ timeZone: 'Mars/Olympus', alwaysOpen: true }, 'invalid_time_zone'],
    [{ timeZone: 'UTC', weekly: { mon: [['9:00', '17:00']] } }, 'invalid_calendar'],
    [{ timeZone: 'UTC', weekly: { mon: [['24:00', '17:00']] } }, 'invalid_calendar'],
    [{ timeZone: 'UTC', weekly: { funday: [] } }, 'invalid_calendar'],
    [{ timeZone: 'UTC', weekly: { mon: [] } }, 'calendar_has_no_business_time'],
    [
      { timeZone: 'UTC', weekly: { mon: [['09:00', '17:00']] }, holidays: ['2026-02-30'] },
      'invalid_calendar',
    ],
  ])('rejects %j (%s)', (spec, code) => {
    try {
      Calendar.load(spec);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe(code);
    }
  });
});

describe('zone rules', () => {
  it('maps a local time in a gap forward by the gap, and an ambiguous one to its first occurrence', () => {
    const ny = 'America/New_York';
    const local = (y: number, m: number, d: number, h: number, mi = 0) =>
      daysFromCivil(y, m, d) * 86_400 + h * 3600 + mi * 60;
    expect(formatInstant(localToUtc(ny, local(2026, 3, 8, 2, 30)))).toBe('2026-03-08T07:30:00Z');
    expect(formatInstant(localToUtc(ny, local(2026, 11, 1, 1, 30)))).toBe('2026-11-01T05:30:00Z');
  });

  it('is the inverse of offsetAt for every existing local time (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          'America/New_York',
          'Europe/London',
          'Australia/Lord_Howe',
          'Asia/Kolkata',
          'America/Santiago',
          'Pacific/Chatham',
        ),
        fc.integer({ min: daysFromCivil(2020, 1, 1) * 86_400, max: daysFromCivil(2030, 1, 1) * 86_400 }),
        (zone, utc) => {
          const local = utc + offsetAt(zone, utc);
          const back = localToUtc(zone, local);
          // Same wall time, and never later than the instant we started from (first occurrence).
          expect(back + offsetAt(zone, back)).toBe(local);
          expect(back).toBeLessThanOrEqual(utc);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('ZoneTable', () => {
  it('gives the same offsets and local→UTC mappings as asking Intl each time (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          'America/New_York',
          'Europe/Berlin',
          'Australia/Lord_Howe',
          'America/Santiago',
          'Asia/Tehran',
          'Pacific/Chatham',
        ),
        fc.integer({ min: 2020, max: 2030 }),
        fc.integer({ min: 0, max: 365 * 86_400 }),
        (zone, year, offsetInYear) => {
          const from = Date.UTC(year, 0, 1) / 1000;
          const table = new ZoneTable(zone, from - 4 * 86_400, from + 370 * 86_400);
          const t = from + offsetInYear;
          expect(table.offset(t)).toBe(offsetAt(zone, t));
          expect(table.localToUtc(t)).toBe(localToUtc(zone, t));
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** A second-by-second reference over a few days: counts business seconds by walking each local date's windows. */
function naiveBusiness(spec: CalendarSpec, from: number, to: number): number {
  if (spec.alwaysOpen) return Math.max(0, to - from);
  const marks = new Uint8Array(to - from);
  const names = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
  const sec = (s: string) => s.split(':').reduce((acc, p, i) => acc + Number(p) * [3600, 60, 1][i]!, 0);
  const holidays = new Set(spec.holidays ?? []);
  for (let d = Math.floor(from / 86_400) - 3; d <= Math.floor(to / 86_400) + 3; d++) {
    const { year, month, day, weekday } = civilFromDays(d);
    for (const [s, e] of spec.weekly?.[names[weekday]!] ?? []) {
      const [a, b] = [sec(s), sec(e)];
      const parts: [number, number, number][] =
        b > a
          ? [[d, a, b]]
          : [
              [d, a, 86_400],
              [d + 1, 0, b],
            ];
      for (const [date, ps, pe] of parts) {
        const c = civilFromDays(date);
        const key = `${c.year}-${String(c.month).padStart(2, '0')}-${String(c.day).padStart(2, '0')}`;
        if (holidays.has(key) || pe <= ps) continue;
        const us = localToUtc(spec.timeZone, date * 86_400 + ps);
        const ue = localToUtc(spec.timeZone, date * 86_400 + pe);
        for (let x = Math.max(us, from); x < Math.min(ue, to); x++) marks[x - from] = 1;
      }
    }
    void year;
    void month;
    void day;
  }
  let n = 0;
  for (const m of marks) n += m;
  return n;
}

const timeArb = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.constantFrom(0, 15, 30, 45))
  .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
const specArb = fc.record({
  timeZone: fc.constantFrom(
    'America/New_York',
    'America/Chicago',
    'Europe/Berlin',
    'Australia/Sydney',
    'Asia/Kolkata',
    'UTC',
  ),
  weekly: fc.record({
    mon: fc.array(fc.tuple(timeArb, timeArb), { maxLength: 2 }),
    thu: fc.array(fc.tuple(timeArb, timeArb), { maxLength: 2 }),
    sat: fc.array(fc.tuple(timeArb, timeArb), { maxLength: 1 }),
    sun: fc.array(fc.tuple(timeArb, timeArb), { minLength: 1, maxLength: 2 }),
  }),
  holidays: fc.subarray([
    '2026-03-08',
    '2026-03-09',
    '2026-03-29',
    '2026-10-25',
    '2026-11-01',
    '2026-04-05',
    '2026-10-04',
  ]),
});
// Weekends around DST changes in the zones above (US, EU, AU).
const startArb = fc
  .constantFrom(
    '2026-03-06T00:00:00Z',
    '2026-03-27T00:00:00Z',
    '2026-04-03T00:00:00Z',
    '2026-10-02T00:00:00Z',
    '2026-10-23T00:00:00Z',
    '2026-10-30T00:00:00Z',
  )
  .chain((base) => fc.integer({ min: 0, max: 3 * 86_400 }).map((off) => parseInstant(base) + off));

describe('against a second-by-second reference (properties)', () => {
  it('elapsed matches the reference over random calendars around DST weekends', () => {
    fc.assert(
      fc.property(specArb, startArb, fc.integer({ min: 0, max: 4 * 86_400 }), (spec, from, span) => {
        const hasTime = Object.values(spec.weekly).some((w) => w.some(([a, b]) => a !== b || a !== '00:00'));
        fc.pre(hasTime);
        let cal: Calendar;
        try {
          cal = Calendar.load(spec as CalendarSpec);
        } catch {
          return; // e.g. only empty windows: rejected at load, which is correct
        }
        expect(cal.elapsed(from, from + span)).toBe(naiveBusiness(spec as CalendarSpec, from, from + span));
      }),
      { numRuns: 60 },
    );
  });

  it('obeys elapsed(a, deadline(a, d)) = d, additivity and monotonicity', () => {
    fc.assert(
      fc.property(
        specArb,
        startArb,
        fc.integer({ min: 0, max: 20 * 3600 }),
        fc.integer({ min: 0, max: 2 * 86_400 }),
        (spec, a, d, b) => {
          let cal: Calendar;
          try {
            cal = Calendar.load(spec as CalendarSpec);
          } catch {
            return;
          }
          const due = cal.deadline(a, d);
          expect(due).toBeGreaterThanOrEqual(a);
          expect(cal.elapsed(a, due)).toBe(d);
          expect(cal.deadline(a, d + 60)).toBeGreaterThanOrEqual(due);
          const mid = a + Math.floor(b / 2);
          expect(cal.elapsed(a, mid) + cal.elapsed(mid, a + b)).toBe(cal.elapsed(a, a + b));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('process time zone independence', () => {
  it('gives identical results with TZ=UTC, America/New_York and Asia/Kolkata', () => {
    const script = path.resolve('src/modules/sla/tz-probe.ts');
    const outputs = ['UTC', 'America/New_York', 'Asia/Kolkata'].map((tz) => {
      const res = spawnSync(process.execPath, [script], {
        env: { ...process.env, TZ: tz },
        encoding: 'utf8',
      });
      expect(res.status, res.stderr).toBe(0);
      return res.stdout;
    });
    expect(outputs[0]!.length).toBeGreaterThan(100);
    expect(outputs[1]).toBe(outputs[0]);
    expect(outputs[2]).toBe(outputs[0]);
  });
});
