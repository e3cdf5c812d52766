// The clock test apps run on: the real time until a test moves or freezes it, so that rows stamped
// by PostgreSQL (now()) and the services' time agree unless a test says otherwise.
import type { Clock } from '../src/platform/clock.ts';

export class TestClock implements Clock {
  private offsetMs = 0;
  private frozenAt: number | undefined;

  now(): Date {
    return new Date(this.frozenAt ?? Date.now() + this.offsetMs);
  }

  /** Stops the clock (at `at`, or now); it stays there until moved. */
  freeze(at?: Date | string): void {
    this.frozenAt = at === undefined ? this.now().getTime() : new Date(at).getTime();
  }

  /** Lets the clock run again, at the real time. */
  unfreeze(): void {
    this.frozenAt = undefined;
    this.offsetMs = 0;
  }

  /** Moves the clock by `ms` (frozen or running). */
  advance(ms: number): void {
    if (this.frozenAt !== undefined) this.frozenAt += ms;
    else this.offsetMs += ms;
  }
}
