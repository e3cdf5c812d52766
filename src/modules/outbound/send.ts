// Sending one queued attempt, exactly once (DESIGN §5.4):
//   1. reserve the attempt's idempotency key (committed): `reserved`;
//   2. mark it `sending` (committed) just before the provider is called;
//   3. send; 4. record the outcome and close the key in one transaction.
// A run that finds the key `reserved` knows the earlier run stopped before the send and sends; one
// that finds it `sending` cannot know whether the provider took the mail: it asks the provider where
// the provider can answer (Graph, Gmail: by Message-ID) and otherwise marks the attempt `unknown` for
// a person to review, never sending twice. A failure that may pass (throttled, transient) queues the
// next attempt with its own key, after the provider's Retry-After or a growing delay.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemTx, withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logging.ts';
import type { BatchItem, BatchResult, JobContext } from '../../platform/queue/registry.ts';
import { runSharedBatch, type SharedBatch } from '../../platform/queue/shared-batches.ts';
import { mailAbout, tellDeliveryFailed } from './failed-delivery.ts';
import { getMailbox, type Mailbox, mailboxesAcrossTenants } from '../inbound/mailboxes.ts';
import { messageAttachments, messagesWithAttachmentsAcrossTenants } from '../tickets/messages.ts';
import { type OutboundSendPayload, outboundSendJob } from './job-refs.ts';
import {
  deliveryRow,
  type LedgerRow,
  refKey,
  markManySending,
  markSending,
  queuedRows,
  queueNextAttempt,
  recordAnswered,
  recordManySent,
  recordOutcome,
  reserveKey,
  reserveKeys,
} from './ledger.ts';
import type { DeliveryRow, EmailPayload } from './model.ts';
import { classifyProviderError, DeliveryError, type Transports } from './transports.ts';

/** Attempts of one delivery at most (the first and its retries). */
export const MAX_ATTEMPTS = 10;

