// Raw messages handed from ingress to the workers of the same process, so that a worker does not
// read back from PostgreSQL the bytes this process stored a moment ago (for a 2 MB message that
// read costs more CPU than the rest of its processing). Only an optimisation: the blob in the
// database stays the source of truth and the job stays a pointer; a miss (another process accepted
// the message, the entry expired or did not fit) reads the blob as before. Entries are keyed by
// tenant and SHA-256, so an entry can only ever hold the very bytes the pointer names.
//
// Bounded in bytes and in age. When full, new entries are not kept (the oldest ones are the ones
// the queue hands out next); a worker takes an entry out when it uses it.
const MAX_BYTES = 512 * 1024 * 1024;
const MAX_AGE_MS = 120_000;

const entries = new Map<string, { content: Buffer; at: number }>();
let bytes = 0;

const keyOf = (tenantId: string, sha256: Buffer) => `${tenantId}:${sha256.toString('hex')}`;

function dropExpired(now: number): void {
  for (const [key, entry] of entries) {
    if (now - entry.at < MAX_AGE_MS) break; // insertion order is age order
    entries.delete(key);
    bytes -= entry.content.length;
  }
}

/** Offers the bytes of a message that was just stored (call after its transaction committed). */
export function offerRawMessage(tenantId: string, sha256: Buffer, content: Buffer): void {
  const now = performance.now();
  dropExpired(now);
  const key = keyOf(tenantId, sha256);
  if (entries.has(key) || bytes + content.length > MAX_BYTES) return;
  entries.set(key, { content, at: now });
  bytes += content.length;
}

/** Takes the bytes of a stored message if this process still holds them. */
export function takeRawMessage(tenantId: string, sha256: Buffer): Buffer | undefined {
  const key = keyOf(tenantId, sha256);
  const entry = entries.get(key);
  if (!entry) return undefined;
  entries.delete(key);
  bytes -= entry.content.length;
  return entry.content;
}
