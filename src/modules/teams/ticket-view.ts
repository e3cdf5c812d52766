// A ticket as a card shows it (the notification's ticket shape), read fresh after an action, and
// tickets named by number in a command ("T-12").
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import type { NotificationTicket } from '../notify/channel.ts';
import { getPerson } from '../people/service.ts';
import { ticketSla } from '../sla/ticket-sla.ts';
import { getTicket } from '../tickets/queries.ts';
import { ticketNumber } from '../tickets/model.ts';

/** The id of the tenant's ticket "T-12" (or "12"). */
export async function ticketIdByNumber(tx: TenantTx, reference: string): Promise<string> {
  const n = /^(?:T-)?(\d{1,15})$/i.exec(reference.trim())?.[1];
  if (!n) throw notFound(`ticket ${reference.slice(0, 20)}`);
  const { rows } = await tx.query<{ id: string }>(
    'SELECT id FROM tickets WHERE tenant_id = $1 AND number = $2 AND deleted_at IS NULL',
    [tx.tenantId, n],
  );
  if (!rows[0]) throw notFound(`ticket ${ticketNumber(Number(n))}`);
  return rows[0].id;
}

/** The ticket with its people and its most urgent SLA clock, at `now`. */
export async function ticketView(tx: TenantTx, ticketId: string, now: Date): Promise<NotificationTicket> {
  const ticket = await getTicket(tx, ticketId);
  const requester = await getPerson(tx, ticket.requesterId).catch(() => undefined);
  const assignee = ticket.assigneeId
    ? await getPerson(tx, ticket.assigneeId).catch(() => undefined)
    : undefined;
  let sla: NotificationTicket['sla'] = null;
  try {
    const clocks = await ticketSla(tx, ticketId, Math.floor(now.getTime() / 1000));
    // The clock's `active` is the card's `running`.
    const states = [
      ['breached', 'breached'],
      ['active', 'running'],
      ['paused', 'paused'],
    ] as const;
    for (const [status, state] of states) {
      const clock = clocks.metrics.find((m) => m.status === status);
      if (clock) {
        sla = { metric: clock.metric, dueAt: clock.dueAt, state };
        break;
      }
    }
  } catch {
    // A card without its SLA line beats no card.
  }
  return {
    id: ticket.id,
    number: ticket.number,
    subject: ticket.subject,
    status: ticket.status,
    priority: ticket.priority,
    requester: requester ? { id: requester.id, name: requester.displayName, email: requester.email } : null,
    assignee: assignee ? { id: assignee.id, name: assignee.displayName } : null,
    sla,
  };
}
