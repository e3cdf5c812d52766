import { describe, expect, it } from 'vitest';
import { pgTimestampToIso } from './pool.ts';

describe('pgTimestampToIso', () => {
  it.each([
    ['2026-03-02 14:00:00.123456+00', '2026-03-02T14:00:00.123456Z'],
    ['2026-03-02 14:00:00.1+00', '2026-03-02T14:00:00.1Z'],
    ['2026-03-02 14:00:00+00', '2026-03-02T14:00:00Z'],
    ['2026-03-02 14:00:00+00:00', '2026-03-02T14:00:00Z'],
    ['infinity', 'infinity'],
    ['-infinity', '-infinity'],
  ])('turns %s into %s', (text, iso) => {
    expect(pgTimestampToIso(text)).toBe(iso);
  });

  it('gives what Date parses back to the same instant (to the millisecond)', () => {
    for (const text of [
      '2026-11-01 06:30:59.999999+00',
      '1999-12-31 23:59:59+00',
      '2030-01-01 00:00:00.5+00',
    ]) {
      const iso = pgTimestampToIso(text);
      expect(new Date(iso).toISOString().slice(0, 19)).toBe(iso.slice(0, 19));
    }
  });
});
