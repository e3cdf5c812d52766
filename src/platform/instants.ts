// Which written instants PostgreSQL's timestamptz takes. RFC 3339 (the OpenAPI `date-time` format)
// allows more than PostgreSQL does, and what it refuses fails the statement (a 500, not a 400):
// year 0000 (there is no year 0: 22008), a UTC offset of 16 hours or more (22009), a text longer than
// its date/time parser reads (a fraction of hundreds of digits: 22007). Impossible dates (February
// 30) and hours of 24 are refused too, which the format check already does for the API.

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?)$/;

/** Digits of a fraction of a second at most: nanoseconds (PostgreSQL keeps microseconds). */
const MAX_FRACTION_DIGITS = 9;

/**
 * Whether `text`, an instant with a zone (`2026-03-02T14:00:00Z`, `2026-03-02T15:00:00+01:00`), is
 * a real one that PostgreSQL takes as it stands: year 1 to 9999, a day its month has, hours 0 to 23,
 * seconds 0 to 60 (a leap second, read as the next minute), a fraction of at most nine digits and an
 * offset under 16 hours.
 */
export function isStorableInstant(text: string): boolean {
  const m = INSTANT.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute] = m.slice(1, 6).map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const second = Number(m[6] ?? 0);
  const fraction = m[7] ?? '';
  const offsetHours = Number(m[8] ?? 0);
  const offsetMinutes = Number(m[9] ?? 0);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return (
    year >= 1 &&
    days !== undefined &&
    day >= 1 &&
    day <= days &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 60 &&
    fraction.length - 1 <= MAX_FRACTION_DIGITS &&
    offsetHours <= 15 &&
    offsetMinutes <= 59
  );
}
