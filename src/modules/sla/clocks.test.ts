import { describe, expect, it } from 'vitest';
import { Calendar, formatInstant, parseInstant } from './calendar.ts';
import { type ClockPolicy, type ClockState, computeClocks, type TimelineEntry } from './clocks.ts';

const ny = Calendar.load({
  timeZone: 'America/New_York',
  weekly: Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri'].map((d) => [d, [['09:00', '17:00']]])),
});
const T = (iso: string) => parseInstant(iso);
const H = 3600;
const policy = (overrides: Partial<ClockPolicy> = {}): ClockPolicy => ({
  targets: { first_response: 1 * H, next_response: 2 * H, resolution: 8 * H },
  pauseStatuses: { resolution: ['pending', 'on_hold'] },
  thresholds: [50, 75, 90, 100],
  escalations: [],
  reopen: 'continue',
  ...overrides,
});
const status = (iso: string, s: string): TimelineEntry => ({ at: T(iso), kind: 'status', status: s });
const agent = (iso: string): TimelineEntry => ({ at: T(iso), kind: 'agent_public' });
const requester = (iso: string): TimelineEntry => ({ at: T(iso), kind: 'requester_public' });
const clock = (clocks: ClockState[], metric: string, cycle = 1) =>
  clocks.find((c) => c.metric === metric && c.cycle === cycle)!;
const iso = (t: number | null) => (t === null ? null : formatInstant(t));

// Monday 2026-03-02 09:00 New York = 14:00Z.
const created = T('2026-03-02T14:00:00Z');

describe('first response', () => {
  it('is fulfilled by the first public agent reply, with its thresholds at 50/75/90/100 % of business time', () => {
    const clocks = computeClocks({
      createdAt: created,
      timeline: [agent('2026-03-02T14:40:00Z')],
      policy: policy(),
      calendar: ny,
      now: T('2026-03-02T16:00:00Z'),
    });
    const fr = clock(clocks, 'first_response');
    expect(fr).toMatchObject({
      status: 'fulfilled',
      elapsedSeconds: 40 * 60,
      breachedAt: null,
      fulfilledAt: T('2026-03-02T14:40:00Z'),
    });
    expect(fr.thresholds.map((th) => [th.percent, iso(th.dueAt)])).toEqual([
      [50, '2026-03-02T14:30:00Z'],
      [75, null],
      [90, null],
      [100, null],
    ]);
  });

  it('records a breach, and a late reply keeps its real time', () => {
    const clocks = computeClocks({
      createdAt: created,
      timeline: [agent('2026-03-02T17:00:00Z')],
      policy: policy(),
      calendar: ny,
      now: T('2026-03-02T18:00:00Z'),
    });
    const fr = clock(clocks, 'first_response');
    expect(iso(fr.breachedAt)).toBe('2026-03-02T15:00:00Z');
    expect(iso(fr.fulfilledAt)).toBe('2026-03-02T17:00:00Z');
    expect(fr.status).toBe('fulfilled');
    expect(fr.elapsedSeconds).toBe(3 * H); // keeps counting past the target until fulfilled
  });

  it('counts business time only: created Friday 16:30 with a 1 h target is due Monday 09:30', () => {
    const friday = T('2026-03-06T21:30:00Z');
    const clocks = computeClocks({
      createdAt: friday,
      timeline: [],
      policy: policy(),
      calendar: ny,
      now: T('2026-03-07T12:00:00Z'),
    });
    const fr = clock(clocks, 'first_response');
    expect(fr.status).toBe('active');
    expect(iso(fr.dueAt)).toBe('2026-03-09T13:30:00Z'); // Monday after the change to summer time
  });
});

