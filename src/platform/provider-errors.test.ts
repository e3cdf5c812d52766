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

describe('classifyResponse', () => {
  it('takes refused credentials for what they are, whatever the status the token endpoint chose', () => {
    for (const [status, code] of [
      [401, undefined],
      [403, undefined],
      [400, 'invalid_grant'],
      [400, 'invalid_client'],
      [401, 'invalid_client'],
    ] as const)
      expect(classifyResponse('gmail', status, null, code, 'refused'), `${status} ${code}`).toBeInstanceOf(
        AuthExpired,
      );
  });

  it('classifies the rest by status', () => {
    expect(classifyResponse('graph', 429, '7', undefined, 'slow down')).toBeInstanceOf(RateLimited);
    expect(classifyResponse('graph', 404, null, 'ResourceNotFound', 'gone')).toBeInstanceOf(NotFound);
    expect(classifyResponse('graph', 503, null, undefined, 'down')).toBeInstanceOf(Transient);
    expect(classifyResponse('graph', 400, null, 'invalid_request', 'bad')).toBeInstanceOf(Permanent);
  });
});
