// The delivery ledger's owner operations (deliveries, delivery_keys): nothing else writes them.
// A row is written `queued` in the transaction of its cause (the outbox); its job reserves the
// attempt's idempotency key, marks it `sending` just before the provider is called, and records the
// outcome with the key `done` in one transaction.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { retryWhileUnavailable } from '../../platform/db/wait.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import {
  DELIVERY_COLUMNS,
  type Delivery,
  type DeliveryChannel,
  type DeliveryErrorCode,
  type DeliveryPurpose,
  type DeliveryRow,
  type DeliveryStatus,
  idempotencyKey,
  toDelivery,
  truncateMessage,
} from './model.ts';

export interface NewDelivery {
  channel: DeliveryChannel;
  purpose: DeliveryPurpose;
  destination: string;
  ticketId: string | null;
  ticketMessageId: string | null;
  mailboxId: string | null;
  rfcMessageId: string | null;
  /** Of a notification: the same for every attempt of it to this destination (a webhook's id). */
  notificationId?: string | null | undefined;
  payload: object;
}

/**
 * What an attempt's idempotency key is made from: the ticket message, else the notification, else
 * the ticket's acknowledgement.
 */
const keySubject = (d: {
  purpose: DeliveryPurpose;
  ticketMessageId: string | null;
  ticketId: string | null;
  notificationId?: string | null | undefined;
}) =>
  d.ticketMessageId ??
  (d.notificationId ? `notification:${d.notificationId}` : `${d.purpose}:${d.ticketId ?? ''}`);

async function insertDelivery(
  tx: TenantTx,
  d: NewDelivery & {
    attempt: number;
    previousId: string | null;
    status: DeliveryStatus;
    skipReason?: string | null;
  },
): Promise<string> {
  const id = uuidv7();
  const key = idempotencyKey({
    subject: keySubject(d),
    tenantId: tx.tenantId,
    channel: d.channel,
    destination: d.destination,
    attempt: d.attempt,
  });
  await tx.query(
    `INSERT INTO deliveries (tenant_id, id, created_at, channel, purpose, destination, attempt, previous_id, status,
                             skip_reason, ticket_id, ticket_message_id, mailbox_id, rfc_message_id, idempotency_key,
                             payload, finished_at, notification_id)
     VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
             CASE WHEN $8 = 'skipped' THEN clock_timestamp() END, $16)`,
    [
      tx.tenantId,
      id,
      d.channel,
      d.purpose,
      d.destination,
      d.attempt,
      d.previousId,
      d.status,
      d.skipReason ?? null,
      d.ticketId,
      d.ticketMessageId,
      d.mailboxId,
      d.rfcMessageId,
      key,
      JSON.stringify(d.payload),
      d.notificationId ?? null,
    ],
  );
  return id;
}

/** Writes a first attempt `queued` (in the caller's transaction); its job sends it. Returns its id. */
export const queueDelivery = (tx: TenantTx, d: NewDelivery): Promise<string> =>
  insertDelivery(tx, { ...d, attempt: 1, previousId: null, status: 'queued' });

/**
 * queueDelivery for many first attempts in one statement (a notification's fan-out); answers their
 * ids in the order given.
 */
export async function queueDeliveries(tx: TenantTx, ds: NewDelivery[]): Promise<string[]> {
  if (ds.length === 0) return [];
  const ids = ds.map(() => uuidv7());
  await tx.query(
    `INSERT INTO deliveries (tenant_id, id, created_at, channel, purpose, destination, attempt, status,
                             ticket_id, ticket_message_id, mailbox_id, rfc_message_id, idempotency_key,
                             payload, notification_id)
     SELECT $1, x.id, clock_timestamp(), x.channel, x.purpose, x.destination, 1, 'queued', x.ticket_id,
            x.ticket_message_id, x.mailbox_id, x.rfc_message_id, x.idempotency_key, x.payload, x.notification_id
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[],
                   $10::text[], $11::jsonb[], $12::uuid[])
              AS x(id, channel, purpose, destination, ticket_id, ticket_message_id, mailbox_id, rfc_message_id,
                   idempotency_key, payload, notification_id)`,
    [
      tx.tenantId,
      ids,
      ds.map((d) => d.channel),
      ds.map((d) => d.purpose),
      ds.map((d) => d.destination),
      ds.map((d) => d.ticketId),
      ds.map((d) => d.ticketMessageId),
      ds.map((d) => d.mailboxId),
      ds.map((d) => d.rfcMessageId),
      ds.map((d) =>
        idempotencyKey({
          subject: keySubject(d),
          tenantId: tx.tenantId,
          channel: d.channel,
          destination: d.destination,
          attempt: 1,
        }),
      ),
      ds.map((d) => JSON.stringify(d.payload)),
      ds.map((d) => d.notificationId ?? null),
    ],
  );
  return ids;
}

