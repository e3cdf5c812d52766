import { describe, expect, it } from 'vitest';
import { ago, expiresIn, humanDuration, oneLine, table } from './mailbox-format.ts';

describe('mailbox output', () => {
  it('reads durations in their two largest units, dropping a zero second unit', () => {
    expect(humanDuration(0)).toBe('0s');
    expect(humanDuration(0.9)).toBe('0s');
    expect(humanDuration(40)).toBe('40s');
    expect(humanDuration(45 * 60)).toBe('45m');
    expect(humanDuration(3 * 3600 + 12 * 60 + 5)).toBe('3h 12m');
    expect(humanDuration(3 * 3600 + 30)).toBe('3h');
    expect(humanDuration(2 * 86_400 + 3 * 3600 + 59 * 60)).toBe('2d 3h');
    expect(humanDuration(-5)).toBe('0s');
  });

  it('says how long until an expiry, how long since an event, and when there is none', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    expect(expiresIn('2026-03-03T15:00:00.000Z', now)).toBe('2d 3h');
    expect(expiresIn('2026-03-01T11:55:00.000Z', now)).toBe('expired 5m ago');
    expect(expiresIn(null, now)).toBe('-');
    expect(ago('2026-03-01T11:00:00.000Z', now)).toBe('1h ago');
    expect(ago(null, now)).toBe('-');
  });

  it('keeps a failure reason to one short line', () => {
    expect(oneLine('refused:\n  invalid_grant')).toBe('refused: invalid_grant');
    expect(oneLine('x'.repeat(100), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(oneLine(null)).toBe('-');
  });

  it('aligns a table on its widest cells', () => {
    expect(
      table(
        ['A', 'BB', 'C'],
        [
          ['aaa', 'b', 'c'],
          ['a', 'bbbb', ''],
        ],
      ),
    ).toEqual(['A    BB    C', 'aaa  b     c', 'a    bbbb']);
  });
});
