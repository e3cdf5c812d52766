import { randomBytes, randomFillSync } from 'node:crypto';

const randomPool = Buffer.alloc(10 * 256);
let randomOffset = randomPool.length;

let lastMs = -1;
const last = Buffer.alloc(16);

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree inserts at the right edge of the index instead of scattering them. Ids made in the same
 * millisecond by this process keep their order too (RFC 9562 §6.2, method 2: the previous id's
 * random part plus one), so rows made together in a loop sort as they were made.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  const b = Buffer.alloc(16);
  if (nowMs === lastMs && incrementRandom(last)) {
    last.copy(b);
  } else {
    if (randomOffset + 10 > randomPool.length) {
      randomFillSync(randomPool);
      randomOffset = 0;
    }
    b.writeUIntBE(nowMs, 0, 6);
    randomPool.copy(b, 6, randomOffset, randomOffset + 10);
    randomOffset += 10;
    b[6] = (b[6]! & 0x0f) | 0x70;
    b[8] = (b[8]! & 0x3f) | 0x80;
    // Room for increments: the counter part starts below half its range.
    b[9] = b[9]! & 0x7f;
    lastMs = nowMs;
    b.copy(last);
  }
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Adds one to bytes 9–15 of `id` (the counter part); false when they would overflow. */
function incrementRandom(id: Buffer): boolean {
  for (let i = 15; i >= 9; i--) {
    if (id[i] !== 0xff) {
      id[i] = id[i]! + 1;
      return true;
    }
    id[i] = 0;
  }
  return false;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID_RE.test(value);

export const randomToken = (bytes: number): string => randomBytes(bytes).toString('base64url');
