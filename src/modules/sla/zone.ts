// Time-zone arithmetic on UTC instants (seconds), with IANA zones through Intl, never the process
// time zone. The two rules of DESIGN §5.3: a local time in a spring-forward gap moves forward by the
// gap; an ambiguous (fall-back) local time means its first occurrence.

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The canonical name of an IANA zone, or undefined when it is not one. */
export function canonicalZone(zone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** Seconds to add to UTC to get local wall time, at the UTC instant `t` (seconds). */
export function offsetAt(zone: string, t: number): number {
  const parts = formatter(zone).formatToParts(new Date(t * 1000));
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  const wall =
    Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second')) / 1000;
  return wall - t;
}

/** Days since 1970-01-01 of a civil date (proleptic Gregorian). */
export function daysFromCivil(year: number, month: number, day: number): number {
  return Date.UTC(year, month - 1, day) / 86_400_000;
}

export function civilFromDays(days: number): { year: number; month: number; day: number; weekday: number } {
  const d = new Date(days * 86_400_000);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    weekday: d.getUTCDay(),
  };
}

/**
 * The UTC instant (seconds) of local wall time `localSeconds` (seconds since 1970-01-01 00:00 local).
 * In a gap: moved forward by the gap. Ambiguous: the first occurrence.
 */
export function localToUtc(zone: string, localSeconds: number): number {
  // The offsets in force well before and well after: zone transitions are always days apart.
  const before = offsetAt(zone, localSeconds - 26 * 3600);
  const after = offsetAt(zone, localSeconds + 26 * 3600);
  const valid = [...new Set([before, after])]
    .filter((o) => offsetAt(zone, localSeconds - o) === o)
    .map((o) => localSeconds - o);
  if (valid.length > 0) return Math.min(...valid); // both valid: ambiguous, take the first occurrence
  // A gap: the wall time does not exist. Read with the offset before the jump, it lands after the
  // jump by exactly the time it was into the gap: "moves forward by the gap".
  return localSeconds - before;
}

/**
 * The offsets of a zone over a span, found once: a weekly sample, then a binary search to the
 * second wherever the offset changed between samples. Offsets inside the span are then a lookup,
 * with no Intl call (compiling a calendar year needs thousands of them).
 */
export class ZoneTable {
  /** Instants (seconds) from which offsets[i] applies; starts[0] is the span start. */
  private readonly starts: number[] = [];
  private readonly offsets: number[] = [];
  private readonly zone: string;
  private readonly from: number;
  private readonly to: number;

  constructor(zone: string, from: number, to: number) {
    this.zone = zone;
    this.from = from;
    this.to = to;
    const step = 7 * 86_400; // no zone changes its offset twice within a week
    let prevT = from;
    let prev = offsetAt(zone, from);
    this.starts.push(from);
    this.offsets.push(prev);
    for (let t = Math.min(from + step, to); ; t = Math.min(t + step, to)) {
      const o = offsetAt(zone, t);
      if (o !== prev) {
        // the change lies in (prevT, t]: find its first second
        let lo = prevT;
        let hi = t;
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (offsetAt(zone, mid) === prev) lo = mid;
          else hi = mid;
        }
        this.starts.push(hi);
        this.offsets.push(o);
        prev = o;
      }
      prevT = t;
      if (t >= to) break;
    }
  }

  offset(t: number): number {
    if (t < this.from || t > this.to) return offsetAt(this.zone, t);
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= t) lo = mid;
      else hi = mid - 1;
    }
    return this.offsets[lo]!;
  }

  /** localToUtc with this table's offsets (same rules). */
  localToUtc(localSeconds: number): number {
    const before = this.offset(localSeconds - 26 * 3600);
    const after = this.offset(localSeconds + 26 * 3600);
    let best = Number.POSITIVE_INFINITY;
    for (const o of before === after ? [before] : [before, after]) {
      if (this.offset(localSeconds - o) === o) best = Math.min(best, localSeconds - o);
    }
    return Number.isFinite(best) ? best : localSeconds - before;
  }
}
