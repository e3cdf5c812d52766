// Inbound records (one row per message received, whatever the channel): the writes of their
// lifecycle after they were accepted (ingest.ts writes them at acceptance).
import { uuidv7 } from '../../platform/ids.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { FINAL_STATUSES, type InboundStatus } from './outcomes.ts';
import { storableReason } from './storable.ts';

/** Where a record ends. */
export interface RecordFinal {
  inboundId: string;
  status: InboundStatus;
  reason: string | null;
  ticketId: string | null;
  /** The ticket message it became. */
  ticketMessageId: string | null;
  /** Its message key, when known (kept as it was when null). */
  key: string | null;
}

/**
 * Writes where records ended (in inbound id order, the order their rows are locked in). A record
 * already final is left as it is: another run of it got there first (or this run's own commit
 * did, and only its answer was lost), and what it recorded stands.
 */
export async function finishRecords(tx: TenantTx, finals: RecordFinal[]): Promise<void> {
  if (finals.length === 0) return;
  const f = [...finals].sort((a, b) => (a.inboundId < b.inboundId ? -1 : a.inboundId > b.inboundId ? 1 : 0));
  await tx.query(
    `UPDATE inbound_messages i SET status = x.status, reason = x.reason, ticket_id = x.ticket_id,
            ticket_message_id = x.message_id, message_key = coalesce(x.key, i.message_key), updated_at = now()
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::text[]) AS x(id, status, reason, ticket_id, message_id, key)
      WHERE i.tenant_id = $1 AND i.id = x.id AND NOT (i.status = ANY($8::text[]))`,
    [
      tx.tenantId,
      f.map((o) => o.inboundId),
      f.map((o) => o.status),
      f.map((o) => (o.reason === null ? null : storableReason(o.reason))),
      f.map((o) => o.ticketId),
      f.map((o) => o.ticketMessageId),
      f.map((o) => o.key),
      FINAL_STATUSES,
    ],
  );
}

/** Marks records processing (one more attempt each). */
export async function markProcessing(tx: TenantTx, inboundIds: string[]): Promise<void> {
  if (inboundIds.length === 0) return;
  await tx.query(
    `UPDATE inbound_messages SET status = 'processing', attempts = attempts + 1, updated_at = now()
      WHERE tenant_id = $1 AND id = ANY($2::uuid[])`,
    [tx.tenantId, inboundIds],
  );
}

/**
 * Puts records back in the queue after a failure their jobs will retry. Only a record that is still
 * under way (queued, processing) is touched: one that is final by now (the failure was only the lost
 * answer of a commit that happened) stays as it is, and so does one already failed for good (an
 * attempt that outlived its job must not make a dead job's record look queued again).
 */
export async function requeueRecords(tx: TenantTx, inboundIds: string[], reason: string): Promise<void> {
  await tx.query(
    `UPDATE inbound_messages SET status = 'queued', reason = $3, updated_at = now()
      WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND status IN ('queued', 'processing')`,
    [tx.tenantId, inboundIds, storableReason(reason)],
  );
}

/** A record whose job failed for good: its last attempt failed, or it was dead-lettered. */
export interface FailedForGood {
  inboundId: string;
  reason: string;
  /** Attempts the job made (at least what the record counted itself). */
  attempts: number;
  /**
   * When the job was dead-lettered, for a record learnt of afterwards: a record changed since (a
   * reprocess queued it again) is left as it is. Undefined when the failing attempt reports itself.
   */
  deadLetteredAt?: string | undefined;
}

/**
 * Ends the records of jobs that failed for good as `failed`, with the reason and the attempts made:
 * the record follows its job to the end. A record the failing attempt already ended as failed keeps
 * its reason and learns the attempts (an attempt that failed before marking its record did not
 * count itself). Records that ended otherwise meanwhile, or that a later job is working on, are
 * left as they are.
 */
export async function failRecords(tx: TenantTx, failures: FailedForGood[]): Promise<void> {
  if (failures.length === 0) return;
  const f = [...failures].sort((a, b) =>
    a.inboundId < b.inboundId ? -1 : a.inboundId > b.inboundId ? 1 : 0,
  );
  await tx.query(
    `UPDATE inbound_messages i SET status = 'failed',
            reason = CASE WHEN i.status = 'failed' THEN i.reason ELSE x.reason END,
            attempts = greatest(i.attempts, x.attempts), updated_at = now()
       FROM unnest($2::uuid[], $3::text[], $4::int[], $5::timestamptz[]) AS x(id, reason, attempts, dead_at)
      WHERE i.tenant_id = $1 AND i.id = x.id
        AND (i.status IN ('queued', 'processing') OR (i.status = 'failed' AND i.attempts < x.attempts))
        AND (x.dead_at IS NULL OR i.updated_at <= x.dead_at)`,
    [
      tx.tenantId,
      f.map((o) => o.inboundId),
      f.map((o) => storableReason(o.reason)),
      f.map((o) => o.attempts),
      f.map((o) => o.deadLetteredAt ?? null),
    ],
  );
}

/** Sets the blob a record's bytes are kept in (fetched from a provider, or only the headers of over-size mail). */
export async function setRecordBlob(tx: TenantTx, inboundId: string, sha256: Buffer): Promise<void> {
  await tx.query('UPDATE inbound_messages SET blob_sha256 = $3 WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    inboundId,
    sha256,
  ]);
}

/** Of these provider message ids, those no record of the mailbox names yet. */
export async function unrecordedMessages(tx: TenantTx, mailboxId: string, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await tx.query<{ id: string }>(
    `SELECT x.id FROM unnest($3::text[]) AS x(id)
      WHERE NOT EXISTS (SELECT 1 FROM inbound_messages i
                         WHERE i.tenant_id = $1 AND i.mailbox_id = $2 AND i.pointer ? 'messageId'
                           AND i.pointer->>'messageId' = x.id)`,
    [tx.tenantId, mailboxId, [...new Set(ids)]],
  );
  return rows.map((r) => r.id);
}

/**
 * Records messages a provider named (a webhook, a history read, a reconciliation): one inbound
 * record each, its pointer `{messageId, ...extra}`. Returns their ids, in the order given, for the
 * caller to enqueue in the same transaction.
 */
export async function recordProviderMessages(
  tx: TenantTx,
  mailboxId: string,
  source: 'graph' | 'gmail',
  messageIds: string[],
  extra: Record<string, unknown> = {},
): Promise<string[]> {
  if (messageIds.length === 0) return [];
  const inboundIds = messageIds.map(() => uuidv7());
  await tx.query(
    `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer)
     SELECT $1, x.id, $2, $3, jsonb_build_object('messageId', x.message_id) || $6::jsonb
       FROM unnest($4::uuid[], $5::text[]) AS x(id, message_id)`,
    [tx.tenantId, mailboxId, source, inboundIds, messageIds, JSON.stringify(extra)],
  );
  return inboundIds;
}
