// Blobs: raw messages and attachment contents, stored once per tenant by their SHA-256. Other
// modules store and read contents only through these operations.
import { sha256 } from '../../platform/crypto.ts';
import type { TenantTx } from '../../platform/db/tx.ts';

/** A blob's key: the SHA-256 of its contents. */
export const blobHash = (content: Buffer): Buffer => sha256(content);

export interface BlobContent {
  content: Buffer;
  /** blobHash(content), when the caller has it already (a parser that hashed while reading). */
  hash?: Buffer | undefined;
}

/**
 * Stores contents (each once; already stored ones are left as they are) and returns their hashes in
 * the same order. Contents travel as binary parameters, each named once in the statement (an array
 * parameter would travel as escaped text, twice as large). The statement is sent before this
 * returns its promise, so a caller may send further statements of its transaction behind it.
 */
export function storeBlobs(tx: TenantTx, blobs: BlobContent[]): { hashes: Buffer[]; stored: Promise<void> } {
  const hashes = blobs.map((b) => b.hash ?? blobHash(b.content));
  const unique = new Map<string, { hash: Buffer; content: Buffer }>();
  blobs.forEach((b, i) => unique.set(hashes[i]!.toString('hex'), { hash: hashes[i]!, content: b.content }));
  if (unique.size === 0) return { hashes, stored: Promise.resolve() };
  // Sorted by hash, so two transactions storing the same contents take their locks in one order.
  const sorted = [...unique.keys()].sort().map((h) => unique.get(h)!);
  const values: unknown[] = [tx.tenantId];
  const rows = sorted.map(({ hash, content }) => {
    values.push(hash, content.length, content);
    return `($1, $${values.length - 2}::bytea, $${values.length - 1}::bigint, $${values.length}::bytea)`;
  });
  const stored = tx
    .query(
      `INSERT INTO blobs (tenant_id, sha256, size, content) VALUES ${rows.join(', ')}
       ON CONFLICT (tenant_id, sha256) DO NOTHING`,
      values,
    )
    .then(() => undefined);
  return { hashes, stored };
}

/** The contents of these blobs, by hex hash (missing ones are absent). */
export async function readBlobs(tx: TenantTx, hashes: Buffer[]): Promise<Map<string, Buffer>> {
  if (hashes.length === 0) return new Map();
  // As base64 (a third larger than the bytes) rather than bytea's text form (hex, twice as large):
  // less for PostgreSQL to write out and for this process to read in and decode.
  const { rows } = await tx.query<{ sha256: Buffer; content: string }>(
    `SELECT sha256, encode(content, 'base64') AS content FROM blobs
      WHERE tenant_id = $1 AND sha256 IN (SELECT decode(h, 'hex') FROM unnest($2::text[]) AS h)`,
    [tx.tenantId, [...new Set(hashes.map((h) => h.toString('hex')))]],
  );
  return new Map(rows.map((r) => [r.sha256.toString('hex'), Buffer.from(r.content, 'base64')]));
}
