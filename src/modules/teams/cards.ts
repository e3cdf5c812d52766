// Adaptive Cards (schema 1.4, what Teams renders with Universal Actions): the notification card
// with its ticket facts and buttons, and the small cards actions answer with. The buttons are
// Action.Execute with a verb and the ticket id; inputs of a ShowCard arrive merged into `data`.
import type { NotificationContent, NotificationTicket } from '../notify/channel.ts';
import { TICKET_STATUSES } from '../tickets/model.ts';

export const ADAPTIVE_CARD = 'application/vnd.microsoft.card.adaptive';

/** The verbs of the card's buttons, and the audit action each one is. */
export const CARD_VERBS = {
  assignToMe: 'assign_to_me',
  addNote: 'add_note',
  reply: 'reply',
  changeStatus: 'change_status',
} as const;

export type Card = Record<string, unknown>;

const card = (body: unknown[], actions: unknown[] = []): Card => ({
  type: 'AdaptiveCard',
  $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
  version: '1.4',
  body,
  ...(actions.length > 0 ? { actions } : {}),
});

const text = (value: string, extra: Record<string, unknown> = {}) => ({
  type: 'TextBlock',
  text: value,
  wrap: true,
  ...extra,
});

function slaLine(sla: NotificationTicket['sla']): string | null {
  if (!sla) return null;
  const metric = sla.metric.replace(/_/g, ' ');
  const due = sla.dueAt ? `, due ${sla.dueAt}` : '';
  return `${metric}: ${sla.state}${due}`;
}

function ticketFacts(ticket: NotificationTicket): unknown {
  const facts = [
    { title: 'Ticket', value: ticket.number },
    { title: 'Subject', value: ticket.subject },
    {
      title: 'Requester',
      value: ticket.requester
        ? `${ticket.requester.name}${ticket.requester.email ? ` <${ticket.requester.email}>` : ''}`
        : '—',
    },
    { title: 'Status', value: ticket.status },
    { title: 'Priority', value: ticket.priority },
    { title: 'Assignee', value: ticket.assignee?.name ?? 'unassigned' },
  ];
  const sla = slaLine(ticket.sla);
  if (sla) facts.push({ title: 'SLA', value: sla });
  return { type: 'FactSet', facts };
}

function ticketActions(ticketId: string): unknown[] {
  const data = { ticketId };
  const form = (title: string, verb: string, input: Record<string, unknown>) => ({
    type: 'Action.ShowCard',
    title,
    card: card([input], [{ type: 'Action.Execute', title, verb, data }]),
  });
  return [
    { type: 'Action.Execute', title: 'Assign to me', verb: 'assignToMe', data },
    form('Add note', 'addNote', {
      type: 'Input.Text',
      id: 'text',
      isMultiline: true,
      isRequired: true,
      placeholder: 'Internal note (agents only)',
    }),
    form('Reply', 'reply', {
      type: 'Input.Text',
      id: 'text',
      isMultiline: true,
      isRequired: true,
      placeholder: 'Reply to the requester (sent by email)',
    }),
    form('Change status', 'changeStatus', {
      type: 'Input.ChoiceSet',
      id: 'status',
      isRequired: true,
      choices: TICKET_STATUSES.map((s) => ({ title: s.replace('_', ' '), value: s })),
    }),
  ];
}

/** The card a notification is sent as. */
export function notificationCard(content: NotificationContent): Card {
  const body: unknown[] = [
    text(content.title, {
      weight: 'Bolder',
      size: 'Medium',
      ...(content.urgent ? { color: 'Attention' } : {}),
    }),
  ];
  if (content.text) body.push(text(content.text));
  if (content.ticket) body.push(ticketFacts(content.ticket));
  return card(body, content.ticket ? ticketActions(content.ticket.id) : []);
}

/** The card an action answers with: what happened, and the ticket as it is now. */
export function ticketCard(
  ticket: NotificationTicket,
  note: string,
  options: { attention?: boolean } = {},
): Card {
  return card(
    [
      text(note, { weight: 'Bolder', ...(options.attention ? { color: 'Attention' } : {}) }),
      ticketFacts(ticket),
    ],
    ticketActions(ticket.id),
  );
}

/** A card with a message only (a refusal, a failure). */
export function messageCard(message: string, options: { attention?: boolean } = {}): Card {
  return card([text(message, options.attention ? { color: 'Attention' } : {})]);
}