describe('pauses', () => {
  it('adds business time, not wall time: pending over a weekend does not use the resolution clock', () => {
    const timeline = [status('2026-03-06T20:00:00Z', 'pending'), status('2026-03-09T15:00:00Z', 'open')]; // Fri 15:00 EST → Mon 11:00 EDT
    const clocks = computeClocks({
      createdAt: T('2026-03-06T14:00:00Z'),
      timeline,
      policy: policy(),
      calendar: ny,
      now: T('2026-03-09T16:00:00Z'),
    });
    const res = clock(clocks, 'resolution');
    // Fri 09:00–15:00 (6 h) + Mon 11:00–12:00 EDT (1 h)
    expect(res.elapsedSeconds).toBe(7 * H);
    expect(res.status).toBe('active');
    expect(iso(res.dueAt)).toBe('2026-03-09T17:00:00Z'); // one business hour left
  });

  it('a threshold that falls due while paused waits for the resume, then comes due on business time', () => {
    const paused = computeClocks({
      createdAt: created,
      timeline: [status('2026-03-02T17:00:00Z', 'on_hold')], // at 12:00 local, 3 h used
      policy: policy(),
      calendar: ny,
      now: T('2026-03-03T20:00:00Z'),
    });
    const res = clock(paused, 'resolution');
    expect(res.status).toBe('paused');
    expect(res.thresholds.map((th) => [th.percent, iso(th.dueAt)])).toEqual([
      [50, null],
      [75, null],
      [90, null],
      [100, null],
    ]);
    const resumed = computeClocks({
      createdAt: created,
      timeline: [status('2026-03-02T17:00:00Z', 'on_hold'), status('2026-03-04T14:00:00Z', 'open')], // Wed 09:00
      policy: policy(),
      calendar: ny,
      now: T('2026-03-04T14:30:00Z'),
    });
    const again = clock(resumed, 'resolution');
    expect(again.status).toBe('active');
    // 3 h used before the hold; 50 % (4 h) is one business hour after Wednesday 09:00.
    expect(iso(again.thresholds[0]!.dueAt)).toBe('2026-03-04T15:00:00Z');
  });

  it('does not pause first response for pending (default)', () => {
    const clocks = computeClocks({
      createdAt: created,
      timeline: [status('2026-03-02T14:10:00Z', 'pending')],
      policy: policy(),
      calendar: ny,
      now: T('2026-03-02T16:00:00Z'),
    });
    expect(clock(clocks, 'first_response')).toMatchObject({ status: 'breached', elapsedSeconds: 2 * H });
  });
});

describe('next response and resolution cycles', () => {
  it('opens a next-response cycle for each requester message after an agent reply', () => {
    const timeline = [
      agent('2026-03-02T14:20:00Z'),
      requester('2026-03-02T15:00:00Z'),
      requester('2026-03-02T15:10:00Z'), // same cycle
      agent('2026-03-02T16:00:00Z'),
      requester('2026-03-02T18:00:00Z'),
    ];
    const clocks = computeClocks({
      createdAt: created,
      timeline,
      policy: policy(),
      calendar: ny,
      now: T('2026-03-02T19:00:00Z'),
    });
    expect(clock(clocks, 'next_response', 1)).toMatchObject({ status: 'fulfilled', elapsedSeconds: H });
    expect(clock(clocks, 'next_response', 2)).toMatchObject({ status: 'active', elapsedSeconds: H });
    expect(clocks.filter((c) => c.metric === 'next_response')).toHaveLength(2);
  });

  it('is fulfilled by solved, and a reopen continues the used time (or restarts it)', () => {
    const timeline = [status('2026-03-02T16:00:00Z', 'solved'), status('2026-03-03T14:00:00Z', 'open')];
    const now = T('2026-03-03T15:00:00Z');
    const cont = computeClocks({ createdAt: created, timeline, policy: policy(), calendar: ny, now });
    expect(clock(cont, 'resolution')).toMatchObject({
      cycle: 1,
      status: 'active',
      elapsedSeconds: 3 * H,
      fulfilledAt: null,
    });
    const restart = computeClocks({
      createdAt: created,
      timeline,
      policy: policy({ reopen: 'restart' }),
      calendar: ny,
      now,
    });
    expect(clock(restart, 'resolution', 1)).toMatchObject({ status: 'fulfilled', elapsedSeconds: 2 * H });
    expect(clock(restart, 'resolution', 2)).toMatchObject({ status: 'active', elapsedSeconds: H });
  });

  it('follows a priority change: the same timeline against another target', () => {
    const timeline: TimelineEntry[] = [];
    const now = T('2026-03-02T16:00:00Z');
    const normal = clock(
      computeClocks({ createdAt: created, timeline, policy: policy(), calendar: ny, now }),
      'first_response',
    );
    const urgent = clock(
      computeClocks({
        createdAt: created,
        timeline,
        policy: policy({ targets: { first_response: 15 * 60 } }),
        calendar: ny,
        now,
      }),
      'first_response',
    );
    expect(normal.status).toBe('breached');
    expect(iso(urgent.breachedAt)).toBe('2026-03-02T14:15:00Z');
  });

  it('fires escalation levels past 100 %', () => {
    const clocks = computeClocks({
      createdAt: created,
      timeline: [],
      policy: policy({ escalations: [110, 125] }),
      calendar: ny,
      now: T('2026-03-02T15:30:00Z'),
    });
    const fr = clock(clocks, 'first_response');
    expect(fr.thresholds.map((th) => [th.percent, iso(th.dueAt)])).toEqual([
      [50, '2026-03-02T14:30:00Z'],
      [75, '2026-03-02T14:45:00Z'],
      [90, '2026-03-02T14:54:00Z'],
      [100, '2026-03-02T15:00:00Z'],
      [110, '2026-03-02T15:06:00Z'],
      [125, '2026-03-02T15:15:00Z'],
    ]);
  });
});

