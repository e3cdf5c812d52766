import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, scrub, scrubString } from './logging.ts';

describe('log scrubber', () => {
  it('removes API tokens, bearer credentials and connection-string passwords from strings', () => {
    const token = `rd_${'a'.repeat(43)}`;
    const out = scrubString(`token ${token} header Bearer abc.def.ghi url postgres://user:hunter2@db:5432/x`);
    expect(out).not.toContain(token);
    expect(out).not.toContain('abc.def.ghi');
    expect(out).not.toContain('hunter2');
    expect(out).toContain('postgres://user:[redacted]@db');
  });

  it('redacts secret-named fields at any depth but keeps previews and flags', () => {
    const out = scrub({
      headers: { authorization: 'Bearer x' },
      nested: { password: 'p', clientSecret: 's', refresh_token: 't' },
      tokenPreview: 'abcd',
      hasCredentials: true,
    }) as any;
    expect(out.headers.authorization).toBe('[redacted]');
    expect(out.nested).toEqual({
      password: '[redacted]',
      clientSecret: '[redacted]',
      refresh_token: '[redacted]',
    });
    expect(out.tokenPreview).toBe('abcd');
    expect(out.hasCredentials).toBe(true);
  });

  it('applies to real log lines, messages and errors included', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger('info', sink);
    const token = `rd_${'Z'.repeat(43)}`;
    logger.info({ password: 'swordfish', err: new Error(`bad token ${token}`) }, `got ${token}`);
    const text = lines.join('');
    expect(text).not.toContain('swordfish');
    expect(text).not.toContain(token);
    expect(text).toContain('[redacted]');
  });

  it('writes readable lines with LOG_FORMAT=pretty, still scrubbed', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger('info', sink, 'pretty');
    const token = `rd_${'Y'.repeat(43)}`;
    logger.info({ port: 8080, password: 'swordfish' }, `relaydesk is ready ${token}`);
    const text = lines.join('');
    expect(() => JSON.parse(text)).toThrow();
    expect(text).toMatch(/INFO.*relaydesk is ready/);
    expect(text).toContain('"port":8080');
    expect(text).not.toContain('swordfish');
    expect(text).not.toContain(token);
  });
});
