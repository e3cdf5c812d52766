import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError } from './errors.ts';
import { clampLimit, decodeCursor, encodeCursor, toPage } from './pagination.ts';

const instant = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .chain((d) =>
    fc
      .integer({ min: 0, max: 999 })
      .map((us) => d.toISOString().replace('Z', `${String(us).padStart(3, '0')}Z`)),
  );

describe('cursor', () => {
  it('round-trips every (microsecond timestamp, uuid) exactly', () => {
    fc.assert(
      fc.property(instant, fc.uuid(), (createdAt, id) => {
        expect(decodeCursor(encodeCursor({ createdAt, id }))).toEqual({ createdAt, id });
      }),
    );
  });

  it('rejects anything that is not a cursor we made, with invalid_cursor', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        if (text === '') return;
        try {
          const c = decodeCursor(text);
          // the rare random string that decodes must at least be well-formed
          expect(c?.id).toMatch(/^[0-9a-f-]{36}$/i);
        } catch (err) {
          expect(err).toBeInstanceOf(AppError);
          expect((err as AppError).code).toBe('invalid_cursor');
        }
      }),
    );
  });

  it('treats an absent cursor as the first page', () => {
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(decodeCursor('')).toBeUndefined();
  });
});

describe('toPage / clampLimit', () => {
  it('returns a next cursor only when there are more rows', () => {
    const rows = [1, 2, 3].map((i) => ({
      id: `00000000-0000-7000-8000-00000000000${i}`,
      created_at: `2026-01-0${i}T00:00:00Z`,
    }));
    const full = toPage(rows, 2, (r) => r.id);
    expect(full.items).toHaveLength(2);
    expect(decodeCursor(full.nextCursor!)).toEqual({ id: rows[1]!.id, createdAt: rows[1]!.created_at });
    expect(toPage(rows, 3, (r) => r.id).nextCursor).toBeNull();
  });

  it('defaults to 50 and caps at 200', () => {
    expect(clampLimit(undefined)).toBe(50);
    expect(clampLimit(1000)).toBe(200);
    expect(clampLimit(0)).toBe(1);
  });
});
