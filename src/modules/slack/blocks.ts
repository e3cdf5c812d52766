// A notification as a Slack message: Block Kit (a header with the title, a section with the ticket,
// the text, a context line with the event and its time) and the plain `text` Slack shows where
// blocks are not (notifications, previews, screen readers).
//
// Everything from outside (a subject, a requester's name) is escaped for Slack's markup: `&`, `<`
// and `>` are its control characters, so a subject of "<!channel>" shows as text and pings nobody.
// Lengths are kept under Block Kit's limits (header 150, section text 3000, field 2000), which Slack
// would otherwise refuse (invalid_blocks) rather than cut.
import type { NotificationContent, NotificationTicket } from '../notify/channel.ts';

export const MAX_HEADER = 150;
export const MAX_SECTION = 3000;
export const MAX_FIELD = 2000;
/** The fallback text; Slack cuts messages past 40,000 characters, and a notification needs far fewer. */
export const MAX_FALLBACK = 3000;

export type SlackBlock = Record<string, unknown>;

export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

/** Escapes Slack's control characters (its documented three). */
export const escapeSlack = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Cuts to `max` characters with an ellipsis, never through an escape (&amp;) or a surrogate pair. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max - 1);
  cut = cut.replace(/&[a-z]{0,3}$/, '');
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/** Markup-safe and within `max`. */
const safe = (text: string, max: number) => clip(escapeSlack(text), max);

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/** A time Slack shows in the reader's own time zone, with the UTC instant as its fallback. */
function slackDate(iso: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return escapeSlack(iso);
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} {time}|${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC>`;
}

function slaText(sla: NonNullable<NotificationTicket['sla']>): string {
  const metric = escapeSlack(sla.metric.replace(/_/g, ' '));
  if (sla.state === 'breached') return `:rotating_light: Breached (${metric})`;
  if (sla.state === 'paused') return `Paused (${metric})`;
  return sla.dueAt ? `Running (${metric}), due ${slackDate(sla.dueAt)}` : `Running (${metric})`;
}

function ticketSection(ticket: NotificationTicket): SlackBlock {
  const requester = ticket.requester
    ? ticket.requester.email
      ? `${ticket.requester.name} (${ticket.requester.email})`
      : ticket.requester.name
    : '—';
  const field = (label: string, value: string) => ({
    type: 'mrkdwn',
    text: clip(`*${label}*\n${value}`, MAX_FIELD),
  });
  const fields = [
    field('Requester', escapeSlack(oneLine(requester)) || '—'),
    field('Status', escapeSlack(ticket.status)),
    field('Priority', escapeSlack(ticket.priority)),
    field('SLA', ticket.sla ? slaText(ticket.sla) : '—'),
  ];
  if (ticket.assignee) fields.push(field('Assignee', escapeSlack(oneLine(ticket.assignee.name))));
  return {
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: clip(`*${escapeSlack(ticket.number)}*  ${escapeSlack(oneLine(ticket.subject))}`, MAX_SECTION),
    },
    fields,
  };
}

export function slackMessage(content: NotificationContent): SlackMessage {
  const title = oneLine(content.title) || 'Notification';
  const blocks: SlackBlock[] = [
    // plain_text is shown as written: no markup to escape.
    { type: 'header', text: { type: 'plain_text', text: clip(title, MAX_HEADER), emoji: false } },
  ];
  if (content.ticket) blocks.push(ticketSection(content.ticket));
  if (content.text.trim() !== '')
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: safe(content.text.trim(), MAX_SECTION) } });
  const context = [escapeSlack(content.type), slackDate(content.occurredAt)];
  if (content.urgent) context.push('*urgent*');
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] });

  const lines = [title];
  if (content.ticket) lines.push(`${content.ticket.number} ${oneLine(content.ticket.subject)}`);
  if (content.text.trim() !== '') lines.push(content.text.trim());
  return { text: safe(lines.join('\n'), MAX_FALLBACK), blocks };
}
