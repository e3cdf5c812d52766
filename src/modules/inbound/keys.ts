// Message keys: the exactly-once claim (DESIGN §3.2). A message's key (its normalised Message-ID,
// or gen-<sha256>@relaydesk.invalid) is inserted, unique per mailbox, in the transaction that writes
// what the message becomes. Whoever finds the key taken ends as a duplicate of the record that
// holds it: decideOnTakenKey is the one place that decides what that means.
import type { TenantTx } from '../../platform/db/tx.ts';
import { ticketNumber } from '../tickets/model.ts';
import { FINAL_STATUSES, type InboundStatus, type Outcome } from './outcomes.ts';
import type { RecordFinal } from './records.ts';

export const keyOf = (mailboxId: string, key: string): string => `${mailboxId}\n${key}`;

export interface KeyClaim {
  mailboxId: string;
  key: string;
  inboundId: string;
  /** What the claim stands for, when it is already known (a message skipped before parsing). */
  outcome?: { status: string; reason: string | null } | undefined;
}

/** The record that holds a key, and what became of it. */
export interface KeyHolder {
  inboundId: string;
  /** The outcome recorded on the key (created, appended, skipped, ...). */
  outcome: string;
  ticketId: string | null;
  ticketNumber: number | null;
  /** The holding record's own final state, for when the holder is the very record asking. */
  record: {
    status: InboundStatus;
    reason: string | null;
    ticketId: string | null;
    ticketNumber: number | null;
  };
}

export type KeyDecision =
  /**
   * Another run of this same record (a redelivered job beside the CLI) committed first: its outcome
   * stands. `final` is set when the record does not show it (what the key recorded is written).
   */
  | { kind: 'same_record'; outcome: Outcome; final?: RecordFinal }
  /** Another record holds the key: this one ends as its duplicate. */
  | { kind: 'duplicate'; outcome: Outcome; final: RecordFinal };

/** What a record whose key is held by `holder` becomes. */
export function decideOnTakenKey(holder: KeyHolder, record: { inboundId: string; key: string }): KeyDecision {
  const number = (n: number | null) => (n === null ? null : ticketNumber(n));
  if (holder.inboundId === record.inboundId) {
    if (FINAL_STATUSES.includes(holder.record.status))
      return {
        kind: 'same_record',
        outcome: {
          status: holder.record.status,
          reason: holder.record.reason,
          ticketId: holder.record.ticketId,
          ticketNumber: number(holder.record.ticketNumber),
        },
      };
    // The key and the record's end are written in one transaction, so this is a record whose end
    // was overwritten since: the key says how it ended.
    const status = holder.outcome as InboundStatus;
    return {
      kind: 'same_record',
      outcome: { status, reason: null, ticketId: holder.ticketId, ticketNumber: number(holder.ticketNumber) },
      final: {
        inboundId: record.inboundId,
        status,
        reason: null,
        ticketId: holder.ticketId,
        ticketMessageId: null,
        key: record.key,
      },
    };
  }
  const reason = `duplicate of ${holder.inboundId} (${holder.outcome})`;
  return {
    kind: 'duplicate',
    outcome: {
      status: 'duplicate',
      reason,
      ticketId: holder.ticketId,
      ticketNumber: number(holder.ticketNumber),
    },
    final: {
      inboundId: record.inboundId,
      status: 'duplicate',
      reason,
      ticketId: holder.ticketId,
      ticketMessageId: null,
      key: record.key,
    },
  };
}

interface HolderRow {
  mailbox_id: string;
  key: string;
  inbound_id: string;
  outcome: string;
  ticket_id: string | null;
  number: number | null;
  own_status: InboundStatus | null;
  own_reason: string | null;
  own_ticket_id: string | null;
  own_number: number | null;
}

const HOLDER_COLUMNS = `k.mailbox_id, k.key, k.inbound_id, k.outcome, k.ticket_id, t.number,
  i.status AS own_status, i.reason AS own_reason, i.ticket_id AS own_ticket_id, ot.number AS own_number`;
const HOLDER_JOINS = `LEFT JOIN tickets t ON t.tenant_id = k.tenant_id AND t.id = k.ticket_id
  LEFT JOIN inbound_messages i ON i.tenant_id = k.tenant_id AND i.id = k.inbound_id
  LEFT JOIN tickets ot ON ot.tenant_id = k.tenant_id AND ot.id = i.ticket_id`;

const toHolder = (r: HolderRow): KeyHolder => ({
  inboundId: r.inbound_id,
  outcome: r.outcome,
  ticketId: r.ticket_id,
  ticketNumber: r.number === null ? null : Number(r.number),
  record: {
    status: r.own_status ?? 'processing',
    reason: r.own_reason,
    ticketId: r.own_ticket_id,
    ticketNumber: r.own_number === null ? null : Number(r.own_number),
  },
});