describe('edge cases', () => {
  it('is active (not paused) in the very second it starts', () => {
    const clocks = computeClocks({
      createdAt: created,
      timeline: [],
      policy: policy(),
      calendar: ny,
      now: created,
    });
    expect(clock(clocks, 'first_response')).toMatchObject({ status: 'active', elapsedSeconds: 0 });
    expect(iso(clock(clocks, 'first_response').dueAt)).toBe('2026-03-02T15:00:00Z');
  });
});

describe('transitions', () => {
  const at = (clocks: ClockState[], metric: string, cycle = 1) =>
    clock(clocks, metric, cycle).transitions.map((x) => [x.type, iso(x.at), x.status ?? null]);

  it('reads a reopened resolution that continues as fulfilled when solved and resumed when reopened', () => {
    const timeline = [
      status('2026-03-02T15:00:00Z', 'pending'),
      status('2026-03-02T15:30:00Z', 'on_hold'), // still paused: no transition
      status('2026-03-02T16:00:00Z', 'solved'),
      status('2026-03-03T14:00:00Z', 'open'),
      status('2026-03-03T15:00:00Z', 'closed'),
    ];
    const clocks = computeClocks({
      createdAt: created,
      timeline,
      policy: policy(),
      calendar: ny,
      now: T('2026-03-04T15:00:00Z'),
    });
    expect(at(clocks, 'resolution')).toEqual([
      ['started', '2026-03-02T14:00:00Z', null],
      ['paused', '2026-03-02T15:00:00Z', 'pending'],
      ['fulfilled', '2026-03-02T16:00:00Z', 'solved'],
      ['resumed', '2026-03-03T14:00:00Z', 'open'],
      ['fulfilled', '2026-03-03T15:00:00Z', null],
    ]);
    expect(clock(clocks, 'resolution').pausedSince).toBeNull();
  });

  it('starts a new cycle on reopen with restart, and knows since when a clock is paused', () => {
    const timeline = [
      status('2026-03-02T16:00:00Z', 'solved'),
      status('2026-03-03T14:00:00Z', 'open'),
      status('2026-03-03T14:30:00Z', 'pending'),
    ];
    const clocks = computeClocks({
      createdAt: created,
      timeline,
      policy: policy({ reopen: 'restart' }),
      calendar: ny,
      now: T('2026-03-03T15:00:00Z'),
    });
    expect(at(clocks, 'resolution', 1)).toEqual([
      ['started', '2026-03-02T14:00:00Z', null],
      ['fulfilled', '2026-03-02T16:00:00Z', null],
    ]);
    expect(at(clocks, 'resolution', 2)).toEqual([
      ['started', '2026-03-03T14:00:00Z', null],
      ['paused', '2026-03-03T14:30:00Z', 'pending'],
    ]);
    expect(iso(clock(clocks, 'resolution', 2).pausedSince)).toBe('2026-03-03T14:30:00Z');
  });

  it('counts several changes within one second as the last one (a pause that lasted no second is none)', () => {
    const timeline = [status('2026-03-02T15:00:00Z', 'pending'), status('2026-03-02T15:00:00Z', 'open')];
    const clocks = computeClocks({
      createdAt: created,
      timeline,
      policy: policy(),
      calendar: ny,
      now: T('2026-03-02T16:00:00Z'),
    });
    expect(at(clocks, 'resolution')).toEqual([['started', '2026-03-02T14:00:00Z', null]]);
  });
});
