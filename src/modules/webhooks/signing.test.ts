// The signer against the Standard Webhooks spec, checked by a verifier written here from the spec's
// text alone (https://www.standardwebhooks.com, "Verifying webhook authenticity") with node:crypto,
// sharing no code with signing.ts, and against the published example of the reference libraries.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateSecret, signatureHeader, signedHeaders } from './signing.ts';

/**
 * The spec: the signed content is `${msg_id}.${timestamp}.${payload}`; the key is the secret's
 * base64 part after the `whsec_` prefix, decoded; the signature is base64 HMAC-SHA256, sent as
 * `v1,<signature>`; several are delimited by spaces; a request is authentic when any matches.
 */
function specVerify(secret: string, headers: Record<string, string>, payload: string): boolean {
  const key = Buffer.from(secret.split('_')[1]!, 'base64');
  const signedContent = `${headers['webhook-id']}.${headers['webhook-timestamp']}.${payload}`;
  const expected = createHmac('sha256', key).update(signedContent).digest();
  return headers['webhook-signature']!.split(' ').some((versioned) => {
    const [version, signature] = versioned.split(',');
    if (version !== 'v1' || !signature) return false;
    const got = Buffer.from(signature, 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}

describe('Standard Webhooks signatures', () => {
  it('match the example of the reference libraries', () => {
    // From the Standard Webhooks / Svix libraries' test vector.
    expect(
      signatureHeader({
        id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
        timestamp: 1614265330,
        body: '{"test": 2432232314}',
        secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
      }),
    ).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('verify with an independent implementation of the spec, and fail on any change', () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    const body = JSON.stringify({
      type: 'ticket.created',
      timestamp: '2026-01-01T00:00:00Z',
      data: { x: 'é' },
    });
    const headers = signedHeaders({ id: 'n-1', timestamp: 1_767_225_600, body, secrets: [secret] });
    expect(headers['webhook-id']).toBe('n-1');
    expect(headers['webhook-timestamp']).toBe('1767225600');
    expect(specVerify(secret, headers, body)).toBe(true);
    expect(specVerify(secret, headers, body.replace('é', 'e'))).toBe(false);
    expect(specVerify(secret, { ...headers, 'webhook-timestamp': '1767225601' }, body)).toBe(false);
    expect(specVerify(secret, { ...headers, 'webhook-id': 'n-2' }, body)).toBe(false);
    expect(specVerify(generateSecret(), headers, body)).toBe(false);
  });

  it('carry one signature per secret during a rotation, each valid on its own', () => {
    const [current, previous] = [generateSecret(), generateSecret()];
    const body = '{"type":"sla.breached"}';
    const headers = signedHeaders({
      id: 'n-9',
      timestamp: 1_767_225_600,
      body,
      secrets: [current, previous],
    });
    const parts = headers['webhook-signature']!.split(' ');
    expect(parts).toHaveLength(2);
    expect(parts.every((p) => /^v1,[A-Za-z0-9+/]{43}=$/.test(p))).toBe(true);
    expect(specVerify(current, headers, body)).toBe(true);
    expect(specVerify(previous, headers, body)).toBe(true);
    // Each signature belongs to its own secret.
    expect(specVerify(current, { ...headers, 'webhook-signature': parts[1]! }, body)).toBe(false);
    expect(specVerify(previous, { ...headers, 'webhook-signature': parts[0]! }, body)).toBe(false);
  });
});
