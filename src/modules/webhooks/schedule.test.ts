// The retry schedule of webhooks: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, ±10%, then give
// up; a Retry-After is never undercut.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_RETRY_AFTER_SECONDS,
  parseRetryAfter,
  RETRY_SCHEDULE_SECONDS,
  retryDelaySeconds,
} from './schedule.ts';

const SCHEDULE = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

describe('webhook retry schedule', () => {
  it('is the documented one', () => {
    expect([...RETRY_SCHEDULE_SECONDS]).toEqual(SCHEDULE);
    // Without jitter (random 0.5) it is exact.
    expect(SCHEDULE.map((_, i) => retryDelaySeconds(i + 1, undefined, () => 0.5))).toEqual(SCHEDULE);
  });

  it('jitters each delay within ±10%, and gives up after the eighth attempt', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = retryDelaySeconds(attempt, undefined, () => r)!;
          const base = SCHEDULE[attempt - 1]!;
          expect(delay).toBeGreaterThanOrEqual(base * 0.9);
          expect(delay).toBeLessThanOrEqual(base * 1.1);
        },
      ),
    );
    expect(retryDelaySeconds(1, undefined, () => 0)).toBe(4.5);
    expect(retryDelaySeconds(7, undefined, () => 0.999_999)).toBeCloseTo(39_600, 0);
    for (const attempt of [8, 9, 100, 0, -1]) expect(retryDelaySeconds(attempt, undefined)).toBeUndefined();
    expect(retryDelaySeconds(8, 60)).toBeUndefined();
    // With the real generator, the spread stays in bounds and is not constant.
    const seen = new Set(Array.from({ length: 200 }, () => retryDelaySeconds(2, undefined)!));
    expect(seen.size).toBeGreaterThan(1);
    for (const d of seen) expect(d >= 270 && d <= 330).toBe(true);
  });

  it('honours Retry-After: never sooner than asked (up to a day), never sooner than the schedule', () => {
    expect(retryDelaySeconds(1, 120, () => 0.5)).toBe(120);
    expect(retryDelaySeconds(3, 120, () => 0.5)).toBe(1800);
    expect(retryDelaySeconds(1, 10 * 86_400, () => 0.5)).toBe(MAX_RETRY_AFTER_SECONDS);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    expect(parseRetryAfter('30', now)).toBe(30);
    expect(parseRetryAfter(['7'], now)).toBe(7);
    expect(parseRetryAfter('Sun, 01 Mar 2026 12:02:00 GMT', now)).toBe(120);
    expect(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now)).toBe(0);
    for (const bad of [undefined, '', 'soon', '-5', '1.5', '2026-03-01T12:02:00Z'])
      expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});
