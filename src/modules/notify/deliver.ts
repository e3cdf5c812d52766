// Sending one queued notification attempt through its channel's adapter, at most once (the same
// steps as outbound mail, send.ts): reserve the attempt's key, mark it `sending` just before the
// adapter is called, record the outcome with the key `done`. A run that finds `sending` cannot know
// whether the receiver got it: it sends again only where the receiver de-duplicates (webhooks, by
// webhook-id), else marks the attempt `unknown`. A failure that may pass queues the next attempt
// after the adapter's delay; one that will not is recorded, told to the adapter (a stale Teams
// conversation, a disabled endpoint) and becomes a `delivery.failed` event.
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { BatchItem, BatchResult, JobContext } from '../../platform/queue/registry.ts';
import { runSharedBatch, type SharedBatch } from '../../platform/queue/shared-batches.ts';
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
} from '../outbound/ledger.ts';
import { tellDeliveryFailed } from '../outbound/failed-delivery.ts';
import type { DeliveryRow } from '../outbound/model.ts';
import { classifyProviderError, DeliveryError } from '../outbound/transports.ts';
import type {
  AdapterChannel,
  ChannelAdapter,
  ChannelOutcome,
  ChannelSend,
  ChannelSent,
  NotificationContent,
} from './channel.ts';
import { notifyDeliverJob } from './job-refs.ts';

