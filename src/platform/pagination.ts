// Cursor pagination over (created_at, id), newest first. The cursor is opaque to clients
// (base64url of JSON) and carries the exact microsecond timestamp, so no row is skipped or repeated.
import { AppError } from './errors.ts';
import { isUuid } from './ids.ts';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

export interface Cursor {
  createdAt: string;
  id: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?Z$/;

/**
 * Whether `text` is an instant as this API writes them (UTC, at most microseconds) and a real one
 * that PostgreSQL takes as it stands: year 1 to 9999 (there is no year 0), a day its month has, hours
 * 0 to 23 (PostgreSQL would read 24:00 as the next day), no leap second (it would read :60 as the
 * next minute).
 */
export function isCursorInstant(text: string): boolean {
  const m = ISO_RE.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return (
    year >= 1 && days !== undefined && day >= 1 && day <= days && hour <= 23 && minute <= 59 && second <= 59
  );
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString('base64url');
}

export function decodeCursor(text: string | undefined): Cursor | undefined {
  if (text === undefined || text === '') return undefined;
  const invalid = new AppError(
    'invalid_cursor',
    'The cursor is malformed; pass back nextCursor exactly as received',
  );
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) throw invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(UTF8.decode(Buffer.from(text, 'base64url')));
  } catch {
    throw invalid;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    !isCursorInstant(parsed[0]) ||
    !isUuid(parsed[1])
  ) {
    throw invalid;
  }
  return { createdAt: parsed[0], id: parsed[1] };
}

/** Cuts the `limit + 1` rows a query returned into a page and the cursor of the next one. */
export function toPage<R extends { created_at: string; id: string }, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(map),
    nextCursor: more && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
  };
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  return Math.max(1, Math.min(MAX_LIMIT, Math.trunc(limit)));
}
