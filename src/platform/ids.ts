import { randomBytes, randomFillSync } from 'node:crypto';

const randomPool = Buffer.alloc(10 * 256);
let randomOffset = randomPool.length;

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree inserts at the right edge of the index instead of scattering them.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  if (randomOffset + 10 > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const b = Buffer.alloc(16);
  b.writeUIntBE(nowMs, 0, 6);
  randomPool.copy(b, 6, randomOffset, randomOffset + 10);
  randomOffset += 10;
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID_RE.test(value);

export const randomToken = (bytes: number): string => randomBytes(bytes).toString('base64url');
