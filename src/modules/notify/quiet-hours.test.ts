// Quiet hours are wall-clock times in the person's zone: they follow daylight-saving changes.
import { describe, expect, it } from 'vitest';
import { quietUntil } from './quiet-hours.ts';

const night = { start: '22:00', end: '07:00' };

describe('quietUntil', () => {
  it.each([
    // Berlin, spring forward (2026-03-29 02:00 CET → 03:00 CEST): the night is an hour shorter.
    ['2026-03-28T21:30:00Z', 'Europe/Berlin', '2026-03-29T05:00:00.000Z'],
    ['2026-03-29T00:30:00Z', 'Europe/Berlin', '2026-03-29T05:00:00.000Z'],
    ['2026-03-29T05:30:00Z', 'Europe/Berlin', undefined],
    // Berlin, fall back (2026-10-25 03:00 CEST → 02:00 CET): 07:00 CET is 06:00 UTC.
    ['2026-10-24T20:30:00Z', 'Europe/Berlin', '2026-10-25T06:00:00.000Z'],
    ['2026-10-25T05:59:00Z', 'Europe/Berlin', '2026-10-25T06:00:00.000Z'],
    ['2026-10-25T06:00:00Z', 'Europe/Berlin', undefined],
    // Before the window starts, and in the middle of the day.
    ['2026-06-01T19:59:00Z', 'Europe/Berlin', undefined],
    ['2026-06-01T12:00:00Z', 'Europe/Berlin', undefined],
    // New York, spring forward (2026-03-08 02:00 EST → 03:00 EDT).
    ['2026-03-08T04:00:00Z', 'America/New_York', '2026-03-08T11:00:00.000Z'],
    // A zone without daylight saving.
    ['2026-03-08T18:00:00Z', 'Asia/Kolkata', '2026-03-09T01:30:00.000Z'],
  ])('at %s in %s holds until %s', (at, zone, until) => {
    expect(quietUntil(new Date(at), night, zone)?.toISOString()).toBe(until);
  });

  it('ends a window whose end falls in a skipped hour at the same time after the gap', () => {
    // 01:00–02:30 in New York on the night 02:00–03:00 does not exist: it ends at 03:30 EDT.
    const q = { start: '01:00', end: '02:30' };
    expect(quietUntil(new Date('2026-03-08T06:30:00Z'), q, 'America/New_York')?.toISOString()).toBe(
      '2026-03-08T07:30:00.000Z',
    );
  });

  it('treats an empty window (start = end) as no quiet hours', () => {
    expect(
      quietUntil(new Date('2026-03-08T06:30:00Z'), { start: '07:00', end: '07:00' }, 'UTC'),
    ).toBeUndefined();
  });

  it('handles a window within one day', () => {
    const lunch = { start: '12:00', end: '13:00' };
    expect(quietUntil(new Date('2026-06-01T10:30:00Z'), lunch, 'Europe/Berlin')?.toISOString()).toBe(
      '2026-06-01T11:00:00.000Z',
    );
    expect(quietUntil(new Date('2026-06-01T11:00:00Z'), lunch, 'Europe/Berlin')).toBeUndefined();
  });
});
