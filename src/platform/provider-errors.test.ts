// How provider answers are classified: the class decides retry, back-off or a person's attention.
import { describe, expect, it } from 'vitest';
import {
  AuthExpired,
  classifyResponse,
  NotFound,
  Permanent,
  RateLimited,
  Transient,
} from './provider-errors.ts';

const NOW = new Date('2026-01-01T00:00:00Z');

describe('classifyResponse', () => {
  it('takes refused credentials for what they are, whatever the status the token endpoint chose', () => {
    for (const [status, code] of [
      [401, undefined],
      [403, undefined],
      [400, 'invalid_grant'],
      [400, 'invalid_client'],
      [401, 'invalid_client'],
    ] as const)
      expect(
        classifyResponse('gmail', status, null, code, 'refused', NOW),
        `${status} ${code}`,
      ).toBeInstanceOf(AuthExpired);
  });

  it('classifies the rest by status', () => {
    expect(classifyResponse('graph', 429, '7', undefined, 'slow down', NOW)).toBeInstanceOf(RateLimited);
    expect(classifyResponse('graph', 404, null, 'ResourceNotFound', 'gone', NOW)).toBeInstanceOf(NotFound);
    expect(classifyResponse('graph', 503, null, undefined, 'down', NOW)).toBeInstanceOf(Transient);
    expect(classifyResponse('graph', 400, null, 'invalid_request', 'bad', NOW)).toBeInstanceOf(Permanent);
  });

  it('counts a Retry-After given as an HTTP date from the injected now, not the wall clock', () => {
    const in90s = new Date(NOW.getTime() + 90_000).toUTCString();
    const err = classifyResponse('graph', 429, in90s, undefined, 'slow down', NOW);
    expect(err).toBeInstanceOf(RateLimited);
    expect((err as RateLimited).retryAfterSeconds).toBe(90);
  });
});
