// Exact duplicates without a parse. A message's key is a function of its bytes (its normalised
// Message-ID as storable.ts keys it, else gen-<sha256 of the bytes>), and so is its blob's hash. When a record whose blob
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
import { decideOnTakenKey, holdersOfSameBytes } from './keys.ts';
import {
  generatedKeyOfHash as generatedKey,
  normalizeMessageId,
  type RawHeaders,
  rawHeaders,
} from './mime.ts';
import type { Outcome } from './outcomes.ts';
import { messageKey } from './storable.ts';
import { finishRecords, type RecordFinal } from './records.ts';

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
    if (messageId) guesses.push({ ...c, key: messageKey(messageId) });
    guesses.push({ ...c, key: generatedKey(c.sha256) });
  }
  const held = await holdersOfSameBytes(tx, guesses);
  const outcomes = new Map<string, Outcome>();
  const finals: RecordFinal[] = [];
  for (const [inboundId, { key, holder }] of held) {
    const decision = decideOnTakenKey(holder, { inboundId, key });
    if (decision.final) finals.push(decision.final);
    outcomes.set(inboundId, decision.outcome);
  }
  await finishRecords(tx, finals);
  return outcomes;
}
