// The per-channel pacer on its own: slots in order, a backlog refused as throttled instead of
// waited for, a 429 holding the channel back, a stop while waiting. No timed assertions: each test
// looks at what was refused and in which order sends got through.
import { describe, expect, it } from 'vitest';
import { DeliveryError } from '../outbound/transports.ts';
import { ChannelPacer } from './pacing.ts';

describe('ChannelPacer', () => {
  it('lets sends to one channel through in the order they asked, other channels beside them', async () => {
    const pacer = new ChannelPacer({ intervalMs: 20 });
    const order: string[] = [];
    await Promise.all([
      pacer.wait('a').then(() => order.push('a1')),
      pacer.wait('a').then(() => order.push('a2')),
      pacer.wait('a').then(() => order.push('a3')),
      pacer.wait('b').then(() => order.push('b1')),
    ]);
    expect(order.filter((o) => o.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
    // b did not queue behind a's three.
    expect(order.indexOf('b1')).toBeLessThan(order.indexOf('a2'));
  });

  it('refuses a send whose slot is further away than it may wait, as throttled with the wait', async () => {
    const pacer = new ChannelPacer({ intervalMs: 10_000, maxWaitMs: 5_000 });
    await pacer.wait('c');
    const second = await pacer.wait('c').catch((e: unknown) => e);
    expect(second).toBeInstanceOf(DeliveryError);
    expect((second as DeliveryError).code).toBe('throttled');
    expect((second as DeliveryError).retryAfterSeconds).toBeGreaterThan(5);
    // The refused send took no slot: the channel's next send is not pushed further back.
    const third = await pacer.wait('c').catch((e: unknown) => e);
    expect((third as DeliveryError).retryAfterSeconds).toBeLessThanOrEqual(10);
  });

  it("holds a channel back for Slack's Retry-After after a 429", async () => {
    const pacer = new ChannelPacer({ intervalMs: 10, maxWaitMs: 5_000 });
    pacer.backOff('e', 60);
    const held = await pacer.wait('e').catch((e: unknown) => e);
    expect((held as DeliveryError).code).toBe('throttled');
    expect((held as DeliveryError).retryAfterSeconds).toBeGreaterThanOrEqual(59);
    await pacer.wait('f');
  });

  it('gives up waiting when the send is stopped, without sending', async () => {
    const pacer = new ChannelPacer({ intervalMs: 10_000, maxWaitMs: 20_000 });
    await pacer.wait('g');
    const stop = new AbortController();
    const waiting = pacer.wait('g', stop.signal).catch((e: unknown) => e);
    stop.abort();
    const err = (await waiting) as DeliveryError;
    expect([err.code, err.ambiguous]).toEqual(['transient', false]);
  });
});
