// The batch form of createTicket and appendMessage, for inbound mail: a batch of messages becomes a
// fixed number of multi-row statements instead of a handful per message. It applies the same rules
// (rules.ts) in the same order and must end exactly where the operations applied one by one end
// (batch.test.ts compares the two on the same script).
import type { TenantTx } from '../../platform/db/tx.ts';
import { recordStatusChanges, type StatusTransition } from './changes.ts';
import { type NewEvent, recordEvents } from '../events/events.ts';
import { insertMessages, isCustomerReply, type MessageToInsert, type NewMessage } from './messages.ts';
import { checkSubject, checkText, type TicketStatus } from './model.ts';
import { type AuthorKind, directionOf, statusAfterMessage } from './rules.ts';
import { wakeTickets } from './wakeups.ts';

export type TicketBatchOp =
  | {
      kind: 'create';
      ticketId: string;
      subject: string;
      requesterId: string;
      /** Recorded in the status history as who created it. */
      actorId: string;
      /** The first message, by the requester (inbound, whoever the requester is). */
      message: Omit<NewMessage, 'authorId' | 'visibility' | 'automatic'> & { id: string };
    }
  | {
      kind: 'append';
      ticketId: string;
      message: NewMessage & { id: string; authorKind: AuthorKind };
    };

/** A ticket an append names is gone (deleted meanwhile): nothing of the batch was kept. */
export class TicketUnavailable extends Error {
  readonly ticketIds: string[];
  constructor(ticketIds: string[]) {
    super(`tickets no longer available: ${ticketIds.join(', ')}`);
    this.name = 'TicketUnavailable';
    this.ticketIds = ticketIds;
  }
}

/**
 * Applies the operations in order in the caller's transaction; returns the number of each ticket
 * created. The existing tickets are locked first (in id order), and their statuses are decided
 * from the locked rows, so a change committed meanwhile is never overwritten.
 */
export async function applyTicketBatch(tx: TenantTx, ops: TicketBatchOp[]): Promise<Map<string, number>> {
  const created = new Set(ops.filter((o) => o.kind === 'create').map((o) => o.ticketId));
  const existing = [...new Set(ops.map((o) => o.ticketId).filter((id) => !created.has(id)))].sort();
  const status = new Map<string, TicketStatus>();
  if (existing.length > 0) {
    const { rows } = await tx.query<{ id: string; status: TicketStatus }>(
      `SELECT id, status FROM tickets WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL
        ORDER BY id FOR UPDATE`,
      [tx.tenantId, existing],
    );
    for (const r of rows) status.set(r.id, r.status);
    const gone = existing.filter((id) => !status.has(id));
    if (gone.length > 0) throw new TicketUnavailable(gone);
  }

  const creates: Extract<TicketBatchOp, { kind: 'create' }>[] = [];
  const messages: MessageToInsert[] = [];
  const transitions: StatusTransition[] = [];
  const events: NewEvent[] = [];
  const touched = new Set<string>();
  const woken = new Set<string>();
  for (const op of ops) {
    if (op.kind === 'create') {
      creates.push(op);
      status.set(op.ticketId, 'new');
      messages.push({
        ...op.message,
        text: checkText(op.message.text, '/text'),
        ticketId: op.ticketId,
        authorId: op.requesterId,
        visibility: 'public',
        direction: 'inbound',
      });
      woken.add(op.ticketId);
      events.push({ type: 'ticket.created', ticketId: op.ticketId, actorId: op.actorId });
      continue;
    }
    const m = op.message;
    const current = status.get(op.ticketId)!;
    const next = statusAfterMessage(current, {
      authorKind: m.authorKind,
      visibility: m.visibility,
      automatic: m.automatic ?? false,
    });
    if (next) {
      transitions.push({ ticketId: op.ticketId, from: current, to: next, by: m.authorId });
      status.set(op.ticketId, next);
      events.push({
        type: 'ticket.status_changed',
        ticketId: op.ticketId,
        actorId: m.authorId,
        data: { from: current, to: next, messageId: m.id },
      });
    }
    messages.push({
      ...m,
      text: checkText(m.text, '/text'),
      ticketId: op.ticketId,
      direction: directionOf(m.authorKind),
    });
    touched.add(op.ticketId);
    if (m.visibility === 'public') woken.add(op.ticketId);
    if (isCustomerReply(m.authorKind, m))
      events.push({
        type: 'ticket.customer_replied',
        ticketId: op.ticketId,
        actorId: m.authorId,
        data: { messageId: m.id },
      });
  }

  // The writes go out one behind the other without waiting for each answer (pipelining), in an
  // order that satisfies the keys: tickets, then their messages.
  const sent: Promise<unknown>[] = [];
  const numbers = new Map<string, number>();
  if (creates.length > 0) {
    // The counter row is updated by the statement that creates the tickets: numbers are taken if
    // and only if the tickets are. Created in the batch's order (clock_timestamp() per row).
    sent.push(
      tx
        .query<{ id: string; number: number }>(
          `WITH n AS (
             INSERT INTO ticket_counters AS c (tenant_id, last_number) VALUES ($1, $6)
             ON CONFLICT (tenant_id) DO UPDATE SET last_number = c.last_number + $6
             RETURNING last_number
           ), x AS (
             SELECT x.*, clock_timestamp() AS at, n.last_number - $6 + x.ord AS number
               FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::uuid[]) WITH ORDINALITY AS x(id, subject, requester_id, actor_id, ord), n
           ), t AS (
             INSERT INTO tickets (tenant_id, id, number, subject, priority, requester_id, created_at, updated_at)
             SELECT $1, id, number, subject, 'normal', requester_id, at, at FROM x ORDER BY ord
             RETURNING tenant_id, id, number, status, created_at
           ), h AS (
             INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
             SELECT t.tenant_id, t.id, NULL, t.status, t.created_at, x.actor_id FROM t JOIN x ON x.id = t.id ORDER BY x.ord
           )
           SELECT id, number FROM t`,
          [
            tx.tenantId,
            creates.map((c) => c.ticketId),
            creates.map((c) => checkSubject(c.subject)),
            creates.map((c) => c.requesterId),
            creates.map((c) => c.actorId),
            creates.length,
          ],
        )
        .then(({ rows }) => {
          if (rows.length !== creates.length) throw new Error(`tenant ${tx.tenantId} has no ticket counter`);
          for (const r of rows) numbers.set(r.id, Number(r.number));
        }),
    );
  }
  if (touched.size > 0) {
    const ids = [...touched].sort();
    sent.push(
      tx.query(
        `UPDATE tickets t SET status = x.status, updated_at = clock_timestamp()
           FROM unnest($2::uuid[], $3::text[]) AS x(id, status)
          WHERE t.tenant_id = $1 AND t.id = x.id`,
        [tx.tenantId, ids, ids.map((id) => status.get(id))],
      ),
    );
  }
  sent.push(recordStatusChanges(tx, transitions));
  sent.push(insertMessages(tx, messages));
  sent.push(wakeTickets(tx, [...woken]));
  sent.push(recordEvents(tx, events));
  await Promise.all(sent);
  return numbers;
}
