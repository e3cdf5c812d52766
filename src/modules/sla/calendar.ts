// Business-time calendars (DESIGN §5.3): a pure module. No database, no process time zone, no
// Date.now(). A calendar is compiled, one UTC year at a time (cached), into sorted, disjoint UTC
// business intervals [start, end) in whole seconds with running totals, so `deadline` and `elapsed`
// are binary searches whatever the length of the target.
import { AppError, type ErrorCode } from '../../platform/errors.ts';
import { canonicalZone, civilFromDays, daysFromCivil, ZoneTable } from './zone.ts';

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface CalendarSpec {
  timeZone: string;
  alwaysOpen?: boolean;
  weekly?: Partial<Record<Weekday, [string, string][]>>;
  holidays?: string[];
  recurringHolidays?: string[];
}

interface YearIntervals {
  starts: Float64Array;
  ends: Float64Array;
  /** Business seconds before interval i (prefix[i]); prefix[n] is the year's total. */
  prefix: Float64Array;
}

const invalid = (message: string, code: ErrorCode = 'invalid_calendar') => new AppError(code, message);

function parseTime(text: unknown, where: string, allow24: boolean): number {
  const m = typeof text === 'string' ? /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text) : null;
  if (!m) throw invalid(`${where}: "${String(text)}" is not HH:MM or HH:MM:SS`);
  const [h, mi, s] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  const seconds = h * 3600 + mi * 60 + s;
  if (mi > 59 || s > 59 || h > 24 || (h === 24 && (seconds !== 86_400 || !allow24))) {
    throw invalid(
      `${where}: "${text}" is not a time of day${allow24 ? ' (24:00 is allowed only as an end)' : ''}`,
    );
  }
  return seconds;
}

export class Calendar {
  readonly timeZone: string;
  readonly alwaysOpen: boolean;
  /** Per weekday (0 = Sunday): [start, end) second-of-day segments that belong to that date, united. */
  private readonly segments: [number, number][][];
  private readonly holidays: Set<number>;
  private readonly recurring: Set<string>;
  private readonly years = new Map<number, YearIntervals>();

  private constructor(spec: {
    timeZone: string;
    alwaysOpen: boolean;
    segments: [number, number][][];
    holidays: Set<number>;
    recurring: Set<string>;
  }) {
    this.timeZone = spec.timeZone;
    this.alwaysOpen = spec.alwaysOpen;
    this.segments = spec.segments;
    this.holidays = spec.holidays;
    this.recurring = spec.recurring;
  }

