// Events worth telling someone about (DESIGN §5.4). Whichever module causes one records it here in
// the transaction of its cause; the notify module's dispatcher claims undispatched events and hands
// each to a fan-out job. This module imports nothing but the platform, so every module can record
// events without depending on the notification machinery that consumes them.
import type { Pool } from '../../platform/db/pool.ts';
import { type SystemTx, type TenantTx, withSystemRead, withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';

export const EVENT_TYPES = [
  'ticket.created',
  'ticket.assigned',
  'ticket.customer_replied',
  'ticket.status_changed',
  'sla.threshold',
  'sla.breached',
  'sla.escalated',
  'mailbox.health_changed',
  'delivery.failed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
/** What `POST /notification-rules/:id/test` sends: a sample, never matched by rules. */
export type AnyEventType = EventType | 'notification.test';

/**
 * The channel committed events are announced on (NOTIFY, by a statement trigger on the table), so
 * the dispatcher need not wait for its poll.
 */
export const EVENTS_CHANNEL = 'relaydesk_events';

export interface NewEvent {
  type: AnyEventType;
  ticketId?: string | null | undefined;
  mailboxId?: string | null | undefined;
  actorId?: string | null | undefined;
  /** Passes quiet hours. */
  urgent?: boolean | undefined;
  data?: Record<string, unknown> | undefined;
}

export interface StoredEvent {
  tenantId: string;
  id: string;
  type: AnyEventType;
  occurredAt: Date;
  ticketId: string | null;
  mailboxId: string | null;
  actorId: string | null;
  urgent: boolean;
  data: Record<string, unknown>;
  fannedOutAt: Date | null;
}

interface EventRow {
  tenant_id: string;
  id: string;
  type: AnyEventType;
  /** Timestamps come back as text (platform/db type parsers). */
  occurred_at: string;
  ticket_id: string | null;
  mailbox_id: string | null;
  actor_id: string | null;
  urgent: boolean;
  data: Record<string, unknown>;
  fanned_out_at: string | null;
}

const toEvent = (r: EventRow): StoredEvent => ({
  tenantId: r.tenant_id,
  id: r.id,
  type: r.type,
  occurredAt: new Date(r.occurred_at),
  ticketId: r.ticket_id,
  mailboxId: r.mailbox_id,
  actorId: r.actor_id,
  urgent: r.urgent,
  data: r.data,
  fannedOutAt: r.fanned_out_at === null ? null : new Date(r.fanned_out_at),
});

/** Records events in the caller's transaction (announced on commit). Returns their ids. */
export async function recordEvents(tx: TenantTx, events: NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const ids = events.map(() => uuidv7());
  await tx.query(
    `INSERT INTO events (tenant_id, id, type, occurred_at, ticket_id, mailbox_id, actor_id, urgent, data)
     SELECT $1, e.id, e.type, clock_timestamp(), e.ticket_id, e.mailbox_id, e.actor_id, e.urgent, e.data
       FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::boolean[], $8::jsonb[])
            WITH ORDINALITY AS e (id, type, ticket_id, mailbox_id, actor_id, urgent, data, ord)
      ORDER BY e.ord`,
    [
      tx.tenantId,
      ids,
      events.map((e) => e.type),
      events.map((e) => e.ticketId ?? null),
      events.map((e) => e.mailboxId ?? null),
      events.map((e) => e.actorId ?? null),
      events.map((e) => e.urgent ?? false),
      events.map((e) => JSON.stringify(e.data ?? {})),
    ],
  );
  return ids;
}

/**
 * The ticket's events of these types, the newest `limit` of them, oldest first (a ticket's history).
 * Events are kept 30 days after their fan-out (notify's housekeeping), so older ones are gone.
 */
export async function ticketEvents(
  tx: TenantTx,
  input: { ticketId: string; types: AnyEventType[]; limit: number },
): Promise<StoredEvent[]> {
  const { rows } = await tx.query<EventRow>(
    `SELECT * FROM (
       SELECT tenant_id, id, type, occurred_at, ticket_id, mailbox_id, actor_id, urgent, data, fanned_out_at
         FROM events WHERE tenant_id = $1 AND ticket_id = $2 AND type = ANY($3::text[])
        ORDER BY occurred_at DESC, id DESC LIMIT $4) e
      ORDER BY occurred_at, id`,
    [tx.tenantId, input.ticketId, input.types, input.limit],
  );
  return rows.map(toEvent);
}

export const recordEvent = async (tx: TenantTx, event: NewEvent): Promise<string> =>
  (await recordEvents(tx, [event]))[0]!;

/**
 * Claims up to `limit` undispatched events across tenants, oldest first, skipping those another
 * dispatcher holds, and marks them dispatched (call in a system transaction that also enqueues their
 * fan-out jobs, or marks them fanned out: both commit or neither does).
 */
export async function claimUndispatched(
  sys: SystemTx,
  limit: number,
): Promise<{ tenantId: string; id: string; type: AnyEventType }[]> {
  const { rows } = await sys.query<{ tenant_id: string; id: string; type: AnyEventType }>(
    `UPDATE events e SET dispatched_at = now()
       FROM (SELECT tenant_id, id FROM events WHERE dispatched_at IS NULL
              ORDER BY occurred_at LIMIT $1 FOR UPDATE SKIP LOCKED) c
      WHERE e.tenant_id = c.tenant_id AND e.id = c.id
      RETURNING e.tenant_id, e.id, e.type`,
    [limit],
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, id: r.id, type: r.type }));
}

