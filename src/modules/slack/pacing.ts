// Slack takes about one message per second per channel (short bursts pass, sustained ones get 429).
// Sends are spaced in this process rather than left to provoke 429s: each send to a channel takes
// the next free slot, `intervalMs` after the one before, and waits for it. A slot further away than
// `maxWaitMs` (a backlog on one channel) is not taken: the send is refused as throttled instead, so
// a job does not sit on its lease, and comes back later. A 429 that happens anyway (another process
// posting, a workspace-wide limit) pushes the channel's next slot past its Retry-After.
//
// The spacing runs on the monotonic timer (performance.now), not the injected Clock: it is about
// the real rate at which requests reach Slack, and a test that freezes its Clock must not stall it.
import { DeliveryError } from '../outbound/transports.ts';

export interface PacerOptions {
  /** Between two sends to one channel (Slack: one a second). */
  intervalMs?: number;
  /** The longest a send waits for its slot before it is refused as throttled. */
  maxWaitMs?: number;
}

export class ChannelPacer {
  private readonly intervalMs: number;
  private readonly maxWaitMs: number;
  /** Channel key → when (performance.now) its next send may start. */
  private readonly nextAt = new Map<string, number>();

  constructor(options: PacerOptions = {}) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxWaitMs = options.maxWaitMs ?? 20_000;
  }

  /** Waits for the channel's next slot; throws a throttled DeliveryError when it is too far away. */
  async wait(key: string, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    if (this.nextAt.size > 10_000) this.forgetPast(now);
    const at = Math.max(now, this.nextAt.get(key) ?? now);
    const waitMs = at - now;
    if (waitMs > this.maxWaitMs)
      throw new DeliveryError(
        'throttled',
        `Slack: too many messages queued for ${key} in this process; not sent, to keep under Slack's rate`,
        { retryAfterSeconds: Math.ceil(waitMs / 1000) },
      );
    this.nextAt.set(key, at + this.intervalMs);
    if (waitMs > 0) await sleep(waitMs, signal);
  }

  /** Slack answered 429 for the channel: nothing goes to it before Retry-After has passed. */
  backOff(key: string, seconds: number): void {
    const until = performance.now() + seconds * 1000;
    this.nextAt.set(key, Math.max(until, this.nextAt.get(key) ?? 0));
  }

  private forgetPast(now: number): void {
    for (const [key, at] of this.nextAt) if (at < now) this.nextAt.delete(key);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      // Nothing was sent: another attempt cannot post twice.
      reject(new DeliveryError('transient', 'Slack: stopped while waiting to send'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
}