export interface SendDeps {
  pool: Pool;
  clock: Clock;
  logger: Logger;
  transports: Transports;
  /** The send job's lease: a `sending` key younger than this may belong to a run still alive. */
  leaseSeconds?: number | undefined;
  /**
   * Fault injection for the crash tests (RELAYDESK_FAULT_KILL_AT): the process kills itself with
   * SIGKILL at this point of a send, `outbound.after-reserve` or `outbound.after-send`.
   */
  killAt?: string | undefined;
  /** Injected by tests: the pauses while the database is out of reach (ledger.ts recordAnswered). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
}

/** Seconds before the next attempt: the provider's Retry-After, else 30 s doubling, at most an hour. */
export const retryDelaySeconds = (attempt: number, retryAfter: number | undefined): number =>
  retryAfter ?? Math.min(3600, 30 * 2 ** (attempt - 1));

function faultPoint(deps: SendDeps, point: string): void {
  if (deps.killAt === point) process.kill(process.pid, 'SIGKILL');
}

/** A later attempt through a provider that can be asked by Message-ID (Graph, Gmail) asks first. */
const asksBeforeRetry = (row: Pick<DeliveryRow, 'attempt'>, mailbox: Pick<Mailbox, 'kind'>): boolean =>
  row.attempt > 1 && (mailbox.kind === 'graph' || mailbox.kind === 'gmail');

/** Runs one attempt of the ledger to its outcome; answers what happened (the job's output). */
export async function sendDelivery(
  deps: SendDeps,
  payload: OutboundSendPayload,
  ctx: Pick<JobContext, 'send'> & { signal?: AbortSignal | undefined },
): Promise<Record<string, unknown>> {
  const { tenantId, deliveryId } = payload;
  const reserved = await withTenant(deps.pool, tenantId, async (tx) => {
    const row = await deliveryRow(tx, deliveryId);
    // Another channel's attempt is not this job's: its key is left for the job that sends it.
    if (!row || row.status !== 'queued' || row.channel !== 'email') return { row, key: undefined };
    return { row, key: await reserveKey(tx, row) };
  });
  const { row, key } = reserved;
  if (!row) return { skipped: 'no such delivery' };
  if (row.channel !== 'email') throw new Error(`channel ${row.channel} is not sent by this job`);
  if (key === undefined || key.state === 'done') return { already: row.status };
  // A run began the send within a lease: it may still be alive (its lease ran out while it waited
  // for a connection). Come back later rather than second-guess it; the job retries.
  if (key.state === 'sending' && key.ageSeconds < (deps.leaseSeconds ?? 0))
    throw new Error('another run of this delivery began sending moments ago; trying again later');

  let mailbox: Mailbox;
  try {
    mailbox = await withTenantRead(deps.pool, tenantId, (tx) => getMailbox(tx, row.mailbox_id ?? ''));
  } catch (err) {
    if (!(err instanceof AppError && err.code === 'not_found')) throw err;
    await withTenant(deps.pool, tenantId, (tx) =>
      recordOutcome(
        tx,
        row,
        key.state === 'sending'
          ? { status: 'unknown', errorMessage: 'the mailbox was deleted while its mail was being sent' }
          : {
              status: 'failed',
              errorCode: 'not_found',
              errorMessage: 'the mailbox to send through was deleted',
              retryable: false,
            },
      ),
    );
    return { failed: 'not_found' };
  }
  const messageId = row.rfc_message_id!;

  if (key.state === 'sending') {
    const found = await deps.transports.wasSent({ tenantId, mailbox, messageId });
    if (found === undefined || found) {
      await withTenant(deps.pool, tenantId, (tx) =>
        found
          ? recordOutcome(tx, row, {
              status: 'sent',
              providerMessageId: null,
              providerResponse: 'found at the provider after the sending process stopped',
              requestId: null,
            })
          : recordOutcome(tx, row, { status: 'unknown', errorMessage: UNKNOWN_AFTER_STOP }),
      );
      return { recovered: found ? 'sent' : 'unknown' };
    }
    // The provider has no such message: the earlier run stopped before it reached it.
  } else if (asksBeforeRetry(row, mailbox)) {
    // An earlier attempt whose outcome was not known (a timeout, a 5xx) may have gone out after
    // all, and the provider's search can lag a send by seconds: asked again now, before a copy.
    if (await deps.transports.wasSent({ tenantId, mailbox, messageId })) {
      await withTenant(deps.pool, tenantId, (tx) =>
        recordOutcome(tx, row, {
          status: 'sent',
          providerMessageId: null,
          providerResponse: 'found at the provider: an earlier attempt had sent it',
          requestId: null,
        }),
      );
      return { recovered: 'sent' };
    }
  }
  faultPoint(deps, 'outbound.after-reserve');

  const attachments = row.ticket_message_id
    ? await withTenantRead(deps.pool, tenantId, (tx) => messageAttachments(tx, row.ticket_message_id!))
    : [];
  // The worker is stopping or the lease ran out: leave the attempt to the next run, unsent.
  if (ctx.signal?.aborted) throw new Error('stopped before the send');
  const claimed = await withTenant(deps.pool, tenantId, (tx) => markSending(tx, row));
  // Another run of this job (its lease ran out while this one was starting) took the key first.
  if (!claimed && key.state === 'reserved') return { already: 'sending in another run' };
  let result;
  try {
    result = await deps.transports.send({
      tenantId,
      mailbox,
      payload: row.payload as unknown as EmailPayload,
      messageId,
      attachments,
    });
  } catch (err) {
    return settleFailure(deps, { tenantId, row, mailbox, messageId }, err, ctx);
  }
  faultPoint(deps, 'outbound.after-send');
  await recordAnswered(deps, ctx.signal, () =>
    withTenant(deps.pool, tenantId, (tx) => recordOutcome(tx, row, { status: 'sent', ...result })),
  );
  return { sent: result.providerResponse };
}

/**
 * A send failed: one that may have reached the provider is settled by asking it (or left `unknown`),
 * any other is recorded failed, with the next attempt when it may pass.
 */
async function settleFailure(
  deps: SendDeps,
  mail: { tenantId: string; row: DeliveryRow; mailbox: Mailbox; messageId: string },
  err: unknown,
  ctx: Pick<JobContext, 'send'> & { signal?: AbortSignal | undefined },
): Promise<Record<string, unknown>> {
  const { tenantId, row, mailbox, messageId } = mail;
  const error = classifyProviderError(err);
  if (error.ambiguous) {
    const found = await deps.transports.wasSent({ tenantId, mailbox, messageId });
    if (found === undefined || found) {
      await recordAnswered(deps, ctx.signal, () =>
        withTenant(deps.pool, tenantId, (tx) =>
          recordOutcome(
            tx,
            row,
            found
              ? {
                  status: 'sent',
                  providerMessageId: null,
                  providerResponse: `found at the provider after: ${error.message}`,
                  requestId: null,
                }
              : {
                  status: 'unknown',
                  errorMessage: `the connection failed after the send began (${error.message}); whether the server took the mail is unknown: review, then retry if the recipient did not get it`,
                },
          ),
        ),
      );
      return { recovered: found ? 'sent' : 'unknown' };
    }
  }
  return failed(deps, tenantId, row, error, ctx);
}

/**
 * Runs a batch of send jobs (the worker's form), whatever tenants they belong to: one transaction
 * reads the attempts, their mailboxes and which have attachments, and reserves their keys; one marks
 * them sending; the sends go out side by side; one records those that were sent. Each is one
 * statement per step for the whole batch (ledger.ts), in the system scope: a batch is platform work
 * across tenants, and every row in it is named by its tenant and id. Anything out of the ordinary
 * (a key reserved before, a missing mailbox, a failure) takes the one-by-one path, in its tenant.
 */
export function sendDeliveryBatch(
  deps: SendDeps,
  items: BatchItem<OutboundSendPayload>[],
): Promise<BatchResult[]> {
  return runSharedBatch(
    items,
    (b) => sendTogether(deps, b),
    (item) => sendDelivery(deps, item.payload, item.ctx),
    { aloneSideBySide: false },
  );
}

async function sendTogether(
  deps: SendDeps,
  { items, results, alone }: SharedBatch<OutboundSendPayload>,
): Promise<void> {
  const { rows, fresh, mailboxes, withFiles } = await withSystemTx(deps.pool, async (sys) => {
    const rows = await queuedRows(
      sys,
      items.map((it) => it.payload),
    );
    const found = [...rows.values()];
    const [fresh, mailboxes, withFiles] = await Promise.all([
      reserveKeys(sys, found),
      mailboxesAcrossTenants(
        sys,
        found.flatMap((r) => (r.mailbox_id ? [{ tenantId: r.tenant_id, mailboxId: r.mailbox_id }] : [])),
      ),
      messagesWithAttachmentsAcrossTenants(
        sys,
        found.flatMap((r) =>
          r.ticket_message_id ? [{ tenantId: r.tenant_id, messageId: r.ticket_message_id }] : [],
        ),
      ),
    ]);
    return { rows, fresh, mailboxes, withFiles };
  });
  const batch: { i: number; row: LedgerRow; mailbox: Mailbox }[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const row = rows.get(refKey(item.payload));
    const mailbox = row?.mailbox_id ? mailboxes.get(`${row.tenant_id}/${row.mailbox_id}`) : undefined;
    if (
      row &&
      mailbox &&
      fresh.has(row.id) &&
      row.channel === 'email' &&
      !asksBeforeRetry(row, mailbox) &&
      !seen.has(row.id)
    ) {
      seen.add(row.id);
      batch.push({ i, row, mailbox });
    } else alone.push(i);
  });
  if (batch.length === 0) return;
  faultPoint(deps, 'outbound.after-reserve');
  const files = new Map<string, Awaited<ReturnType<typeof messageAttachments>>>();
  for (const { row } of batch)
    if (row.ticket_message_id && withFiles.has(`${row.tenant_id}/${row.ticket_message_id}`))
      files.set(
        row.id,
        await withTenantRead(deps.pool, row.tenant_id, (tx) =>
          messageAttachments(tx, row.ticket_message_id!),
        ),
      );
  if (items[batch[0]!.i]!.ctx.signal.aborted) throw new Error('stopped before the send');
  const taken = await withSystemTx(deps.pool, (sys) =>
    markManySending(
      sys,
      batch.map((b) => b.row),
    ),
  );
  const sent: (Parameters<typeof recordManySent>[1][number] & { i: number })[] = [];
  await Promise.all(
    batch.map(async ({ i, row, mailbox }) => {
      if (!taken.has(row.id)) {
        results[i] = { ok: true, output: { already: 'sending in another run' } };
        return;
      }
      const tenantId = row.tenant_id;
      const messageId = row.rfc_message_id!;
      try {
        const result = await deps.transports.send({
          tenantId,
          mailbox,
          payload: row.payload as unknown as EmailPayload,
          messageId,
          attachments: files.get(row.id) ?? [],
        });
        sent.push({ i, row, ...result });
      } catch (err) {
        try {
          results[i] = {
            ok: true,
            output: await settleFailure(deps, { tenantId, row, mailbox, messageId }, err, items[i]!.ctx),
          };
        } catch (error) {
          results[i] = { ok: false, error };
        }
      }
    }),
  );
  faultPoint(deps, 'outbound.after-send');
  await recordAnswered(deps, items[batch[0]!.i]!.ctx.signal, () =>
    withSystemTx(deps.pool, (sys) => recordManySent(sys, sent)),
  );
  for (const s of sent) results[s.i] = { ok: true, output: { sent: s.providerResponse } };
}

