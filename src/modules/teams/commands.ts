// What a Teams user can ask the bot, from a card's button (Action.Execute verb and data) or typed
// as a command in a message. Parsing only; actions.ts carries them out.
import { TICKET_STATUSES, type TicketStatus } from '../tickets/model.ts';

/** A ticket by id (a card's data) or by number as typed ("T-12"). */
export type TicketRef = { id: string } | { number: string };

export type TeamsCommand =
  | { kind: 'assign_to_me'; ticket: TicketRef }
  | { kind: 'add_note'; ticket: TicketRef; text: string }
  | { kind: 'reply'; ticket: TicketRef; text: string }
  | { kind: 'change_status'; ticket: TicketRef; status: TicketStatus | string }
  | {
      kind: 'create_ticket';
      subject: string;
      text: string | undefined;
      /** Of a message made a ticket: its author, when known as a person (else the caller asks). */
      requesterId?: string | undefined;
    }
  | { kind: 'help' };

export const HELP_TEXT = [
  'What I can do:',
  '- `ticket <subject>` (more lines: the description): create a ticket',
  '- `assign T-12`: assign the ticket to you',
  '- `note T-12 <text>`: add an internal note',
  '- `reply T-12 <text>`: reply to the requester by email',
  `- \`status T-12 <${TICKET_STATUSES.join('|')}>\`: change the status`,
].join('\n');

/** The text of a message as typed: without mentions of the bot, tags and entities. */
export function plainMessageText(text: string): string {
  return text
    .replace(/<at>[^<]*<\/at>/gi, ' ')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div)>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

const TICKET = '(T-\\d{1,15}|\\d{1,15})';

/** A command typed in a message, or undefined when the text is not one. */
export function parseCommand(raw: string): TeamsCommand | undefined {
  const text = plainMessageText(raw);
  let m: RegExpExecArray | null;
  if ((m = /^ticket\s+([^\n]+)(?:\n([\s\S]*))?$/i.exec(text))) {
    const rest = m[2]?.trim();
    return { kind: 'create_ticket', subject: m[1]!.trim(), text: rest ? rest : undefined };
  }
  if ((m = new RegExp(`^assign(?:\\s+to\\s+me)?\\s+${TICKET}$`, 'i').exec(text)))
    return { kind: 'assign_to_me', ticket: { number: m[1]! } };
  if ((m = new RegExp(`^note\\s+${TICKET}\\s+([\\s\\S]+)$`, 'i').exec(text)))
    return { kind: 'add_note', ticket: { number: m[1]! }, text: m[2]!.trim() };
  if ((m = new RegExp(`^reply\\s+${TICKET}\\s+([\\s\\S]+)$`, 'i').exec(text)))
    return { kind: 'reply', ticket: { number: m[1]! }, text: m[2]!.trim() };
  if ((m = new RegExp(`^status\\s+${TICKET}\\s+(\\S+)$`, 'i').exec(text)))
    return { kind: 'change_status', ticket: { number: m[1]! }, status: m[2]!.toLowerCase() };
  if (/^help$/i.test(text)) return { kind: 'help' };
  return undefined;
}

/** The command of an Action.Execute (verb and data, inputs included), or undefined for an unknown verb. */
export function commandOfAction(verb: unknown, data: unknown): TeamsCommand | undefined {
  const d = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  const ticketId = typeof d['ticketId'] === 'string' ? d['ticketId'] : '';
  const ticket = { id: ticketId };
  const str = (key: string) => (typeof d[key] === 'string' ? (d[key] as string) : '');
  switch (verb) {
    case 'assignToMe':
      return { kind: 'assign_to_me', ticket };
    case 'addNote':
      return { kind: 'add_note', ticket, text: str('text') };
    case 'reply':
      return { kind: 'reply', ticket, text: str('text') };
    case 'changeStatus':
      return { kind: 'change_status', ticket, status: str('status') };
    default:
      return undefined;
  }
}
