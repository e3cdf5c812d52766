// Consume: one job per inbound pointer, run in batches. Fetch the bytes, parse, then in ONE
// transaction claim the message key, resolve the sender, thread, and write the ticket or comment
// with its attachments, participants and the inbound outcome (DESIGN §3.2, §3.4; apply.ts does that
// part, for a whole batch of messages at once). A retry of a committed message finds its record
// final; another delivery of the same message finds the key taken (duplicate, keys.ts).
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { AuthExpired, Permanent, RateLimited } from '../../platform/provider-errors.ts';
import { PermanentJobError } from '../../platform/queue/registry.ts';
import { readBlobs, storeBlobs } from '../blobs/service.ts';
import { ticketNumber } from '../tickets/model.ts';
import { applyBatch, type JobSender } from './apply.ts';
import type { ApplyItem } from './context.ts';
import { takeRawMessage } from './handoff.ts';
import { acceptRawMessage } from './ingest.ts';
import { claimKeys, decideOnTakenKey } from './keys.ts';
import { finishKnownDuplicates, headerBlockFields } from './known-duplicates.ts';
import { getMailbox, type Mailbox, type MailboxKind } from './mailboxes.ts';
import { generatedKey, headerBlock, normalizeMessageId, type ParsedMessage } from './mime.ts';
import { FINAL_STATUSES, type InboundStatus, type Outcome } from './outcomes.ts';
import { parseInThread } from './parse-pool.ts';
import { messageKey } from './storable.ts';
import { finishRecords, markProcessing, type RecordFinal, requeueRecords, setRecordBlob } from './records.ts';
import { fetchRawMessage } from './sources.ts';

export type { InboundStatus, Outcome } from './outcomes.ts';

export interface InboundDeps {
  pool: Pool;
  /** Key for Relaydesk's signed Message-IDs (signing.ts). */
  messageIdKey: Buffer;
  /** RELAYDESK_SECRET_KEY, to unseal provider credentials. */
  secretKey: Buffer;
  logger: Logger;
  clock: Clock;
  /** The install's OAuth app registrations (the secret of a mailbox connected with one of them). */
  oauth?: Config['oauth'] | undefined;
  /**
   * Enqueues, in the applying transaction, what other modules act on (acknowledgements, bounce
   * reports); without it nothing is queued for them.
   */
  send?: JobSender | undefined;
  /** How a message's bytes are parsed: parseInThread unless given (a test counts the parses). */
  parse?: ((raw: Buffer) => Promise<ParsedMessage>) | undefined;
}

interface InboundRow {
  id: string;
  mailbox_id: string;
  source: MailboxKind;
  pointer: Record<string, unknown>;
  blob_sha256: Buffer | null;
  status: InboundStatus;
  reason: string | null;
  ticket_id: string | null;
}

/** Writes where one record ended and answers its outcome (with the ticket's number). */
async function finishOne(tx: TenantTx, final: RecordFinal): Promise<Outcome> {
  await finishRecords(tx, [final]);
  let number: string | null = null;
  if (final.ticketId) {
    const { rows } = await tx.query<{ number: number }>(
      'SELECT number FROM tickets WHERE tenant_id = $1 AND id = $2',
      [tx.tenantId, final.ticketId],
    );
    number = rows[0] ? ticketNumber(rows[0].number) : null;
  }
  return { status: final.status, reason: final.reason, ticketId: final.ticketId, ticketNumber: number };
}

const endedAs = (
  inboundId: string,
  status: InboundStatus,
  reason: string | null,
  key: string | null = null,
): RecordFinal => ({ inboundId, status, reason, ticketId: null, ticketMessageId: null, key });

export interface InboundInput {
  tenantId: string;
  inboundId: string;
  /** The job's last attempt: a transient failure now ends the record as failed. */
  lastAttempt: boolean;
}

/** One job's result: its outcome, or the error its job fails with (PermanentJobError: dead-letter at once). */
export type InboundResult = { ok: true; outcome: Outcome } | { ok: false; error: unknown };

/**
 * Runs a batch of inbound records to their outcomes (one result per input, in order). Per tenant:
 * one transaction marks them all processing; provider sources are fetched and messages parsed
 * outside any transaction; then one transaction applies all the messages (apply.ts). Should that
 * transaction fail, each message is applied again in a transaction of its own, so one bad message
 * costs the others nothing. Errors are per record: transient ones let its job retry.
 */