/** Records that something was not sent, and why (suppressed acknowledgements, nothing to send to). */
export const recordSkipped = (tx: TenantTx, d: NewDelivery & { reason: string }): Promise<string> =>
  insertDelivery(tx, { ...d, attempt: 1, previousId: null, status: 'skipped', skipReason: d.reason });

async function findRow(tx: TenantTx, id: string, lock: boolean): Promise<DeliveryRow | undefined> {
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
    [tx.tenantId, id],
  );
  return rows[0];
}

export const deliveryRow = (tx: TenantTx, id: string): Promise<DeliveryRow | undefined> =>
  findRow(tx, id, false);

export type KeyState = 'reserved' | 'sending' | 'done';

export interface Reservation {
  state: KeyState;
  /** Seconds since the key last changed state (how long ago a `sending` run began its send). */
  ageSeconds: number;
}

/**
 * Reserves the attempt's idempotency key (before anything is sent) and answers the state it is in:
 * `reserved` when this run reserved it or an earlier run stopped before the send began, `sending`
 * when an earlier run began the send and stopped before recording it, `done` when it was recorded.
 */
export async function reserveKey(tx: TenantTx, row: DeliveryRow): Promise<Reservation> {
  const inserted = await tx.query<{ state: KeyState }>(
    `INSERT INTO delivery_keys (tenant_id, idempotency_key, delivery_id, state) VALUES ($1, $2, $3, 'reserved')
     ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING state`,
    [tx.tenantId, row.idempotency_key, row.id],
  );
  if (inserted.rows[0]) return { state: 'reserved', ageSeconds: 0 };
  const { rows } = await tx.query<{ state: KeyState; age: number }>(
    `SELECT state, extract(epoch FROM now() - updated_at)::float8 AS age FROM delivery_keys
      WHERE tenant_id = $1 AND idempotency_key = $2`,
    [tx.tenantId, row.idempotency_key],
  );
  return { state: rows[0]!.state, ageSeconds: rows[0]!.age };
}

/**
 * Marks the key `sending` and the attempt started: committed just before the provider is called.
 * Answers whether this run took the key from `reserved` (a second run of the same job does not).
 */
