// Relaydesk's own Message-IDs on outbound mail: rd.<ticket id>.<signature>@<domain>. A reply that
// names one threads straight to that ticket, but only if the signature (HMAC over tenant and
// ticket, keyed from RELAYDESK_SECRET_KEY) verifies, so a forged id cannot reach another ticket.
import { createHmac, hkdfSync } from 'node:crypto';
import { safeEqual } from '../../platform/crypto.ts';

const ID_RE =
  /^rd\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([0-9a-f]{24})(?:\.[^@\s]*)?@/i;

export function messageIdKey(secretKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secretKey, Buffer.alloc(0), 'relaydesk message-id v1', 32));
}

const signature = (key: Buffer, tenantId: string, ticketId: string) =>
  createHmac('sha256', key).update(`${tenantId}|${ticketId.toLowerCase()}`).digest('hex').slice(0, 24);

/** A signed Message-ID (without angle brackets) for mail about `ticketId`. */
export function signedMessageId(
  key: Buffer,
  tenantId: string,
  ticketId: string,
  domain: string,
  unique: string,
): string {
  return `rd.${ticketId.toLowerCase()}.${signature(key, tenantId, ticketId)}.${unique}@${domain.toLowerCase()}`;
}

/** The ticket a Message-ID was signed for in this tenant, or undefined (not ours, or forged). */
export function verifyMessageId(key: Buffer, tenantId: string, messageId: string): string | undefined {
  const m = ID_RE.exec(messageId);
  if (!m) return undefined;
  const [, ticketId, sig] = m;
  return safeEqual(sig!.toLowerCase(), signature(key, tenantId, ticketId!))
    ? ticketId!.toLowerCase()
    : undefined;
}

/** True when the id has our shape (signed or not): mail carrying it is our own. */
export const looksLikeOurMessageId = (messageId: string): boolean => ID_RE.test(messageId);
