// Rendering a notification for Slack: markup escaped, limits kept without cutting an escape or a
// surrogate pair in half.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clip, escapeSlack, MAX_HEADER, slackMessage } from './blocks.ts';

describe('clip', () => {
  it('stays within the limit and never ends in a broken escape or half a surrogate pair', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 300 }),
        fc.integer({ min: 2, max: 200 }),
        (text, max) => {
          const out = clip(escapeSlack(text), max);
          expect(out.length).toBeLessThanOrEqual(max);
          expect(out).not.toMatch(/&[a-z]{0,3}…$/);
          expect(out).not.toMatch(/[\uD800-\uDBFF]…$/);
        },
      ),
    );
  });
});

describe('slackMessage', () => {
  it('escapes what comes from outside and keeps a header of one line within 150 characters', () => {
    const m = slackMessage({
      eventId: 'e',
      type: 'ticket.created',
      occurredAt: 'not a time',
      urgent: false,
      title: `<@U123> said\n${'x'.repeat(300)}`,
      text: '<https://evil.example|click> & <!here>',
      ticket: null,
      data: {},
    });
    const header = (m.blocks[0] as any).text.text as string;
    expect(header.length).toBe(MAX_HEADER);
    expect(header).not.toContain('\n');
    // Markup is read in mrkdwn and the fallback text; the header is plain_text, shown as written.
    expect(JSON.stringify([m.text, m.blocks.slice(1)])).not.toMatch(/<!here>|<https:|<@U123>/);
    expect(m.text).toBe(
      `&lt;@U123&gt; said ${'x'.repeat(300)}\n&lt;https://evil.example|click&gt; &amp; &lt;!here&gt;`,
    );
    expect((m.blocks.at(-1) as any).elements[0].text).toBe('ticket.created · not a time');
  });
});