export async function markSending(tx: TenantTx, row: DeliveryRow): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE delivery_keys SET state = 'sending', updated_at = now()
      WHERE tenant_id = $1 AND idempotency_key = $2 AND state = 'reserved'`,
    [tx.tenantId, row.idempotency_key],
  );
  await tx.query(
    `UPDATE deliveries SET started_at = clock_timestamp()
      WHERE tenant_id = $1 AND created_at = $2 AND id = $3`,
    [tx.tenantId, row.created_at, row.id],
  );
  return (rowCount ?? 0) > 0;
}

// A batch of send jobs (send.ts, notify/deliver.ts) is platform work across tenants, like the SLA
// scheduler's claim: each of the four statements below serves every tenant of the batch, in a
// system-scoped transaction, instead of one transaction per tenant. Each row is named by its tenant
// and id together (joined with the pairs asked for); `tenant_id = ANY` and `id = ANY` beside the
// join let the planner use each partition's index (the join alone it answers with a scan of every
// partition). On Citus each runs on the shards of the batch's tenants (docs/scale-out.md).

/** An attempt of the ledger with its tenant, as the batch statements read and write it. */
export type LedgerRow = DeliveryRow & { tenant_id: string };

/** An attempt named across tenants. */
export interface DeliveryRef {
  tenantId: string;
  deliveryId: string;
}

/** How the batch functions key an attempt: by its tenant and its id, never its id alone. */
export const refKey = (ref: DeliveryRef): string =>
  `${ref.tenantId.toLowerCase()}/${ref.deliveryId.toLowerCase()}`;

/** Attempts by tenant and id, still `queued` ones only, keyed by refKey. */
export async function queuedRows(sys: SystemTx, refs: DeliveryRef[]): Promise<Map<string, LedgerRow>> {
  if (refs.length === 0) return new Map();
  const { rows } = await sys.query<LedgerRow>(
    `SELECT d.tenant_id, ${DELIVERY_COLUMNS} FROM deliveries d
       JOIN unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, delivery_id)
         ON d.tenant_id = x.tenant_id AND d.id = x.delivery_id
      WHERE d.tenant_id = ANY($1::uuid[]) AND d.id = ANY($2::uuid[]) AND d.status = 'queued'`,
    [refs.map((r) => r.tenantId), refs.map((r) => r.deliveryId)],
  );
  return new Map(rows.map((r) => [refKey({ tenantId: r.tenant_id, deliveryId: r.id }), r]));
}

/**
 * Reserves the keys of many attempts at once; answers the attempts whose key this call reserved
 * (the others were reserved before: each is then run on its own, by sendDelivery).
 */
export async function reserveKeys(sys: SystemTx, rows: LedgerRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const { rows: made } = await sys.query<{ delivery_id: string }>(
    `INSERT INTO delivery_keys (tenant_id, idempotency_key, delivery_id, state)
     SELECT t, k, d, 'reserved' FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS x(t, k, d) ORDER BY t, k
     ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING delivery_id`,
    [rows.map((r) => r.tenant_id), rows.map((r) => r.idempotency_key), rows.map((r) => r.id)],
  );
  return new Set(made.map((r) => r.delivery_id));
}

/** markSending for many: answers the attempts whose key this call took from `reserved`. */
export async function markManySending(sys: SystemTx, rows: LedgerRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const tenants = [...new Set(rows.map((r) => r.tenant_id))];
  const { rows: taken } = await sys.query<{ delivery_id: string }>(
    `UPDATE delivery_keys k SET state = 'sending', updated_at = now()
       FROM unnest($1::uuid[], $2::text[]) AS x(tenant_id, idempotency_key)
      WHERE k.tenant_id = ANY($3::uuid[]) AND k.idempotency_key = ANY($2::text[])
        AND k.tenant_id = x.tenant_id AND k.idempotency_key = x.idempotency_key AND k.state = 'reserved'
      RETURNING k.delivery_id`,
    [rows.map((r) => r.tenant_id), rows.map((r) => r.idempotency_key), tenants],
  );
  await sys.query(
    `UPDATE deliveries d SET started_at = clock_timestamp()
       FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS x(tenant_id, id, created_at)
      WHERE d.tenant_id = ANY($4::uuid[]) AND d.id = ANY($2::uuid[]) AND d.created_at = ANY($3::timestamptz[])
        AND d.tenant_id = x.tenant_id AND d.id = x.id AND d.created_at = x.created_at`,
    [rows.map((r) => r.tenant_id), rows.map((r) => r.id), rows.map((r) => r.created_at), tenants],
  );
  return new Set(taken.map((r) => r.delivery_id));
}

/**
 * Records what a provider already answered (sent, or refused) by running `write`, its transaction,
 * and waiting out a database outage until the job's lease runs out (`signal`, at most the lease):
 * only this run knows the answer, and a run after it could no longer tell whether the send arrived
 * (platform/db/wait.ts). The ledger's writes are conditional on the attempt's state, so a write
 * repeated after a lost commit acknowledgement changes nothing.
 */
export function recordAnswered<T>(
  deps: {
    logger: Logger;
    leaseSeconds?: number | undefined;
    /** Injected by tests: the pauses while the database is out of reach. */
    sleep?: ((ms: number) => Promise<void>) | undefined;
  },
  signal: AbortSignal | undefined,
  write: () => Promise<T>,
): Promise<T> {
  return retryWhileUnavailable(write, {
    logger: deps.logger,
    what: "a delivery attempt's outcome",
    signal,
    forMs: (deps.leaseSeconds ?? 60) * 1000,
    sleep: deps.sleep,
  });
}

/** Records many sent attempts in two statements (the common case of a batch). */
export async function recordManySent(
  sys: SystemTx,
  sent: {
    row: LedgerRow;
    providerMessageId: string | null;
    providerResponse: string | null;
    refused?: string | undefined;
    requestId?: string | null | undefined;
  }[],
): Promise<void> {
  if (sent.length === 0) return;
  const tenants = [...new Set(sent.map((s) => s.row.tenant_id))];
  await sys.query(
    `UPDATE deliveries d SET status = 'sent', provider_message_id = x.pmid, provider_response = x.resp,
            request_id = x.request_id,
            error_code = CASE WHEN x.refused IS NULL THEN NULL ELSE 'invalid_recipient' END,
            error_message = x.refused, retryable = false,
            sent_at = clock_timestamp(), finished_at = clock_timestamp(),
            duration_ms = CASE WHEN d.started_at IS NULL THEN NULL
                               ELSE (extract(epoch FROM clock_timestamp() - d.started_at) * 1000)::integer END
       FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])
              AS x(tenant_id, created_at, id, pmid, resp, refused, request_id)
      WHERE d.tenant_id = ANY($8::uuid[]) AND d.id = ANY($3::uuid[]) AND d.created_at = ANY($2::timestamptz[])
        AND d.tenant_id = x.tenant_id AND d.created_at = x.created_at AND d.id = x.id
        AND (d.status = 'queued' OR d.status = 'unknown')`,
    [
      sent.map((s) => s.row.tenant_id),
      sent.map((s) => s.row.created_at),
      sent.map((s) => s.row.id),
      sent.map((s) => s.providerMessageId),
      sent.map((s) => (s.providerResponse ? truncateMessage(s.providerResponse) : null)),
      sent.map((s) => (s.refused ? truncateMessage(s.refused) : null)),
      sent.map((s) => s.requestId ?? null),
      tenants,
    ],
  );
  await sys.query(
    `UPDATE delivery_keys k SET state = 'done', updated_at = now()
       FROM unnest($1::uuid[], $2::text[]) AS x(tenant_id, idempotency_key)
      WHERE k.tenant_id = ANY($3::uuid[]) AND k.idempotency_key = ANY($2::text[])
        AND k.tenant_id = x.tenant_id AND k.idempotency_key = x.idempotency_key`,
    [sent.map((s) => s.row.tenant_id), sent.map((s) => s.row.idempotency_key), tenants],
  );
}

export type AttemptOutcome =
  | {
      status: 'sent';
      providerMessageId: string | null;
      providerResponse: string | null;
      requestId: string | null;
      /** Recipients the provider refused while taking the mail for the others. */
      refused?: string | undefined;
    }
  | {
      status: 'failed';
      errorCode: DeliveryErrorCode;
      errorMessage: string;
      retryable: boolean;
      requestId?: string | null;
    }
  | { status: 'unknown'; errorMessage: string };

/**
 * Records how an attempt ended and closes its key, if the attempt is still open (a second run that
 * raced it records nothing); a `sent` also corrects an `unknown` (the run that did send, late).
 * Answers whether it recorded.
 */
export async function recordOutcome(
  tx: TenantTx,
  row: DeliveryRow,
  outcome: AttemptOutcome,
): Promise<boolean> {
  const sent = outcome.status === 'sent';
  const failed = outcome.status === 'failed';
  const { rowCount } = await tx.query(
    `UPDATE deliveries SET status = $4, provider_message_id = $5, provider_response = $6, request_id = $7,
            error_code = $8, error_message = $9, retryable = $10,
            sent_at = CASE WHEN $4 = 'sent' THEN clock_timestamp() END,
            finished_at = clock_timestamp(),
            duration_ms = CASE WHEN started_at IS NULL THEN NULL
                               ELSE (extract(epoch FROM clock_timestamp() - started_at) * 1000)::integer END
      WHERE tenant_id = $1 AND created_at = $2 AND id = $3
        AND (status = 'queued' OR (status = 'unknown' AND $4 = 'sent'))`,
    [
      tx.tenantId,
      row.created_at,
      row.id,
      outcome.status,
      sent ? outcome.providerMessageId : null,
      sent && outcome.providerResponse ? truncateMessage(outcome.providerResponse) : null,
      sent || failed ? (outcome.requestId ?? null) : null,
      failed ? outcome.errorCode : sent && outcome.refused ? 'invalid_recipient' : null,
      sent
        ? outcome.refused
          ? truncateMessage(outcome.refused)
          : null
        : truncateMessage(outcome.errorMessage),
      failed ? outcome.retryable : outcome.status === 'unknown' ? null : false,
    ],
  );
  await tx.query(
    `UPDATE delivery_keys SET state = 'done', updated_at = now() WHERE tenant_id = $1 AND idempotency_key = $2`,
    [tx.tenantId, row.idempotency_key],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * A send job failed for good before its attempt was recorded (the database was away through all its
 * retries, the process died on its last one): the attempt says so instead of staying queued —
 * `unknown` when the send had begun, else failed. Nothing when it was recorded meanwhile.
 */
export async function closeAbandonedAttempt(tx: TenantTx, id: string, why: string): Promise<void> {
  const row = await findRow(tx, id, false);
  if (row?.status !== 'queued') return;
  await recordOutcome(
    tx,
    row,
    row.started_at
      ? { status: 'unknown', errorMessage: why }
      : { status: 'failed', errorCode: 'transient', retryable: false, errorMessage: why },
  );
}

/**
 * Serialises what adds attempts to one delivery (its chain: same channel, destination, purpose and
 * message): a retry by a person and the job's own retry cannot both add the same next attempt.
 */
async function lockChain(tx: TenantTx, row: DeliveryRow): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
    ['delivery', tx.tenantId, row.channel, row.destination, row.purpose, keySubject(toKeyParts(row))].join(
      '|',
    ),
  ]);
}

const toKeyParts = (row: DeliveryRow) => ({
  purpose: row.purpose,
  ticketMessageId: row.ticket_message_id,
  ticketId: row.ticket_id,
  notificationId: row.notification_id,
});

/** The latest attempt of the row's delivery (call with the chain locked). */
async function latestOfChain(tx: TenantTx, row: DeliveryRow): Promise<DeliveryRow> {
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries
      WHERE tenant_id = $1 AND channel = $2 AND destination = $3 AND purpose = $4
        AND ticket_message_id IS NOT DISTINCT FROM $5 AND ticket_id IS NOT DISTINCT FROM $6
        AND notification_id IS NOT DISTINCT FROM $7
      ORDER BY attempt DESC, created_at DESC LIMIT 1`,
    [
      tx.tenantId,
      row.channel,
      row.destination,
      row.purpose,
      row.ticket_message_id,
      row.ticket_id,
      row.notification_id,
    ],
  );
  return rows[0] ?? row;
}

