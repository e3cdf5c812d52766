import { describe, expect, it } from 'vitest';
import { corpusMessage } from '../../../bench/inbound-load.ts';
import { parseMessage } from './mime.ts';
import { parseInThread } from './parse-pool.ts';

describe('parsing in worker threads', () => {
  it('gives what parsing in place gives, attachments and their hashes included', async () => {
    for (let i = 0; i < 40; i++) {
      const { raw } = corpusMessage(i, 'pool', false);
      const inThread = await parseInThread(raw);
      expect(inThread).toEqual(await parseMessage(raw));
      for (const a of inThread.attachments) {
        expect(Buffer.isBuffer(a.content)).toBe(true);
        expect(Buffer.isBuffer(a.sha256)).toBe(true);
      }
    }
  });

  it('parses many messages side by side', async () => {
    const raws = Array.from({ length: 30 }, (_, i) => corpusMessage(i, 'many', true).raw);
    const parsed = await Promise.all(raws.map((raw) => parseInThread(raw)));
    expect(parsed.map((p) => p.key)).toEqual(raws.map((_, i) => `many-${i}@bench.example`));
  });
});
