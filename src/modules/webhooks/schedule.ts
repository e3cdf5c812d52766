// When a failed webhook attempt is tried again: after about 5 seconds, 5 minutes, 30 minutes, 2
// hours, 5 hours, 10 hours and 10 hours (eight attempts over about 27.5 hours), each ±10% at random
// so that endpoints that failed together do not all come back at the same second.

/** Seconds before attempt n + 1 after attempt n failed (index n - 1). */
export const RETRY_SCHEDULE_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000] as const;

/** The most a receiver's Retry-After may push one attempt back. */
export const MAX_RETRY_AFTER_SECONDS = 24 * 3600;

/**
 * Seconds to wait after the failure of `attempt` (1 for the first), or undefined after the last.
 * A Retry-After is honoured by never coming back sooner than it asks (up to a day); the schedule
 * still holds when it asks for less. `random` is in [0, 1).
 */
export function retryDelaySeconds(
  attempt: number,
  retryAfterSeconds: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  const base = RETRY_SCHEDULE_SECONDS[attempt - 1];
  if (base === undefined || !Number.isInteger(attempt) || attempt < 1) return undefined;
  const jittered = base * (0.9 + 0.2 * random());
  const asked =
    retryAfterSeconds === undefined ? 0 : Math.min(Math.max(0, retryAfterSeconds), MAX_RETRY_AFTER_SECONDS);
  return Math.max(jittered, asked);
}

/** A Retry-After header (delay-seconds or an HTTP date) in seconds from `now`, if it is one. */
export function parseRetryAfter(value: string | string[] | undefined, now: Date): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  // IMF-fixdate, the form RFC 9110 asks senders to use: "Sun, 06 Nov 1994 08:49:37 GMT".
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}