/**
 * Writes the next attempt of a delivery, `queued`; its job is the caller's. Returns its id, or
 * undefined when a later attempt exists already (a person retried it meanwhile).
 */
export async function queueNextAttempt(
  tx: TenantTx,
  row: DeliveryRow,
  composed?: ComposedMail,
): Promise<string | undefined> {
  await lockChain(tx, row);
  const latest = await latestOfChain(tx, row);
  if (latest.attempt > row.attempt) return undefined;
  return insertDelivery(tx, {
    channel: row.channel,
    purpose: row.purpose,
    destination: composed?.destination ?? row.destination,
    ticketId: row.ticket_id,
    ticketMessageId: row.ticket_message_id,
    mailboxId: composed?.mailboxId ?? row.mailbox_id,
    rfcMessageId: composed?.rfcMessageId ?? row.rfc_message_id,
    notificationId: row.notification_id,
    payload: composed?.payload ?? row.payload,
    attempt: row.attempt + 1,
    previousId: row.id,
    status: 'queued',
  });
}

/** A mail made at retry for an attempt that was skipped before it had one (replies.ts). */
export interface ComposedMail {
  destination: string;
  mailboxId: string;
  rfcMessageId: string;
  payload: Record<string, unknown>;
}

/**
 * A person asks for a delivery again: a new attempt after the latest of its chain, which must have
 * ended (failed, unknown, bounced or skipped). An email skipped before its mail was made (no mailbox,
 * no recipient) has nothing to send again: `compose` makes it now, or says why it still cannot (and
 * without `compose` it is refused). Returns the new attempt's row.
 */