export async function processInboundBatch(
  deps: InboundDeps,
  inputs: InboundInput[],
): Promise<InboundResult[]> {
  const results: InboundResult[] = [];
  const byTenant = new Map<string, Map<string, { lastAttempt: boolean; indexes: number[] }>>();
  inputs.forEach((input, i) => {
    const records = byTenant.get(input.tenantId) ?? new Map();
    byTenant.set(input.tenantId, records);
    // Two jobs naming one record (a reprocess beside a redelivery): run it once, both get its outcome.
    const r = records.get(input.inboundId) ?? { lastAttempt: false, indexes: [] };
    r.lastAttempt ||= input.lastAttempt;
    r.indexes.push(i);
    records.set(input.inboundId, r);
  });
  await Promise.all(
    [...byTenant].map(async ([tenantId, records]) => {
      let byId: Map<string, InboundResult>;
      const inputs = [...records].map(([inboundId, r]) => ({ inboundId, lastAttempt: r.lastAttempt }));
      try {
        byId = await processTenantBatch(deps, tenantId, inputs);
      } catch (error) {
        // Failed before its messages were taken one by one (marking them processing, reading their
        // bytes): their records learn it too, and end as failed on their jobs' last attempt.
        const result = await failure(deps, tenantId, inputs, error);
        byId = new Map(inputs.map((r) => [r.inboundId, result]));
      }
      for (const [inboundId, r] of records) for (const i of r.indexes) results[i] = byId.get(inboundId)!;
    }),
  );
  return results;
}

/** Runs one inbound message to its outcome. Throws only for transient failures (the job retries). */
export async function processInbound(deps: InboundDeps, input: InboundInput): Promise<Outcome> {
  const [result] = await processInboundBatch(deps, [input]);
  if (!result!.ok) throw result!.error;
  return result!.outcome;
}

interface OpenRecord {
  row: InboundRow;
  mailbox: Mailbox;
  raw: Buffer | undefined;
  lastAttempt: boolean;
}

const toFailing = (record: OpenRecord) => ({ inboundId: record.row.id, lastAttempt: record.lastAttempt });

/** Marks the batch's records processing (one transaction); returns the final ones' outcomes and the open ones. */
async function startRecords(
  deps: InboundDeps,
  tenantId: string,
  records: { inboundId: string; lastAttempt: boolean }[],
): Promise<{ done: Map<string, InboundResult>; open: OpenRecord[] }> {
  return withTenant(deps.pool, tenantId, async (tx) => {
    const ids = records.map((r) => r.inboundId);
    const { rows } = await tx.query<InboundRow & { number: number | null }>(
      `SELECT i.id, i.mailbox_id, i.source, i.pointer, i.blob_sha256, i.status, i.reason, i.ticket_id, t.number
         FROM inbound_messages i LEFT JOIN tickets t ON t.tenant_id = i.tenant_id AND t.id = i.ticket_id
        WHERE i.tenant_id = $1 AND i.id = ANY($2::uuid[])
        ORDER BY i.id FOR UPDATE OF i`,
      [tx.tenantId, ids],
    );
    const done = new Map<string, InboundResult>();
    const found = new Map(rows.map((r) => [r.id, r]));
    for (const id of ids) {
      const row = found.get(id);
      if (!row)
        done.set(id, {
          ok: true,
          outcome: { status: 'skipped', reason: 'inbound_record_gone', ticketId: null, ticketNumber: null },
        });
      else if (FINAL_STATUSES.includes(row.status))
        done.set(id, {
          ok: true,
          outcome: {
            status: row.status,
            reason: row.reason,
            ticketId: row.ticket_id,
            ticketNumber: row.number === null ? null : ticketNumber(row.number),
          },
        });
    }
    const openRows = rows.filter((r) => !FINAL_STATUSES.includes(r.status));
    if (openRows.length === 0) return { done, open: [] };
    await markProcessing(
      tx,
      openRows.map((r) => r.id),
    );
    const mailboxes = new Map<string, Mailbox>();
    for (const id of new Set(openRows.map((r) => r.mailbox_id))) mailboxes.set(id, await getMailbox(tx, id));
    // The stored bytes: handed over in memory when this process accepted them, else read back.
    const raws = new Map<string, Buffer>();
    for (const r of openRows) {
      const held = r.blob_sha256 ? takeRawMessage(tenantId, r.blob_sha256) : undefined;
      if (held) raws.set(r.blob_sha256!.toString('hex'), held);
    }
    const missing = [
      ...new Set(openRows.filter((r) => r.blob_sha256).map((r) => r.blob_sha256!.toString('hex'))),
    ].filter((h) => !raws.has(h));
    for (const [hex, content] of await readBlobs(
      tx,
      missing.map((h) => Buffer.from(h, 'hex')),
    ))
      raws.set(hex, content);
    // Exact copies of messages already claimed by parsing end here as their duplicates (the bytes
    // alone decide; over-size mail takes its own way).
    const known = await finishKnownDuplicates(
      tx,
      openRows.flatMap((r) => {
        const raw = r.blob_sha256 ? raws.get(r.blob_sha256.toString('hex')) : undefined;
        const limit = mailboxes.get(r.mailbox_id)!.settings.maxMessageBytes;
        return raw && raw.length <= limit
          ? [{ inboundId: r.id, mailboxId: r.mailbox_id, sha256: r.blob_sha256!, headers: headerBlock(raw) }]
          : [];
      }),
    );
    for (const [id, outcome] of known) done.set(id, { ok: true, outcome });
    const lastAttempt = new Map(records.map((r) => [r.inboundId, r.lastAttempt]));
    return {
      done,
      open: openRows
        .filter((row) => !known.has(row.id))
        .map((row) => ({
          row,
          mailbox: mailboxes.get(row.mailbox_id)!,
          raw: row.blob_sha256 ? raws.get(row.blob_sha256.toString('hex')) : undefined,
          lastAttempt: lastAttempt.get(row.id) ?? false,
        })),
    };
  });
}