  /** Validates and compiles a calendar; throws a clear AppError for anything wrong. */
  static load(input: unknown): Calendar {
    if (input === null || typeof input !== 'object' || Array.isArray(input))
      throw invalid('a calendar is a JSON object');
    const spec = input as Record<string, unknown>;
    const known = new Set(['timeZone', 'alwaysOpen', 'weekly', 'holidays', 'recurringHolidays']);
    for (const key of Object.keys(spec))
      if (!known.has(key)) throw invalid(`unknown calendar field "${key}"`);
    for (const key of ['holidays', 'recurringHolidays'])
      if (spec[key] !== undefined && !Array.isArray(spec[key])) throw invalid(`${key} must be a list`);
    const zone = typeof spec['timeZone'] === 'string' ? canonicalZone(spec['timeZone']) : undefined;
    if (!zone)
      throw invalid(`timeZone: "${String(spec['timeZone'])}" is not an IANA time zone`, 'invalid_time_zone');
    if (spec['alwaysOpen'] === true) {
      return new Calendar({
        timeZone: zone,
        alwaysOpen: true,
        segments: [],
        holidays: new Set(),
        recurring: new Set(),
      });
    }
    if (spec['alwaysOpen'] !== undefined && spec['alwaysOpen'] !== false)
      throw invalid('alwaysOpen must be true or false');
    const weekly = spec['weekly'];
    if (weekly === null || typeof weekly !== 'object' || Array.isArray(weekly))
      throw invalid('weekly must map mon..sun to lists of [start, end]');
    const perDay: [number, number][][] = WEEKDAYS.map(() => []);
    for (const [key, windows] of Object.entries(weekly as Record<string, unknown>)) {
      const day = WEEKDAYS.indexOf(key as Weekday);
      if (day < 0) throw invalid(`weekly: "${key}" is not one of ${WEEKDAYS.join(', ')}`);
      if (!Array.isArray(windows)) throw invalid(`weekly.${key} must be a list of [start, end]`);
      for (const [i, w] of windows.entries()) {
        if (!Array.isArray(w) || w.length !== 2) throw invalid(`weekly.${key}[${i}] must be [start, end]`);
        const start = parseTime(w[0], `weekly.${key}[${i}][0]`, false);
        const end = parseTime(w[1], `weekly.${key}[${i}][1]`, true);
        if (end > start) perDay[day]!.push([start, end]);
        else {
          // Overnight: the part after midnight belongs to the next date.
          if (start < 86_400) perDay[day]!.push([start, 86_400]);
          if (end > 0) perDay[(day + 1) % 7]!.push([0, end]);
        }
      }
    }
    // Windows are united only after each is placed on the UTC line (in year()): uniting local
    // times first would let a window starting in a spring-forward gap (moved forward by the gap)
    // swallow an overlapping window that starts after the gap, and adding a window must never
    // remove business time.
    const segments = perDay.map((list) => list.sort((a, b) => a[0] - b[0]));
    if (segments.every((d) => d.length === 0)) {
      throw invalid('the calendar has no business time at all', 'calendar_has_no_business_time');
    }
    const holidays = new Set<number>();
    for (const [i, h] of ((spec['holidays'] as unknown[] | undefined) ?? []).entries()) {
      const m = typeof h === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(h) : null;
      const days = m ? daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3])) : NaN;
      if (!m || civilFromDays(days).month !== Number(m[2]) || civilFromDays(days).day !== Number(m[3])) {
        throw invalid(`holidays[${i}]: "${String(h)}" is not a date YYYY-MM-DD`);
      }
      holidays.add(days);
    }
    const recurring = new Set<string>();
    for (const [i, h] of ((spec['recurringHolidays'] as unknown[] | undefined) ?? []).entries()) {
      const m = typeof h === 'string' ? /^(\d{2})-(\d{2})$/.exec(h) : null;
      // A day the month has in some year (02-29 included).
      const longest = m ? [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][Number(m[1]) - 1] : undefined;
      if (!m || longest === undefined || Number(m[2]) < 1 || Number(m[2]) > longest) {
        throw invalid(`recurringHolidays[${i}]: "${String(h)}" is not MM-DD`);
      }
      recurring.add(h as string);
    }
    return new Calendar({ timeZone: zone, alwaysOpen: false, segments, holidays, recurring });
  }

  private isHoliday(days: number): boolean {
    if (this.holidays.has(days)) return true;
    const { month, day } = civilFromDays(days);
    return this.recurring.has(`${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`);
  }

  // The year looked at last: most calls stay in it, and finding it costs no allocation then.
  private hotYear = 0;
  private hot: YearIntervals | undefined;
  private lastFrom = 0;
  private lastTo = -1;
  private lastYear = 0;

  /** The UTC year of instant t (seconds). */
  private yearOf(t: number): number {
    if (t >= this.lastFrom && t < this.lastTo) return this.lastYear;
    const y = new Date(t * 1000).getUTCFullYear();
    this.lastYear = y;
    this.lastFrom = Date.UTC(y, 0, 1) / 1000;
    this.lastTo = Date.UTC(y + 1, 0, 1) / 1000;
    return y;
  }

  /** The business intervals of a UTC year, compiled once. */
  private year(y: number): YearIntervals {
    if (y === this.hotYear && this.hot) return this.hot;
    let compiled = this.years.get(y);
    if (compiled) {
      this.hotYear = y;
      this.hot = compiled;
      return compiled;
    }
    const from = Date.UTC(y, 0, 1) / 1000;
    const to = Date.UTC(y + 1, 0, 1) / 1000;
    const raw: [number, number][] = [];
    if (this.alwaysOpen) raw.push([from, to]);
    else {
      // The zone's offsets over the year, found once (DST transitions), then only arithmetic.
      const zone = new ZoneTable(this.timeZone, from - 4 * 86_400, to + 4 * 86_400);
      // Local dates whose windows can reach into this UTC year (zones are within ±14 h).
      for (let d = daysFromCivil(y, 1, 1) - 2; d <= daysFromCivil(y + 1, 1, 1) + 1; d++) {
        const weekday = civilFromDays(d).weekday;
        const list = this.segments[weekday]!;
        if (list.length === 0 || this.isHoliday(d)) continue;
        for (const [s, e] of list) {
          const start = Math.max(zone.localToUtc(d * 86_400 + s), from);
          const end = Math.min(zone.localToUtc(d * 86_400 + e), to);
          if (end > start) raw.push([start, end]);
        }
      }
    }
    raw.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const [s, e] of raw) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    const n = merged.length;
    compiled = { starts: new Float64Array(n), ends: new Float64Array(n), prefix: new Float64Array(n + 1) };
    for (let i = 0; i < n; i++) {
      compiled.starts[i] = merged[i]![0];
      compiled.ends[i] = merged[i]![1];
      compiled.prefix[i + 1] = compiled.prefix[i]! + merged[i]![1] - merged[i]![0];
    }
    this.years.set(y, compiled);
    return compiled;
  }

  /** Business seconds of year `y` before instant t (t inside that UTC year). */
  private usedBefore(y: YearIntervals, t: number): number {
    // last interval with start <= t
    let lo = 0;
    let hi = y.starts.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (y.starts[mid]! <= t) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (idx < 0) return 0;
    return y.prefix[idx]! + Math.min(t, y.ends[idx]!) - y.starts[idx]!;
  }

  /** Business seconds in [from, to) (0 when to ≤ from). Instants in whole seconds since the epoch. */
  elapsed(from: number, to: number): number {
    from = Math.floor(from);
    to = Math.floor(to);
    if (to <= from) return 0;
    const yf = this.yearOf(from);
    const yt = to < this.lastTo ? yf : this.yearOf(to);
    if (yf === yt) {
      const y = this.year(yf);
      return this.usedBefore(y, to) - this.usedBefore(y, from);
    }
    let total = this.year(yf).prefix[this.year(yf).starts.length]! - this.usedBefore(this.year(yf), from);
    for (let year = yf + 1; year < yt; year++)
      total += this.year(year).prefix[this.year(year).starts.length]!;
    return total + this.usedBefore(this.year(yt), to);
  }

  /**
   * The instant at which `seconds` of business time after `start` have been used. A deadline that
   * lands exactly at a window's end is that end; 0 seconds gives `start` if it is business time,
   * else the next business moment.
   */
  deadline(start: number, seconds: number): number {
    start = Math.floor(start);
    seconds = Math.floor(seconds);
    if (seconds < 0) throw invalid('a duration cannot be negative');
    let year = this.yearOf(start);
    let y = this.year(year);
    let target = this.usedBefore(y, start) + seconds;
    if (seconds === 0) {
      // start itself when inside an interval, else the next interval's start
      for (let guard = 0; guard < 1000; guard++) {
        const i = firstEndAfter(y, start);
        if (i < y.starts.length) return Math.max(start, y.starts[i]!);
        year++;
        y = this.year(year);
        start = Date.UTC(year, 0, 1) / 1000;
      }
      throw invalid('no business time found within 1000 years', 'calendar_has_no_business_time');
    }
    for (let guard = 0; guard < 1000; guard++) {
      const total = y.prefix[y.starts.length]!;
      if (target <= total) {
        // first interval whose cumulative end reaches the target
        let lo = 0;
        let hi = y.starts.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (y.prefix[mid + 1]! >= target) hi = mid;
          else lo = mid + 1;
        }
        return y.ends[lo]! - (y.prefix[lo + 1]! - target);
      }
      target -= total;
      year++;
      y = this.year(year);
    }
    throw invalid('the deadline is more than 1000 years away', 'deadline_out_of_range');
  }

  /** Whether instant t is business time. */
  isBusinessTime(t: number): boolean {
    return this.elapsed(Math.floor(t), Math.floor(t) + 1) === 1;
  }
}

/** Index of the first interval whose end is after t. */
function firstEndAfter(y: YearIntervals, t: number): number {
  let lo = 0;
  let hi = y.ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (y.ends[mid]! > t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** "2026-03-02T14:00:00Z" → seconds; throws a clear error for anything that is not an instant. */
export function parseInstant(text: string, what = 'instant'): number {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(text.trim())) {
    throw invalid(
      `${what}: "${text}" is not an ISO-8601 instant with a zone (e.g. 2026-03-02T14:00:00Z)`,
      'invalid_instant',
    );
  }
  const ms = Date.parse(text.trim());
  if (Number.isNaN(ms)) throw invalid(`${what}: "${text}" is not a valid instant`, 'invalid_instant');
  return Math.floor(ms / 1000);
}

export const formatInstant = (seconds: number): string =>
  new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