export async function retryDelivery(
  tx: TenantTx,
  id: string,
  compose?: (latest: DeliveryRow) => Promise<ComposedMail>,
): Promise<DeliveryRow> {
  const row = await findRow(tx, id, false);
  if (!row) throw notFound('delivery');
  await lockChain(tx, row);
  const latest = await latestOfChain(tx, row);
  if (latest.status === 'queued' || latest.status === 'sent' || latest.status === 'delivered')
    throw validation(
      `the delivery is ${latest.status}: only an attempt that ended without delivering is retried`,
      [{ path: '/id', message: `latest attempt ${latest.id} is ${latest.status}` }],
    );
  const unmade = latest.status === 'skipped' && latest.channel === 'email' && !latest.payload['to'];
  if (unmade && !compose)
    throw validation('a skipped delivery with nothing to send cannot be retried', [
      { path: '/id', message: `skipped: ${latest.skip_reason ?? 'no reason'}` },
    ]);
  if (unmade) {
    // Its mail, once made, goes to an address: its attempts then form a chain of their own, which
    // this one's lock and latest do not see. Made once only; later retries are of that chain.
    const { rows } = await tx.query<{ id: string }>(
      'SELECT id FROM deliveries WHERE tenant_id = $1 AND previous_id = $2 LIMIT 1',
      [tx.tenantId, latest.id],
    );
    if (rows[0])
      throw validation(`the delivery was retried already, as ${rows[0].id}: retry that one`, [
        { path: '/id', message: `retried as ${rows[0].id}` },
      ]);
  }
  const next = await queueNextAttempt(tx, latest, unmade ? await compose!(latest) : undefined);
  return (await findRow(tx, next!, false))!;
}