/**
 * Claims keys (each once: pass distinct keys) in the caller's transaction. Returns, by keyOf, the
 * holder of every key that was not claimed (another transaction committed it first). Claims are
 * inserted in key order, so two transactions claiming the same keys cannot deadlock.
 */
export async function claimKeys(tx: TenantTx, claims: KeyClaim[]): Promise<Map<string, KeyHolder>> {
  if (claims.length === 0) return new Map();
  const sorted = [...claims].sort((a, b) => {
    const x = keyOf(a.mailboxId, a.key);
    const y = keyOf(b.mailboxId, b.key);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const { rows } = await tx.query<{ mailbox_id: string; key: string }>(
    `INSERT INTO message_keys (tenant_id, mailbox_id, key, inbound_id, outcome, reason)
     SELECT $1, x.mailbox_id, x.key, x.inbound_id, x.outcome, x.reason
       FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[])
            WITH ORDINALITY AS x(mailbox_id, key, inbound_id, outcome, reason, ord)
      ORDER BY x.ord
     ON CONFLICT (tenant_id, mailbox_id, key) DO NOTHING
     RETURNING mailbox_id, key`,
    [
      tx.tenantId,
      sorted.map((c) => c.mailboxId),
      sorted.map((c) => c.key),
      sorted.map((c) => c.inboundId),
      sorted.map((c) => c.outcome?.status ?? 'processing'),
      sorted.map((c) => c.outcome?.reason ?? null),
    ],
  );
  const won = new Set(rows.map((r) => keyOf(r.mailbox_id, r.key)));
  const lost = sorted.filter((c) => !won.has(keyOf(c.mailboxId, c.key)));
  if (lost.length === 0) return new Map();
  const { rows: holders } = await tx.query<HolderRow>(
    `SELECT ${HOLDER_COLUMNS}
       FROM unnest($2::uuid[], $3::text[]) AS x(mailbox_id, key)
       JOIN message_keys k ON k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key
       ${HOLDER_JOINS}`,
    [tx.tenantId, lost.map((c) => c.mailboxId), lost.map((c) => c.key)],
  );
  const found = new Map(holders.map((r) => [keyOf(r.mailbox_id, r.key), toHolder(r)]));
  for (const c of lost)
    if (!found.has(keyOf(c.mailboxId, c.key)))
      throw new Error(`message key ${c.key} is neither claimed nor held`);
  return found;
}

/**
 * For records not parsed yet: the holder of the key a record's bytes would give, when that holder
 * came to it through the very same bytes (same blob hash, same mailbox) by parsing. Several keys
 * may be guessed per record (the Message-ID header, the generated key); a wrong guess finds nothing.
 * Returns holders by inbound id. Reads only: the claim stays with the transaction that parses.
 */
export async function holdersOfSameBytes(
  tx: TenantTx,
  guesses: { inboundId: string; mailboxId: string; key: string; sha256: Buffer }[],
): Promise<Map<string, { key: string; holder: KeyHolder }>> {
  if (guesses.length === 0) return new Map();
  const { rows } = await tx.query<HolderRow & { id: string }>(
    `SELECT DISTINCT ON (x.id) x.id, ${HOLDER_COLUMNS}
       FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::bytea[]) AS x(id, mailbox_id, key, sha256)
       JOIN message_keys k ON k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key
       JOIN inbound_messages o ON o.tenant_id = $1 AND o.id = k.inbound_id AND o.blob_sha256 = x.sha256
       ${HOLDER_JOINS}
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
  return new Map(rows.map((r) => [r.id, { key: r.key, holder: toHolder(r) }]));
}

export interface KeyOutcome {
  mailboxId: string;
  key: string;
  outcome: string;
  reason: string | null;
  ticketId: string | null;
}

/** Records what the claimed keys became (the claim was inserted as processing). */
export async function recordKeyOutcomes(tx: TenantTx, outcomes: KeyOutcome[]): Promise<void> {
  if (outcomes.length === 0) return;
  await tx.query(
    `UPDATE message_keys k SET outcome = x.outcome, reason = x.reason, ticket_id = x.ticket_id
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[]) AS x(mailbox_id, key, outcome, reason, ticket_id)
      WHERE k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key`,
    [
      tx.tenantId,
      outcomes.map((o) => o.mailboxId),
      outcomes.map((o) => o.key),
      outcomes.map((o) => o.outcome),
      outcomes.map((o) => o.reason),
      outcomes.map((o) => o.ticketId),
    ],
  );
}
