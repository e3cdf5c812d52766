// SLA calendar benchmark: `npm run bench -- sla`. One core, no database.
// Relaydesk's compiled calendar against a naive minute-by-minute loop and the `opening_hours` npm
// package, on the same inputs (Mon–Fri 09:00–17:00 America/New_York with ten holidays), with the
// ratios. Then the timers (bench/sla-timers.ts): 100,000 clocks fired by the real scheduler process.
// BENCH_SLA_ONLY=calendar|timers runs one half (development).
import opening_hours from 'opening_hours';
import { Calendar, parseInstant } from '../src/modules/sla/calendar.ts';
import { offsetAt } from '../src/modules/sla/zone.ts';
import { fmt, heading, line, median, table, verdict } from './lib.ts';
import { benchSlaTimers } from './sla-timers.ts';

const HOLIDAYS = [
  '2026-01-01',
  '2026-01-19',
  '2026-02-16',
  '2026-05-25',
  '2026-07-03',
  '2026-09-07',
  '2026-10-12',
  '2026-11-11',
  '2026-11-26',
  '2026-12-25',
];
const SPEC = {
  timeZone: 'America/New_York',
  weekly: Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri'].map((d) => [d, [['09:00', '17:00']]])),
  holidays: HOLIDAYS,
};
const HOUR = 3600;

/** Business minute? By the local wall clock of the instant (Intl), as a naive implementation would. */
function naiveIsBusiness(t: number): boolean {
  const local = t + offsetAt(SPEC.timeZone, t);
  const days = Math.floor(local / 86_400);
  const weekday = new Date(days * 86_400_000).getUTCDay();
  const date = new Date(days * 86_400_000).toISOString().slice(0, 10);
  const sec = local - days * 86_400;
  return weekday >= 1 && weekday <= 5 && !HOLIDAYS.includes(date) && sec >= 9 * HOUR && sec < 17 * HOUR;
}

function naiveDeadline(start: number, seconds: number): number {
  let t = start;
  let used = 0;
  while (used < seconds) {
    if (naiveIsBusiness(t)) used += 60;
    t += 60;
  }
  return t;
}

function naiveElapsed(from: number, to: number): number {
  let n = 0;
  for (let t = from; t < to; t += 60) if (naiveIsBusiness(t)) n += 60;
  return n;
}

function rate(calls: number, fn: (i: number) => number): number {
  let sink = 0;
  const started = performance.now();
  for (let i = 0; i < calls; i++) sink += fn(i);
  const seconds = (performance.now() - started) / 1000;
  if (sink === Number.MIN_VALUE) line('');
  return calls / seconds;
}

export async function benchSla(): Promise<Record<string, unknown>> {
  const only = process.env['BENCH_SLA_ONLY'];
  const calendar = only === 'timers' ? {} : await benchCalendar();
  const timers = only === 'calendar' ? {} : await benchSlaTimers();
  return { benchmark: 'sla', ...calendar, ...timers };
}