/**
 * The attempt a delivery-status report about this Message-ID is about, locked: the latest that sent
 * (or may have sent) it. Earlier attempts keep what they were.
 */
export async function reportedAttempt(tx: TenantTx, rfcMessageId: string): Promise<DeliveryRow | undefined> {
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries
      WHERE tenant_id = $1 AND rfc_message_id = $2 AND status IN ('sent', 'delivered', 'unknown')
      ORDER BY attempt DESC, created_at DESC LIMIT 1 FOR UPDATE`,
    [tx.tenantId, rfcMessageId],
  );
  return rows[0];
}

/**
 * Marks an attempt bounced (a report says its mail failed for its destination), not to be retried
 * by itself. Answers whether it did (not when the attempt was marked otherwise meanwhile).
 */
export async function markBounced(
  tx: TenantTx,
  row: DeliveryRow,
  input: { errorCode: DeliveryErrorCode; errorMessage: string },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE deliveries SET status = 'bounced', error_code = $4, retryable = false, error_message = $5,
            finished_at = clock_timestamp()
      WHERE tenant_id = $1 AND created_at = $2 AND id = $3 AND status IN ('sent', 'delivered', 'unknown')`,
    [tx.tenantId, row.created_at, row.id, input.errorCode, truncateMessage(input.errorMessage)],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Marks an attempt delivered (a report says its destination's server took the mail): from `sent`,
 * or from `unknown`, whose doubt it ends (its note of that doubt goes). A bounced attempt stays so.
 * Answers whether it did.
 */
export async function markDelivered(tx: TenantTx, row: DeliveryRow): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE deliveries SET status = 'delivered', retryable = false,
            error_message = CASE WHEN status = 'unknown' THEN NULL ELSE error_message END
      WHERE tenant_id = $1 AND created_at = $2 AND id = $3 AND status IN ('sent', 'unknown')`,
    [tx.tenantId, row.created_at, row.id],
  );
  return (rowCount ?? 0) > 0;
}

/** Whether the ticket's acknowledgement was decided already (queued, sent or skipped). */
export async function alreadyAcknowledged(tx: TenantTx, ticketId: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `SELECT 1 FROM deliveries WHERE tenant_id = $1 AND ticket_id = $2 AND purpose = 'acknowledgement' LIMIT 1`,
    [tx.tenantId, ticketId],
  );
  return (rowCount ?? 0) > 0;
}

/** Automatic mails queued or sent to an address since `since` (the per-recipient cap). */
export async function automaticMailsSince(tx: TenantTx, destination: string, since: Date): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM deliveries
      WHERE tenant_id = $1 AND destination = $2 AND created_at >= $3 AND purpose = 'acknowledgement'
        AND status IN ('queued', 'sent', 'delivered', 'bounced', 'unknown')`,
    [tx.tenantId, destination, since],
  );
  return rows[0]!.n;
}

export interface ListDeliveriesInput {
  ticketId?: string | undefined;
  /** The ticket by its number, "T-12". */
  ticketNumber?: string | undefined;
  channel?: DeliveryChannel | undefined;
  purpose?: DeliveryPurpose | undefined;
  /** Exactly this destination (an address, a webhook endpoint's id). */
  destination?: string | undefined;
  status?: DeliveryStatus | undefined;
  errorCode?: DeliveryErrorCode | undefined;
  from?: string | undefined;
  to?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** The tenant's attempts, newest first, filtered; cursor over (created_at, id). */
export async function listDeliveries(tx: TenantTx, input: ListDeliveriesInput): Promise<Page<Delivery>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['tenant_id = $1'];
  const add = (sql: (n: string) => string, value: unknown) => {
    values.push(value);
    where.push(sql(`$${values.length}`));
  };
  if (input.ticketId) add((n) => `ticket_id = ${n}`, input.ticketId);
  if (input.ticketNumber)
    add(
      (n) => `ticket_id = (SELECT id FROM tickets WHERE tenant_id = $1 AND number = ${n}::bigint)`,
      input.ticketNumber.slice(2),
    );
  if (input.channel) add((n) => `channel = ${n}`, input.channel);
  if (input.purpose) add((n) => `purpose = ${n}`, input.purpose);
  if (input.destination !== undefined) add((n) => `destination = ${n}`, input.destination);
  if (input.status) add((n) => `status = ${n}`, input.status);
  if (input.errorCode) add((n) => `error_code = ${n}`, input.errorCode);
  if (input.from) add((n) => `created_at >= ${n}::timestamptz`, input.from);
  if (input.to) add((n) => `created_at < ${n}::timestamptz`, input.to);
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(created_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE ${where.join(' AND ')}
      ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toDelivery);
}

