// Exact duplicates without a parse. A message's key is a function of its bytes (its normalised
// Message-ID, else gen-<sha256 of the bytes>), and so is its blob's hash. When a record whose blob
// has the very same hash as this one's already claimed a key in this mailbox by parsing (apply.ts),
// parsing these bytes would give that same key, find it taken and end the record as a duplicate of
// that claim. That ending is written here directly, with what apply.ts would write: status,
// reason, the claim's ticket and the key. The claim stays the authority: a committed key row is only
// read here, never made, and whatever is not settled this way (the claimer still in flight, other
// bytes under the same Message-ID, a claim made from headers alone for over-size mail) takes the
// normal way through the parser and the claim in the apply transaction.
//
// Which key to look up is guessed from the headers (the first Message-ID header) and from the hash
// (the generated key); a wrong guess finds no claim of the same bytes and costs nothing.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { Outcome } from './apply.ts';
import { normalizeMessageId, type RawHeaders, rawHeaders } from './mime.ts';

export interface DuplicateCandidate {
  inboundId: string;
  mailboxId: string;
  /** SHA-256 of the raw bytes (the record's blob). */
  sha256: Buffer;
  /** The header block of the raw bytes. */
  headers: Buffer;
}

/** The raw header lines of a header block, unfolded, by lower-case name. */
export function headerBlockFields(headers: Buffer): RawHeaders {
  return rawHeaders(
    headers
      .toString('latin1')
      .split(/\r?\n(?![ \t])/)
      .filter((l) => l.includes(':'))
      .map((line) => ({ key: line.slice(0, line.indexOf(':')).trim(), line })),
  );
}

/**
 * Ends the candidates whose bytes another record already claimed a key for, in this mailbox, as
 * duplicates of that claim (in the caller's transaction); returns their outcomes by inbound id.
 */
export async function finishKnownDuplicates(
  tx: TenantTx,
  candidates: DuplicateCandidate[],
): Promise<Map<string, Outcome>> {
  const guesses: { inboundId: string; mailboxId: string; key: string; sha256: Buffer }[] = [];
  for (const c of candidates) {
    const messageId = normalizeMessageId(headerBlockFields(c.headers).get('message-id')?.[0]);
    if (messageId) guesses.push({ ...c, key: messageId });
    guesses.push({ ...c, key: `gen-${c.sha256.toString('hex')}@relaydesk.invalid` });
  }
  if (guesses.length === 0) return new Map();
  const { rows } = await tx.query<{
    id: string;
    key: string;
    inbound_id: string;
    outcome: string;
    ticket_id: string | null;
    number: number | null;
  }>(
    `SELECT DISTINCT ON (x.id) x.id, k.key, k.inbound_id, k.outcome, k.ticket_id, t.number
       FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::bytea[]) AS x(id, mailbox_id, key, sha256)
       JOIN message_keys k ON k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key
       JOIN inbound_messages o ON o.tenant_id = $1 AND o.id = k.inbound_id AND o.blob_sha256 = x.sha256
       LEFT JOIN tickets t ON t.tenant_id = $1 AND t.id = k.ticket_id
      WHERE k.inbound_id <> x.id AND NOT (k.outcome = 'skipped' AND k.reason IS NOT DISTINCT FROM 'too_large')
      ORDER BY x.id`,
    [
      tx.tenantId,
      guesses.map((g) => g.inboundId),
      guesses.map((g) => g.mailboxId),
      guesses.map((g) => g.key),
      guesses.map((g) => g.sha256),
    ],
  );
  if (rows.length === 0) return new Map();
  const finals = rows.map((r) => ({ ...r, reason: `duplicate of ${r.inbound_id} (${r.outcome})` }));
  await tx.query(
    `UPDATE inbound_messages i SET status = 'duplicate', reason = x.reason, ticket_id = x.ticket_id,
            ticket_message_id = NULL, message_key = x.key, updated_at = now()
       FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::text[]) AS x(id, reason, ticket_id, key)
      WHERE i.tenant_id = $1 AND i.id = x.id`,
    [
      tx.tenantId,
      finals.map((f) => f.id),
      finals.map((f) => f.reason),
      finals.map((f) => f.ticket_id),
      finals.map((f) => f.key),
    ],
  );
  return new Map(
    finals.map((f) => [
      f.id,
      {
        status: 'duplicate',
        reason: f.reason,
        ticketId: f.ticket_id,
        ticketNumber: f.number === null ? null : `T-${f.number}`,
      },
    ]),
  );
}