export interface DeliverDeps {
  pool: Pool;
  logger: Logger;
  adapters: Map<AdapterChannel, ChannelAdapter>;
  /** The deliver job's lease: a `sending` key younger than this may belong to a run still alive. */
  leaseSeconds: number;
  /** Fault injection for the crash tests: `notify.after-reserve` or `notify.after-send`. */
  killAt?: string | undefined;
  /** Injected by tests: the pauses while the database is out of reach (ledger.ts recordAnswered). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
}

function faultPoint(deps: DeliverDeps, point: string): void {
  if (deps.killAt === point) process.kill(process.pid, 'SIGKILL');
}

const UNKNOWN_AFTER_STOP =
  'the process sending this notification stopped after the send began; whether it arrived is unknown: review, then retry if it did not';

/** What the adapter is handed for an attempt of the ledger. */
const channelSend = (tenantId: string, row: DeliveryRow, signal: AbortSignal | undefined): ChannelSend => ({
  tenantId,
  deliveryId: row.id,
  attempt: row.attempt,
  notificationId: row.notification_id ?? row.id,
  destination: row.destination,
  idempotencyKey: row.idempotency_key,
  content: row.payload['content'] as NotificationContent,
  signal,
});

export async function deliverNotification(
  deps: DeliverDeps,
  payload: { tenantId: string; deliveryId: string },
  ctx: Pick<JobContext, 'send'> & { signal?: AbortSignal | undefined },
): Promise<Record<string, unknown>> {
  const { tenantId, deliveryId } = payload;
  const { row, key } = await withTenant(deps.pool, tenantId, async (tx) => {
    const found = await deliveryRow(tx, deliveryId);
    if (!found || found.status !== 'queued') return { row: found, key: undefined };
    return { row: found, key: await reserveKey(tx, found) };
  });
  if (!row) return { skipped: 'no such delivery' };
  if (key === undefined || key.state === 'done') return { already: row.status };
  const adapter = deps.adapters.get(row.channel as AdapterChannel);
  if (!adapter) {
    await failed(
      deps,
      tenantId,
      row,
      new DeliveryError('permanent', `the ${row.channel} channel is not available in this installation`),
      ctx,
      undefined,
    );
    return { failed: 'no adapter' };
  }
  if (key.state === 'sending') {
    if (key.ageSeconds < deps.leaseSeconds)
      throw new Error('another run of this delivery began sending moments ago; trying again later');
    if (!adapter.resendIsSafe) {
      await withTenant(deps.pool, tenantId, (tx) =>
        recordOutcome(tx, row, { status: 'unknown', errorMessage: UNKNOWN_AFTER_STOP }),
      );
      return { recovered: 'unknown' };
    }
  }
  const send = channelSend(tenantId, row, ctx.signal);
  // The destination's turn under the provider's rate, before the attempt is marked sending.
  if (adapter.pace && key.state === 'reserved')
    try {
      await adapter.pace(send);
    } catch (err) {
      if (ctx.signal?.aborted) throw new Error('stopped while waiting for the destination', { cause: err });
      const error = classifyProviderError(err);
      // Our own pacing refused to wait that long: nothing was tried, so it is no attempt. The same
      // job comes back after the wait (spread a little, so a burst does not return at once).
      if (error.code === 'throttled') {
        const delaySeconds = (error.retryAfterSeconds ?? 5) + Math.floor(Math.random() * 5);
        await ctx.send(notifyDeliverJob, payload, { delaySeconds });
        return { deferred: delaySeconds };
      }
      return failed(deps, tenantId, row, error, ctx, adapter);
    }
  faultPoint(deps, 'notify.after-reserve');
  if (ctx.signal?.aborted) throw new Error('stopped before the send');
  const claimed = await withTenant(deps.pool, tenantId, (tx) => markSending(tx, row));
  if (!claimed && key.state === 'reserved') return { already: 'sending in another run' };

  let sent;
  try {
    sent = await adapter.send({ ...send, paced: adapter.pace !== undefined && key.state === 'reserved' });
  } catch (err) {
    return failed(deps, tenantId, row, classifyProviderError(err), ctx, adapter);
  }
  faultPoint(deps, 'notify.after-send');
  await recordAnswered(deps, ctx.signal, () =>
    withTenant(deps.pool, tenantId, (tx) => recordOutcome(tx, row, { status: 'sent', ...sent })),
  );
  await adapter
    .onSuccess?.(tenantId, row.destination)
    .catch((err: unknown) => deps.logger.warn({ err, deliveryId }, 'channel adapter onSuccess failed'));
  return { sent: sent.providerResponse ?? sent.providerMessageId };
}

type DeliverPayload = { tenantId: string; deliveryId: string };

/**
 * Runs a batch of deliver jobs (the worker's form), whatever tenants they belong to, as outbound
 * mail does (send.ts sendDeliveryBatch): one transaction reads the attempts and reserves their keys,
 * one marks those of unpaced channels (webhooks) sending, the sends go out side by side, and one
 * transaction records those that were sent, each step one statement for the whole batch in the
 * system scope (ledger.ts). Everything else — a paced channel (Teams, Slack, whose turn is awaited
 * before the attempt is marked sending), a key reserved by an earlier run, a failure — takes the
 * one-by-one path, in its tenant, whose steps and answers are the same.
 */
export function deliverNotificationBatch(
  deps: DeliverDeps,
  items: BatchItem<DeliverPayload>[],
): Promise<BatchResult[]> {
  return runSharedBatch(
    items,
    (b) => deliverTogether(deps, b),
    (item) => deliverNotification(deps, item.payload, item.ctx),
    { aloneSideBySide: true },
  );
}

async function deliverTogether(
  deps: DeliverDeps,
  { items, results, alone }: SharedBatch<DeliverPayload>,
): Promise<void> {
  const { rows, fresh } = await withSystemTx(deps.pool, async (sys) => {
    const rows = await queuedRows(
      sys,
      items.map((it) => it.payload),
    );
    return { rows, fresh: await reserveKeys(sys, [...rows.values()]) };
  });
  const batch: { i: number; row: LedgerRow; adapter: ChannelAdapter }[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const row = rows.get(refKey(item.payload));
    const adapter = row ? deps.adapters.get(row.channel as AdapterChannel) : undefined;
    if (row && adapter && !adapter.pace && fresh.has(row.id) && !seen.has(row.id)) {
      seen.add(row.id);
      batch.push({ i, row, adapter });
    } else if (row) alone.push(i);
    else results[i] = { ok: true, output: { skipped: 'no such delivery, or already recorded' } };
  });
  if (batch.length === 0) return;
  faultPoint(deps, 'notify.after-reserve');
  if (items[batch[0]!.i]!.ctx.signal.aborted) throw new Error('stopped before the send');
  const taken = await withSystemTx(deps.pool, (sys) =>
    markManySending(
      sys,
      batch.map((b) => b.row),
    ),
  );
  const sent: { i: number; row: LedgerRow; adapter: ChannelAdapter; result: ChannelSent }[] = [];
  const settle = async ({ i, row, adapter }: (typeof batch)[number], outcome: ChannelOutcome) => {
    if (outcome.ok) {
      sent.push({ i, row, adapter, result: outcome.sent });
      return;
    }
    try {
      results[i] = {
        ok: true,
        output: await failed(
          deps,
          row.tenant_id,
          row,
          classifyProviderError(outcome.error),
          items[i]!.ctx,
          adapter,
        ),
      };
    } catch (error) {
      results[i] = { ok: false, error };
    }
  };
  const mine = batch.filter(({ i, row }) => {
    if (taken.has(row.id)) return true;
    results[i] = { ok: true, output: { already: 'sending in another run' } };
    return false;
  });
  const input = ({ i, row }: (typeof batch)[number]): ChannelSend => ({
    ...channelSend(row.tenant_id, row, items[i]!.ctx.signal),
    paced: false,
  });
  // Per adapter: all its attempts through sendMany where it has one, else each through send.
  await Promise.all(
    [...new Set(mine.map((b) => b.adapter))].map(async (adapter) => {
      const own = mine.filter((b) => b.adapter === adapter);
      if (adapter.sendMany) {
        const outcomes = await adapter
          .sendMany(own.map(input))
          .catch((error: unknown) => own.map((): ChannelOutcome => ({ ok: false, error })));
        await Promise.all(own.map((b, k) => settle(b, outcomes[k]!)));
      } else
        await Promise.all(
          own.map(async (b) =>
            settle(
              b,
              await adapter.send(input(b)).then(
                (result): ChannelOutcome => ({ ok: true, sent: result }),
                (error: unknown): ChannelOutcome => ({ ok: false, error }),
              ),
            ),
          ),
        );
    }),
  );
  faultPoint(deps, 'notify.after-send');
  await recordAnswered(deps, items[batch[0]!.i]!.ctx.signal, () =>
    withSystemTx(deps.pool, (sys) =>
      recordManySent(
        sys,
        sent.map((s) => ({ row: s.row, ...s.result })),
      ),
    ),
  );
  for (const s of sent) {
    results[s.i] = { ok: true, output: { sent: s.result.providerResponse ?? s.result.providerMessageId } };
    await s.adapter
      .onSuccess?.(s.row.tenant_id, s.row.destination)
      .catch((err: unknown) =>
        deps.logger.warn({ err, deliveryId: s.row.id }, 'channel adapter onSuccess failed'),
      );
  }
}