/** The attempts with the numbers of their tickets ("T-12"; null without a ticket), in one query. */
export async function withTicketNumbers(
  tx: TenantTx,
  deliveries: Delivery[],
): Promise<(Delivery & { ticketNumber: string | null })[]> {
  const ids = [...new Set(deliveries.map((d) => d.ticketId).filter((id): id is string => id !== null))];
  const numbers = new Map<string, string>();
  if (ids.length > 0) {
    const { rows } = await tx.query<{ id: string; number: string }>(
      'SELECT id, number FROM tickets WHERE tenant_id = $1 AND id = ANY($2::uuid[])',
      [tx.tenantId, ids],
    );
    for (const r of rows) numbers.set(r.id, `T-${r.number}`);
  }
  return deliveries.map((d) => ({
    ...d,
    ticketNumber: d.ticketId ? (numbers.get(d.ticketId) ?? null) : null,
  }));
}

export async function getDelivery(tx: TenantTx, id: string): Promise<Delivery> {
  const row = await findRow(tx, id, false);
  if (!row) throw notFound('delivery');
  return toDelivery(row);
}

// ---- Replays (webhooks) ----------------------------------------------------------------------
// A receiver that lost what it took, or came back after an outage, asks for deliveries again. A
// replay is one more attempt of the delivery's chain (its own idempotency key, the same payload),
// written `queued`; the caller enqueues its job in the same transaction.

/**
 * Replays a delivery: a new attempt after the latest of its chain, whatever that attempt's outcome
 * (a sent one too), unless it is still queued. Returns the new attempt's row.
 */
export async function replayDelivery(tx: TenantTx, id: string): Promise<DeliveryRow> {
  const row = await findRow(tx, id, false);
  if (!row) throw notFound('delivery');
  await lockChain(tx, row);
  const latest = await latestOfChain(tx, row);
  if (latest.status === 'queued')
    throw conflict(`the delivery has a queued attempt (${latest.id}) already`, { deliveryId: latest.id });
  const next = await queueNextAttempt(tx, latest);
  return (await findRow(tx, next!, false))!;
}

/**
 * Replays every delivery to `destination` on `channel` whose latest attempt failed and was made at
 * or after `since`, oldest first, at most `limit`. Returns the new attempts' ids, and whether the
 * limit cut the list short.
 */
