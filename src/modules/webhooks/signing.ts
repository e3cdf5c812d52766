// Standard Webhooks signing (https://www.standardwebhooks.com): each request carries `webhook-id`,
// `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the base64-decoded part of the
// `whsec_` secret. During a rotation's overlap the request carries one signature per secret, so a
// receiver that knows either verifies it.
import { createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';

/** Random bytes behind a secret (the spec asks for 24 to 64). */
const SECRET_BYTES = 32;

/** A new `whsec_` secret. */
export const generateSecret = (): string => SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');

/** The HMAC key of a secret: the base64 after `whsec_`. */
export function secretKeyBytes(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('a webhook secret starts with whsec_');
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

export interface SignInput {
  /** webhook-id: the notification's id, the same across retries and replays. */
  id: string;
  /** webhook-timestamp, Unix seconds. */
  timestamp: number;
  /** The exact bytes sent. */
  body: string;
  /** The current secret first, then the previous one while it still signs. */
  secrets: string[];
}

/** The value of `webhook-signature`: one `v1,<base64>` per secret, space-separated. */
export function signatureHeader(input: SignInput): string {
  const content = `${input.id}.${input.timestamp}.${input.body}`;
  return input.secrets
    .map((s) => `v1,${createHmac('sha256', secretKeyBytes(s)).update(content).digest('base64')}`)
    .join(' ');
}

/** The three headers of a signed request. */
export const signedHeaders = (input: SignInput): Record<string, string> => ({
  'webhook-id': input.id,
  'webhook-timestamp': String(input.timestamp),
  'webhook-signature': signatureHeader(input),
});