async function failed(
  deps: DeliverDeps,
  tenantId: string,
  row: DeliveryRow,
  error: DeliveryError,
  ctx: Pick<JobContext, 'send'> & { signal?: AbortSignal | undefined },
  adapter: ChannelAdapter | undefined,
): Promise<Record<string, unknown>> {
  const delay = error.retryable
    ? adapter?.retryDelaySeconds(row.attempt, error.retryAfterSeconds)
    : undefined;
  const terminal = delay === undefined;
  const content = row.payload['content'] as NotificationContent | undefined;
  // The channel refused the notification: only this run knows it did not arrive.
  const recorded = await recordAnswered(deps, ctx.signal, () =>
    withTenant(deps.pool, tenantId, async (tx) => {
      const done = await recordOutcome(tx, row, {
        status: 'failed',
        errorCode: error.code,
        errorMessage: error.message,
        retryable: !terminal,
        requestId: error.requestId,
      });
      if (!done) return false;
      if (!terminal) {
        const next = await queueNextAttempt(tx, row);
        if (next)
          await ctx.send(
            notifyDeliverJob,
            { tenantId: tx.tenantId, deliveryId: next },
            { tx, delaySeconds: delay },
          );
      } else {
        // Told like any event (a failed notification about a failure is not announced again).
        await tellDeliveryFailed(tx, row, {
          errorCode: error.code,
          errorMessage: error.message,
          about: content?.type ?? null,
        });
      }
      return true;
    }),
  );
  if (recorded && terminal)
    await adapter
      ?.onTerminalFailure?.(tenantId, row.destination, error)
      .catch((err: unknown) =>
        deps.logger.warn({ err, deliveryId: row.id }, 'channel adapter onTerminalFailure failed'),
      );
  return { failed: error.code, retry: terminal ? null : delay };
}