async function benchCalendar(): Promise<Record<string, unknown>> {
  heading('sla: calendar math (Mon–Fri 09–17 America/New_York, ten holidays), one core');
  const t0 = parseInstant('2026-01-05T14:00:00Z'); // minute-aligned starts, so the naive loop is exact
  const starts = Array.from({ length: 4096 }, (_, i) => t0 + ((i * 7919) % (300 * 24 * 60)) * 60);

  const compileTimes: number[] = [];
  for (let i = 0; i < 21; i++) {
    const started = performance.now();
    Calendar.load(SPEC).elapsed(t0, t0 + 1); // load + compile the year 2026
    compileTimes.push(performance.now() - started);
  }
  const compileMs = median(compileTimes.slice(1));

  const cal = Calendar.load(SPEC);
  cal.elapsed(t0, t0 + 400 * 86_400); // compile 2026 and 2027 before timing
  const N = 5_000_000;
  const deadline60 = rate(N, (i) => cal.deadline(starts[i & 4095]!, 60 * 60));
  const deadline30d = rate(N, (i) => cal.deadline(starts[i & 4095]!, 30 * 8 * HOUR));
  const elapsed3d = rate(N, (i) => cal.elapsed(starts[i & 4095]!, starts[i & 4095]! + 3 * 86_400 + 3_600));

  const naiveDeadline60 = rate(300, (i) => naiveDeadline(starts[i & 4095]!, 60 * 60));
  const naiveDeadline30d = rate(5, (i) => naiveDeadline(starts[i & 4095]!, 30 * 8 * HOUR));
  const naiveElapsed3d = rate(100, (i) =>
    naiveElapsed(starts[i & 4095]!, starts[i & 4095]! + 3 * 86_400 + 3_600),
  );

  // opening_hours reads the process time zone (JS Date local time): run it in the calendar's zone.
  const previousTz = process.env['TZ'];
  process.env['TZ'] = 'America/New_York';
  const oh = new opening_hours(
    `Mo-Fr 09:00-17:00; ${HOLIDAYS.map((d) => `${d.slice(0, 4)} ${['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][Number(d.slice(5, 7)) - 1]} ${d.slice(8)} off`).join('; ')}`,
  );
  const ohElapsed = (from: number, to: number) =>
    oh.getOpenDuration(new Date(from * 1000), new Date(to * 1000))[0] / 1000;
  const ohDeadline = (start: number, seconds: number) => {
    // no "add business time" in opening_hours: walk its open intervals
    let left = seconds;
    for (let from = start; ; from += 14 * 86_400) {
      for (const [a, b] of oh.getOpenIntervals(
        new Date(from * 1000),
        new Date((from + 14 * 86_400) * 1000),
      )) {
        const span = (b.getTime() - a.getTime()) / 1000;
        if (span >= left) return a.getTime() / 1000 + left;
        left -= span;
      }
    }
  };
  const ohDeadline60 = rate(2_000, (i) => ohDeadline(starts[i & 4095]!, 3600));
  const ohDeadline30d = rate(200, (i) => ohDeadline(starts[i & 4095]!, 30 * 8 * HOUR));
  const ohElapsed3d = rate(2_000, (i) =>
    ohElapsed(starts[i & 4095]!, starts[i & 4095]! + 3 * 86_400 + 3_600),
  );

  // The three agree on the same inputs (a sample).
  let disagreements = 0;
  for (let i = 0; i < 40; i++) {
    const s = starts[i * 97]!;
    const d = [3600, 8 * HOUR, 30 * 8 * HOUR][i % 3]!;
    const ours = cal.deadline(s, d);
    if (ours !== naiveDeadline(s, d) && !(cal.elapsed(s, naiveDeadline(s, d)) === d)) disagreements++;
    if (ours !== ohDeadline(s, d)) disagreements++;
    const e = cal.elapsed(s, s + 5 * 86_400 + 1_234 * 60);
    if (e !== naiveElapsed(s, s + 5 * 86_400 + 1_234 * 60) || e !== ohElapsed(s, s + 5 * 86_400 + 1_234 * 60))
      disagreements++;
  }
  if (previousTz === undefined) delete process.env['TZ'];
  else process.env['TZ'] = previousTz;

  const m = (x: number) => `${fmt(x / 1e6, 2)} M/s`;
  const r = (x: number, y: number) => `${fmt(x / y)}×`;
  table([
    ['measure', 'Relaydesk', 'naive minute loop', 'opening_hours', 'target', ''],
    [
      'deadline, 60 min target',
      m(deadline60),
      `${fmt(naiveDeadline60)} /s (${r(deadline60, naiveDeadline60)})`,
      `${fmt(ohDeadline60)} /s (${r(deadline60, ohDeadline60)})`,
      '≥ 10 M/s',
      verdict(deadline60 >= 1e7),
    ],
    [
      'deadline, 30 business days',
      m(deadline30d),
      `${fmt(naiveDeadline30d, 1)} /s (${r(deadline30d, naiveDeadline30d)})`,
      `${fmt(ohDeadline30d)} /s (${r(deadline30d, ohDeadline30d)})`,
      'within 20 % of 60 min',
      verdict(deadline30d >= deadline60 * 0.8),
    ],
    [
      'elapsed, 3-day span',
      m(elapsed3d),
      `${fmt(naiveElapsed3d)} /s (${r(elapsed3d, naiveElapsed3d)})`,
      `${fmt(ohElapsed3d)} /s (${r(elapsed3d, ohElapsed3d)})`,
      '≥ 10 M/s',
      verdict(elapsed3d >= 1e7),
    ],
    ['compile one calendar year', `${fmt(compileMs, 2)} ms`, '', '', '≤ 5 ms', verdict(compileMs <= 5)],
    ['disagreements on 120 sample checks', String(disagreements), '', '', '0', verdict(disagreements === 0)],
  ]);
  return {
    compileYearMs: Number(compileMs.toFixed(3)),
    deadline60PerSecond: Math.round(deadline60),
    deadline30DaysPerSecond: Math.round(deadline30d),
    elapsedPerSecond: Math.round(elapsed3d),
    naive: {
      deadline60: Math.round(naiveDeadline60),
      deadline30Days: Number(naiveDeadline30d.toFixed(1)),
      elapsed: Math.round(naiveElapsed3d),
    },
    openingHours: {
      deadline60: Math.round(ohDeadline60),
      deadline30Days: Math.round(ohDeadline30d),
      elapsed: Math.round(ohElapsed3d),
    },
    disagreements,
  };
}
