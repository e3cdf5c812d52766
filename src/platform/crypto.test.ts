import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { safeEqual, seal, unseal } from './crypto.ts';
import { isDatabaseUnavailable } from './errors.ts';

describe('seal / unseal', () => {
  it('round-trips and detects tampering or a wrong key', () => {
    const key = randomBytes(32);
    const sealed = seal(key, 'refresh-token-value');
    expect(sealed.toString('utf8')).not.toContain('refresh-token-value');
    expect(unseal(key, sealed).toString()).toBe('refresh-token-value');
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => unseal(key, tampered)).toThrow();
    expect(() => unseal(randomBytes(32), sealed)).toThrow();
  });

  it('compares in constant time and handles length differences', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
  });
});

describe('isDatabaseUnavailable', () => {
  it('recognises connection failures but not statement errors', () => {
    expect(
      isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    ).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('terminating connection'), { code: '57P01' }))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(
      isDatabaseUnavailable(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })])),
    ).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
  });

  it('takes a missing Unix socket for a stopped server, and nothing else that is missing', () => {
    const socketGone = Object.assign(new Error('connect ENOENT /data/pg/.s.PGSQL.5432'), {
      code: 'ENOENT',
      syscall: 'connect',
      address: '/data/pg/.s.PGSQL.5432',
    });
    expect(isDatabaseUnavailable(socketGone)).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('x'), { code: 'ENOENT', syscall: 'open' }))).toBe(
      false,
    );
  });
});
