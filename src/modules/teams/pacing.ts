// Pacing sends per conversation under Teams' documented limits (7 messages a second, 60 in 30
// seconds, per bot and conversation) instead of provoking 429s: each send takes the earliest slot
// that keeps every sliding window under its limit, and waits for it. Slots are handed out in order,
// so concurrent sends to one conversation leave in the order they asked. The limiter lives in the
// process: several worker processes each pace their own sends (a 429 that still happens is mapped
// to `throttled` and retried after Retry-After).
import type { Clock } from '../../platform/clock.ts';

export interface PacingWindow {
  limit: number;
  ms: number;
}

export const TEAMS_CONVERSATION_WINDOWS: readonly PacingWindow[] = [
  { limit: 7, ms: 1_000 },
  { limit: 60, ms: 30_000 },
];

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class ConversationPacer {
  private readonly slots = new Map<string, number[]>();
  /** Key → before when (epoch ms) nothing may go to it: a 429's Retry-After. */
  private readonly heldUntil = new Map<string, number>();
  private readonly clock: Clock;
  private readonly sleep: Sleep;
  private readonly windows: readonly PacingWindow[];
  private readonly longest: number;

  constructor(options: { clock: Clock; sleep?: Sleep; windows?: readonly PacingWindow[] }) {
    this.clock = options.clock;
    this.sleep = options.sleep ?? realSleep;
    this.windows = options.windows ?? TEAMS_CONVERSATION_WINDOWS;
    this.longest = Math.max(...this.windows.map((w) => w.ms));
  }

  /** Takes the next slot of `key` and returns it (epoch ms; now or later). */
  reserve(key: string): number {
    const now = this.clock.now().getTime();
    const taken = (this.slots.get(key) ?? []).filter((t) => t > now - this.longest);
    let at = Math.max(now, taken[taken.length - 1] ?? now, this.heldUntil.get(key) ?? now);
    // Move the slot past the oldest send of any window that is full at `at`, until none is.
    for (let moved = true; moved;) {
      moved = false;
      for (const w of this.windows) {
        const inWindow = taken.filter((t) => t > at - w.ms);
        if (inWindow.length >= w.limit) {
          at = inWindow[inWindow.length - w.limit]! + w.ms;
          moved = true;
        }
      }
    }
    taken.push(at);
    this.slots.set(key, taken);
    if (this.slots.size > 10_000) this.forgetIdle(now);
    return at;
  }

  /**
   * Teams answered 429 for `key` anyway (another process sent too): no slot is handed out before
   * its Retry-After has passed, so the sends queued behind do not run into the same 429.
   */
  backOff(key: string, seconds: number): void {
    const until = this.clock.now().getTime() + seconds * 1000;
    this.heldUntil.set(key, Math.max(until, this.heldUntil.get(key) ?? 0));
  }

  /** Waits for the next slot of `key` (rejects when `signal` aborts first). */
  async wait(key: string, signal?: AbortSignal): Promise<void> {
    const at = this.reserve(key);
    const delay = at - this.clock.now().getTime();
    if (delay > 0) await this.sleep(delay, signal);
  }

  private forgetIdle(now: number): void {
    for (const [key, taken] of this.slots)
      if ((taken[taken.length - 1] ?? 0) <= now - this.longest) this.slots.delete(key);
    for (const [key, until] of this.heldUntil) if (until <= now) this.heldUntil.delete(key);
  }
}