/**
 * Marks claimed events fanned out without a fan-out job: the ones nobody is to hear of (the
 * dispatcher found no rule and no subscriber for them), in its claiming transaction.
 */
export async function markFannedOutClaimed(
  sys: SystemTx,
  events: { tenantId: string; id: string }[],
): Promise<void> {
  if (events.length === 0) return;
  await sys.query(
    `UPDATE events e SET fanned_out_at = now()
       FROM unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, id)
      WHERE e.tenant_id = x.tenant_id AND e.id = x.id AND e.fanned_out_at IS NULL`,
    [events.map((e) => e.tenantId), events.map((e) => e.id)],
  );
}

/** Locks an event for its fan-out (a second run of the same job waits, then sees it fanned out). */
export async function lockEvent(tx: TenantTx, id: string): Promise<StoredEvent | undefined> {
  const { rows } = await tx.query<EventRow>(
    `SELECT tenant_id, id, type, occurred_at, ticket_id, mailbox_id, actor_id, urgent, data, fanned_out_at
       FROM events WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
    [tx.tenantId, id],
  );
  return rows[0] ? toEvent(rows[0]) : undefined;
}

/**
 * Hands an event back to the dispatcher (its fan-out job failed for good): it is dispatched again
 * at the next pass, so a failure that passes (a long outage) loses nothing.
 */
export async function redispatchEvent(tx: TenantTx, id: string): Promise<void> {
  await tx.query(
    'UPDATE events SET dispatched_at = NULL WHERE tenant_id = $1 AND id = $2 AND fanned_out_at IS NULL',
    [tx.tenantId, id],
  );
}

export async function markFannedOut(tx: TenantTx, id: string): Promise<void> {
  await tx.query('UPDATE events SET fanned_out_at = now() WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
}

/**
 * Drops fanned-out events older than `before` (housekeeping; the ledger keeps what was sent): tenant
 * by tenant, in batches, each its own short transaction on the (tenant_id, occurred_at) index, so
 * a large backlog never becomes one long delete. Answers how many.
 */
export async function dropOldEvents(pool: Pool, before: Date, batch = 5000): Promise<number> {
  const { rows: tenants } = await withSystemRead(pool, (sys) =>
    sys.query<{ id: string }>('SELECT id FROM tenants ORDER BY id'),
  );
  let total = 0;
  for (const { id } of tenants)
    for (;;) {
      const { rowCount } = await withTenant(pool, id, (tx) =>
        tx.query(
          `DELETE FROM events WHERE tenant_id = $1 AND id IN (
             SELECT id FROM events WHERE tenant_id = $1 AND occurred_at < $2 AND fanned_out_at IS NOT NULL
              LIMIT $3)`,
          [id, before, batch],
        ),
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < batch) break;
    }
  return total;
}

/**
 * The statement part that records `ticket.created` (and `ticket.assigned` for a ticket created with
 * an assignee) for tickets created by a statement that must stay one statement (tickets/create.ts:
 * it may run in a statement-at-a-time scope). `from` names the rows (with `tenant_id`, `id` and
 * `assignee_id` of the ticket under the alias `ticket`), `actor` the expression of who created them.
 * Used as a data-modifying WITH item.
 */
export const ticketCreatedEventsSql = (from: string, actor: string): string =>
  `INSERT INTO events (tenant_id, id, type, occurred_at, ticket_id, actor_id, data)
   SELECT ticket.tenant_id, gen_random_uuid(), e.type, clock_timestamp(), ticket.id, ${actor},
          CASE WHEN e.type = 'ticket.assigned' THEN jsonb_build_object('from', NULL, 'to', ticket.assignee_id)
               ELSE '{}'::jsonb END
     FROM ${from},
          LATERAL unnest(CASE WHEN ticket.assignee_id IS NULL THEN ARRAY['ticket.created']
                              ELSE ARRAY['ticket.created', 'ticket.assigned'] END) AS e (type)`;