const UNKNOWN_AFTER_STOP =
  'the process sending this stopped after the send began and the provider cannot be asked whether it took the mail; review, then retry if the recipient did not get it';

/** Records a failed attempt; one that may pass queues the next attempt (with its job) in the same transaction. */
async function failed(
  deps: SendDeps,
  tenantId: string,
  row: DeliveryRow,
  error: DeliveryError,
  ctx: Pick<JobContext, 'send'> & { signal?: AbortSignal | undefined },
): Promise<Record<string, unknown>> {
  const retry = error.retryable && row.attempt < MAX_ATTEMPTS;
  const delaySeconds = retryDelaySeconds(row.attempt, error.retryAfterSeconds);
  // The provider refused the mail: only this run knows it did not leave.
  return recordAnswered(deps, ctx.signal, () =>
    withTenant(deps.pool, tenantId, async (tx) => {
      const recorded = await recordOutcome(tx, row, {
        status: 'failed',
        errorCode: error.code,
        errorMessage: error.message,
        retryable: error.retryable,
        requestId: error.requestId,
      });
      // Another run recorded this attempt meanwhile: its outcome stands, and it decided what follows.
      if (!recorded) return { already: 'recorded by another run' };
      if (!retry) {
        // Mail that will not go out is worth telling someone (by the tenant's rules), except mail
        // that itself tells of a failed delivery: a failing address would loop.
        await tellDeliveryFailed(tx, row, {
          errorCode: error.code,
          errorMessage: error.message,
          about: mailAbout(row),
        });
        return { failed: error.code };
      }
      const next = await queueNextAttempt(tx, row);
      if (!next) return { failed: error.code, nextAttempt: 'queued by a person meanwhile' };
      await ctx.send(outboundSendJob, { tenantId: tx.tenantId, deliveryId: next }, { tx, delaySeconds });
      return { failed: error.code, nextAttempt: next, inSeconds: delaySeconds };
    }),
  );
}