/**
 * Statement errors no retry can mend: PostgreSQL refused the data (SQLSTATE class 22) or hit one of
 * its limits (54, e.g. an index row too large). storable.ts keeps what mail carries within what the
 * database holds; should something still get through, the message is quarantined at once instead
 * of failing every attempt of its job.
 */
function refusedByDatabase(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('54'));
}

const describe = (err: unknown): string =>
  `${(err as Error)?.name ?? 'Error'}: ${String((err as Error)?.message ?? err).slice(0, 300)}`;

/**
 * What a failure means for records: quarantined when the database refused the message itself,
 * retry (the job throws), or failed for good (the job's last attempt, credentials a person must
 * renew, a refusal). Whatever the records become is written here, in a transaction of its own.
 */
async function failure(
  deps: InboundDeps,
  tenantId: string,
  records: { inboundId: string; lastAttempt: boolean }[],
  err: unknown,
): Promise<InboundResult> {
  if (err instanceof RateLimited) return { ok: false, error: err }; // the job reschedules it when the provider said
  const reason = describe(err);
  if (refusedByDatabase(err) && records.length === 1) {
    deps.logger.warn(
      { err, inboundId: records[0]!.inboundId },
      'the database refused a message; quarantined',
    );
    try {
      const outcome = await withTenant(deps.pool, tenantId, (tx) =>
        finishOne(tx, endedAs(records[0]!.inboundId, 'quarantined', `unstorable: ${reason}`)),
      );
      return { ok: true, outcome };
    } catch (recordError) {
      deps.logger.warn({ err: recordError }, 'quarantining an inbound message failed');
    }
  }
  const permanent = err instanceof AuthExpired || err instanceof Permanent;
  const final = records.filter((r) => r.lastAttempt || permanent);
  const retried = records.filter((r) => !(r.lastAttempt || permanent));
  await withTenant(deps.pool, tenantId, async (tx) => {
    await finishRecords(
      tx,
      final.map((r) => endedAs(r.inboundId, 'failed', reason)),
    );
    if (retried.length > 0)
      await requeueRecords(
        tx,
        retried.map((r) => r.inboundId),
        `retrying: ${reason}`,
      );
  }).catch((recordError: unknown) =>
    deps.logger.warn(
      { err: recordError, inboundIds: records.map((r) => r.inboundId) },
      'recording an inbound failure failed',
    ),
  );
  if (permanent) return { ok: false, error: new PermanentJobError(reason, { cause: err }) };
  return { ok: false, error: err };
}

/** Fetches and parses one record's message; an outcome of its own when it ends before applying. */
async function prepare(
  deps: InboundDeps,
  tenantId: string,
  record: OpenRecord,
): Promise<{ item: ApplyItem } | { result: InboundResult }> {
  const { pool } = deps;
  const { row, mailbox } = record;
  try {
    let raw = record.raw;
    if (raw === undefined && row.source !== 'mime') {
      raw = await fetchRawMessage(deps, tenantId, { source: row.source, mailbox, pointer: row.pointer });
      if (raw !== undefined) {
        const fetched = raw;
        // Keep the original (DESIGN §5.1): the fetched bytes become the record's blob.
        await withTenant(pool, tenantId, async (tx) => {
          const { hashes, stored } = storeBlobs(tx, [{ content: fetched }]);
          await stored;
          await setRecordBlob(tx, row.id, hashes[0]!);
        });
      }
    }
    const done = (outcome: Outcome) => ({ result: { ok: true, outcome } as InboundResult });
    if (raw === undefined)
      return done(
        await withTenant(pool, tenantId, (tx) =>
          finishOne(tx, endedAs(row.id, 'skipped', 'source_unavailable')),
        ),
      );
    const bytes = raw;
    if (bytes.length > mailbox.settings.maxMessageBytes)
      return done(await withTenant(pool, tenantId, (tx) => skipTooLarge(tx, mailbox, row.id, bytes)));
    let mail: ParsedMessage;
    try {
      mail = await (deps.parse ?? parseInThread)(bytes);
    } catch (err) {
      deps.logger.warn({ err, inboundId: row.id }, 'message could not be parsed; quarantined');
      return done(
        await withTenant(pool, tenantId, (tx) =>
          finishOne(
            tx,
            endedAs(row.id, 'quarantined', `unparseable: ${String((err as Error).message).slice(0, 200)}`),
          ),
        ),
      );
    }
    return { item: { inboundId: row.id, mailbox, mail } };
  } catch (err) {
    return { result: await failure(deps, tenantId, [toFailing(record)], err) };
  }
}

