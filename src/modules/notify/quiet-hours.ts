// Quiet hours: a person's daily window, in their own time zone, in which non-urgent notifications
// wait. The window is wall-clock time ("22:00" to "07:00"), so it follows daylight-saving changes:
// on the night the clocks move it is an hour shorter or longer in absolute time, as the person
// expects. A start after the end spans midnight.

export interface QuietHours {
  /** "HH:MM", 24-hour. */
  start: string;
  end: string;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

const minutesOf = (hhmm: string): number => {
  const m = HHMM.exec(hhmm)!;
  return Number(m[1]) * 60 + Number(m[2]);
};

interface WallClock {
  year: number;
  month: number;
  day: number;
  minutes: number;
}

function wallClock(at: Date, timeZone: string): WallClock {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
  }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return {
    year: get('year'),
    month: get('month'),
    day: get('day'),
    minutes: get('hour') * 60 + get('minute'),
  };
}

/** The offset of `timeZone` from UTC at `at`, in minutes. */
function offsetMinutes(at: Date, timeZone: string): number {
  const w = wallClock(at, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, 0, w.minutes);
  return Math.round((asUtc - Math.floor(at.getTime() / 60_000) * 60_000) / 60_000);
}

/**
 * The instant the wall clock of `timeZone` shows `minutes` past midnight on the given local day: the
 * earlier one where a fall-back change shows it twice, and where a spring-forward change skips it,
 * the same time after the gap (02:30 becomes 03:30), as Temporal's "compatible" disambiguation does.
 */
function instantOf(
  day: { year: number; month: number; day: number },
  minutes: number,
  timeZone: string,
): Date {
  const naive = Date.UTC(day.year, day.month - 1, day.day, 0, minutes);
  const before = naive - offsetMinutes(new Date(naive - 12 * 3600_000), timeZone) * 60_000;
  const after = naive - offsetMinutes(new Date(naive + 12 * 3600_000), timeZone) * 60_000;
  const shows = (t: number) => {
    const w = wallClock(new Date(t), timeZone);
    return w.day === day.day && w.minutes === minutes;
  };
  const exact = [before, after].filter(shows);
  return new Date(exact.length > 0 ? Math.min(...exact) : before);
}

/**
 * When quiet hours hold a notification made at `at`: the instant they end, or undefined when `at`
 * is outside them (or they are empty: start equal to end).
 */
export function quietUntil(at: Date, quiet: QuietHours, timeZone: string): Date | undefined {
  const start = minutesOf(quiet.start);
  const end = minutesOf(quiet.end);
  if (start === end) return undefined;
  const now = wallClock(at, timeZone);
  const inside =
    start < end ? now.minutes >= start && now.minutes < end : now.minutes >= start || now.minutes < end;
  if (!inside) return undefined;
  // The end is today, unless the window spans midnight and we are in its evening part.
  const endsTomorrow = start > end && now.minutes >= start;
  const base = new Date(Date.UTC(now.year, now.month - 1, now.day + (endsTomorrow ? 1 : 0)));
  return instantOf(
    { year: base.getUTCFullYear(), month: base.getUTCMonth() + 1, day: base.getUTCDate() },
    end,
    timeZone,
  );
}
