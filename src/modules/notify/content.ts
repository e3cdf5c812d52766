// What a notification says: built once per event from the event and the ticket as it is at fan-out,
// channel-neutral (channel.ts NotificationContent); each channel renders it its own way.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { StoredEvent } from '../events/events.ts';
import type { NotificationContent, NotificationTicket } from './channel.ts';

interface TicketContextRow {
  id: string;
  number: string;
  subject: string;
  status: string;
  priority: string;
  requester_id: string;
  requester_name: string;
  requester_email: string | null;
  assignee_id: string | null;
  assignee_name: string | null;
  sla_state: string | null;
  sla_due_at: string | null;
}

/** The ticket as a notification shows it (undefined when it was deleted meanwhile). */
export async function ticketContext(tx: TenantTx, ticketId: string): Promise<NotificationTicket | undefined> {
  const { rows } = await tx.query<TicketContextRow>(
    `SELECT t.id, 'T-' || t.number AS number, t.subject, t.status, t.priority,
            t.requester_id, r.display_name AS requester_name,
            (SELECT e.address FROM person_emails e
              WHERE e.tenant_id = t.tenant_id AND e.person_id = t.requester_id AND e.is_primary) AS requester_email,
            t.assignee_id, a.display_name AS assignee_name, s.state AS sla_state, s.next_due_at AS sla_due_at
       FROM tickets t
       JOIN people r ON r.tenant_id = t.tenant_id AND r.id = t.requester_id
       LEFT JOIN people a ON a.tenant_id = t.tenant_id AND a.id = t.assignee_id
       LEFT JOIN sla_ticket_state s ON s.tenant_id = t.tenant_id AND s.ticket_id = t.id
      WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL`,
    [tx.tenantId, ticketId],
  );
  const r = rows[0];
  if (!r) return undefined;
  const slaState =
    r.sla_state === 'breached'
      ? 'breached'
      : r.sla_state === 'paused'
        ? 'paused'
        : r.sla_state
          ? 'running'
          : null;
  return {
    id: r.id,
    number: r.number,
    subject: r.subject,
    status: r.status,
    priority: r.priority,
    requester: { id: r.requester_id, name: r.requester_name, email: r.requester_email },
    assignee: r.assignee_id ? { id: r.assignee_id, name: r.assignee_name ?? '' } : null,
    sla:
      slaState === null || r.sla_state === 'fulfilled'
        ? null
        : {
            metric: 'next',
            dueAt: r.sla_due_at === null ? null : new Date(r.sla_due_at).toISOString(),
            state: slaState,
          },
  };
}

const str = (v: unknown, fallback = ''): string =>
  typeof v === 'string' || typeof v === 'number' ? String(v) : fallback;

function titleOf(event: StoredEvent, ticket: NotificationTicket | null, assigned?: string): string {
  const d = event.data;
  const t = ticket ? ticket.number : 'A ticket';
  switch (event.type) {
    case 'ticket.created':
      return `${t} opened: ${ticket?.subject ?? ''}`.trim();
    case 'ticket.assigned':
      // The person the assignment named, also when the ticket was reassigned before fan-out.
      if (assigned !== undefined) return `${t} assigned to ${assigned}`;
      return ticket?.assignee ? `${t} assigned to ${ticket.assignee.name}` : `${t} unassigned`;
    case 'ticket.customer_replied':
      return `${ticket?.requester?.name ?? 'The customer'} replied on ${t}`;
    case 'ticket.status_changed':
      return `${t} is now ${str(d['to'], ticket?.status ?? '')}`;
    case 'sla.threshold':
      return `${t} reached ${str(d['percent'])}% of its ${str(d['metric'], 'SLA')} target`;
    case 'sla.breached':
      return `${t} breached its ${str(d['metric'], 'SLA')} target`;
    case 'sla.escalated':
      return `${t} escalated: ${str(d['metric'], 'SLA')} at ${str(d['percent'])}%`;
    case 'mailbox.health_changed':
      return `Mailbox ${str(d['address'], 'unknown')} is ${str(d['status'], 'changed')}`;
    case 'delivery.failed':
      return `A ${str(d['channel'], '')} delivery to ${str(d['destination'], 'a destination')} failed`.replace(
        '  ',
        ' ',
      );
    case 'notification.test':
      return 'Test notification from Relaydesk';
  }
}

function textOf(event: StoredEvent, ticket: NotificationTicket | null): string {
  const d = event.data;
  const lines: string[] = [];
  if (ticket) {
    lines.push(`${ticket.number} · ${ticket.subject}`);
    lines.push(`Status ${ticket.status} · priority ${ticket.priority}`);
    if (ticket.requester)
      lines.push(
        `Requester: ${ticket.requester.name}${ticket.requester.email ? ` <${ticket.requester.email}>` : ''}`,
      );
    lines.push(`Assignee: ${ticket.assignee?.name ?? 'nobody'}`);
    if (ticket.sla)
      lines.push(`SLA: ${ticket.sla.state}${ticket.sla.dueAt ? `, due ${ticket.sla.dueAt}` : ''}`);
  }
  if (event.type === 'mailbox.health_changed' && d['error']) lines.push(`Error: ${str(d['error'])}`);
  if (event.type === 'delivery.failed' && d['error']) lines.push(`Error: ${str(d['error'])}`);
  if (event.type === 'notification.test') lines.push('This is a sample sent by a notification rule test.');
  return lines.join('\n');
}

/**
 * The content of an event. `assigned`: of a ticket.assigned event, the name of the person it
 * assigned when that is no longer the ticket's assignee.
 */
export function buildContent(
  event: StoredEvent,
  given: NotificationTicket | null,
  assigned?: string,
): NotificationContent {
  // An SLA event names its metric; the ticket's summary knows only its next due time.
  const metric = event.data['metric'];
  const ticket =
    given?.sla && typeof metric === 'string' ? { ...given, sla: { ...given.sla, metric } } : given;
  return {
    eventId: event.id,
    type: event.type,
    occurredAt: event.occurredAt.toISOString(),
    urgent: event.urgent,
    title: titleOf(event, ticket, assigned),
    text: textOf(event, ticket),
    ticket,
    data: event.data,
  };
}