async function processTenantBatch(
  deps: InboundDeps,
  tenantId: string,
  records: { inboundId: string; lastAttempt: boolean }[],
): Promise<Map<string, InboundResult>> {
  const { done, open } = await startRecords(deps, tenantId, records);
  const prepared = await Promise.all(open.map((record) => prepare(deps, tenantId, record)));
  const ready: { record: OpenRecord; item: ApplyItem }[] = [];
  prepared.forEach((p, i) => {
    if ('result' in p) done.set(open[i]!.row.id, p.result);
    else ready.push({ record: open[i]!, item: p.item });
  });
  if (ready.length === 0) return done;
  const apply = (batch: ApplyItem[]) => withTenant(deps.pool, tenantId, (tx) => applyBatch(tx, deps, batch));
  try {
    const outcomes = await apply(ready.map((r) => r.item));
    ready.forEach((r, i) => done.set(r.item.inboundId, { ok: true, outcome: outcomes[i]! }));
  } catch (batchError) {
    if (ready.length === 1) {
      done.set(
        ready[0]!.item.inboundId,
        await failure(deps, tenantId, [toFailing(ready[0]!.record)], batchError),
      );
      return done;
    }
    // One message's failure (or a deadlock with another batch) must not hold up the others: each
    // again on its own, in order.
    deps.logger.info(
      { err: batchError, messages: ready.length },
      'inbound batch failed; applying its messages one by one',
    );
    for (const r of ready) {
      try {
        const [outcome] = await apply([r.item]);
        done.set(r.item.inboundId, { ok: true, outcome: outcome! });
      } catch (err) {
        done.set(r.item.inboundId, await failure(deps, tenantId, [toFailing(r.record)], err));
      }
    }
  }
  return done;
}

async function skipTooLarge(
  tx: TenantTx,
  mailbox: Mailbox,
  inboundId: string,
  raw: Buffer,
): Promise<Outcome> {
  // Keep the headers (for the record and for threading of later mail), not the body.
  const headers = headerBlock(raw);
  const messageId = normalizeMessageId(headerBlockFields(headers).get('message-id')?.[0]);
  const key = messageId === undefined ? generatedKey(raw) : messageKey(messageId);
  const reason = `too_large: ${raw.length} bytes over the mailbox limit of ${mailbox.settings.maxMessageBytes}`;
  const held = await claimKeys(tx, [
    { mailboxId: mailbox.id, key, inboundId, outcome: { status: 'skipped', reason: 'too_large' } },
  ]);
  const holder = held.values().next().value;
  if (holder) {
    const decision = decideOnTakenKey(holder, { inboundId, key });
    return decision.final ? finishOne(tx, decision.final) : decision.outcome;
  }
  const { hashes, stored } = storeBlobs(tx, [{ content: headers }]);
  await stored;
  await setRecordBlob(tx, inboundId, hashes[0]!);
  return finishOne(tx, endedAs(inboundId, 'skipped', reason, key));
}

/**
 * Accepts a raw message (blob, record and job committed together) and processes it right here,
 * returning its outcome: `relaydesk ingest` and tests. A worker that also picks up the job finds
 * the record final (or the key claimed), so running both is harmless.
 */
export async function ingestRawMessage(
  deps: InboundDeps,
  queue: JobQueue,
  input: { tenantId: string; mailboxId: string; raw: Buffer },
): Promise<Outcome> {
  const accepted = await acceptRawMessage(deps.pool, queue, input);
  return processInbound(
    { send: (job, payload, options) => queue.send(job, payload, options), ...deps },
    {
      tenantId: input.tenantId,
      inboundId: accepted.inboundId,
      lastAttempt: false,
    },
  );
}