export async function replayFailedSince(
  tx: TenantTx,
  input: { channel: DeliveryChannel; destination: string; since: string; limit: number },
): Promise<{ ids: string[]; more: boolean }> {
  // An attempt no other attempt follows is the latest of its chain (a later one is made after it,
  // so it is inside the same range of created_at).
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries d
      WHERE tenant_id = $1 AND channel = $2 AND destination = $3 AND created_at >= $4::timestamptz
        AND status = 'failed'
        AND NOT EXISTS (SELECT 1 FROM deliveries n
                         WHERE n.tenant_id = $1 AND n.channel = $2 AND n.destination = $3
                           AND n.created_at >= d.created_at AND n.previous_id = d.id)
      ORDER BY created_at, id LIMIT $5`,
    [tx.tenantId, input.channel, input.destination, input.since, input.limit],
  );
  const made: string[] = [];
  for (const row of rows) {
    const next = await queueNextAttempt(tx, row);
    if (next) made.push(next);
  }
  return { ids: made, more: rows.length === input.limit };
}

/** Makes this month's partition and `monthsAhead` more, where missing; answers how many it made. */
export async function ensurePartitions(
  sys: SystemTx,
  input: { now: Date; monthsAhead: number },
): Promise<{ rows: { n: number }[] }> {
  return sys.query<{ n: number }>('SELECT ensure_delivery_partitions($1, $2) AS n', [
    input.now,
    input.monthsAhead,
  ]);
}

/**
 * Keeps the ledger's partitions: this month's and `monthsAhead` more exist, and whole months that
 * ended more than `retentionDays` ago are dropped, with idempotency keys as old (system transaction).
 */
export async function maintainPartitions(
  sys: SystemTx,
  input: { now: Date; monthsAhead: number; retentionDays: number },
): Promise<{ created: number; dropped: number; keysDeleted: number }> {
  const cutoff = new Date(input.now.getTime() - input.retentionDays * 86_400_000);
  const made = await ensurePartitions(sys, input);
  const dropped = await sys.query<{ n: number }>('SELECT drop_delivery_partitions($1) AS n', [cutoff]);
  const keys = await sys.query('DELETE FROM delivery_keys WHERE created_at < $1', [cutoff]);
  return { created: made.rows[0]!.n, dropped: dropped.rows[0]!.n, keysDeleted: keys.rowCount ?? 0 };
}

/** What a ticket message shows of its mail's delivery: its latest attempt, with how many there were. */
export interface MessageDelivery {
  id: string;
  status: DeliveryStatus;
  /** The latest attempt's number (retries count up). */
  attempt: number;
  /** How many attempts the message's mail has had. */
  attempts: number;
  errorCode: string | null;
  errorMessage: string | null;
  /** The error of the latest attempt that failed or bounced (its message, else its code), if any. */
  lastError: string | null;
  sentAt: string | null;
}

/**
 * A message's mail is queued in the message's own transaction or later (a retry, a replay), so its
 * attempts were created no earlier than this before the message (now() of a transaction is its
 * start, a message's time may be later in it). The bound lets the planner leave out the ledger's
 * older partitions.
 */
const ATTEMPTS_NOT_BEFORE_MESSAGE_MS = 24 * 3600 * 1000;

/**
 * The delivery of a message whose mail was queued (or skipped) in this transaction, its only attempt:
 * what messageDeliveries would read back, without reading (the ledger is partitioned, and planning
 * that read was the largest cost of posting a reply).
 */
export const firstAttempt = (id: string, status: 'queued' | 'skipped'): MessageDelivery => ({
  id,
  status,
  attempt: 1,
  attempts: 1,
  errorCode: null,
  errorMessage: null,
  lastError: null,
  sentAt: null,
});

/** The delivery of each of these messages' mail (messages without mail are left out). */
export async function messageDeliveries(
  tx: TenantTx,
  messages: { id: string; createdAt: string }[],
): Promise<Map<string, MessageDelivery>> {
  if (messages.length === 0) return new Map();
  // (A row's time may be a Date as the driver reads it, or its ISO text.)
  const earliest = Math.min(...messages.map((m) => new Date(m.createdAt).getTime()));
  const since = new Date(Number.isFinite(earliest) ? earliest - ATTEMPTS_NOT_BEFORE_MESSAGE_MS : 0);
  // Every attempt of these messages (a handful each: retries stop at ten), newest first; the latest,
  // the count and the latest failure are picked here. One scan of the ledger plans in half the time
  // of three lateral ones, and planning is most of this read's cost.
  const { rows } = await tx.query<{
    message_id: string;
    id: string;
    status: DeliveryStatus;
    attempt: number;
    error_code: string | null;
    error_message: string | null;
    sent_at: string | null;
  }>(
    `SELECT ticket_message_id AS message_id, id, status, attempt, error_code, error_message, sent_at
       FROM deliveries
      WHERE tenant_id = $1 AND ticket_message_id = ANY($2::uuid[]) AND created_at >= $3
      ORDER BY created_at DESC, id DESC`,
    [tx.tenantId, [...new Set(messages.map((m) => m.id))], since],
  );
  const out = new Map<string, MessageDelivery>();
  const failureFound = new Set<string>();
  for (const r of rows) {
    let delivery = out.get(r.message_id);
    if (delivery) delivery.attempts += 1;
    else {
      delivery = {
        id: r.id,
        status: r.status,
        attempt: r.attempt,
        attempts: 1,
        errorCode: r.error_code,
        errorMessage: r.error_message,
        lastError: null,
        sentAt: r.sent_at,
      };
      out.set(r.message_id, delivery);
    }
    if (['failed', 'bounced', 'unknown'].includes(r.status) && !failureFound.has(r.message_id)) {
      failureFound.add(r.message_id);
      delivery.lastError = r.error_message ?? r.error_code;
    }
  }
  return out;
}
