// An agent's public message leaves as email (DESIGN §5.4). Everything about the mail is decided when
// the message is written, in its transaction: the mailbox it goes through, the recipients, the
// subject with the ticket's tag, the signed Message-ID and the conversation's References, the body
// with signature and quote. The ledger row holding it (`queued`) and its job commit with the
// message, so a rolled-back message sends nothing and a committed one is sent even if the process
// dies the next instant.
import type { TenantTx } from '../../platform/db/tx.ts';
import { escapeHtml } from '../../platform/html.ts';
import { AppError, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { conversationMailbox, isOwnAddress, type Mailbox, mailboxAddresses } from '../inbound/mailboxes.ts';
import { signedMessageId } from '../inbound/signing.ts';
import { assertEmail, getPerson, normalizeEmail, type Person } from '../people/service.ts';
import {
  appendMessage,
  attachMail,
  getMessage,
  type NewAttachment,
  type ThreadMessage,
  threadMessages,
  ticketParticipants,
} from '../tickets/messages.ts';
import type { SafeHtml, Ticket, TicketMessage, Visibility } from '../tickets/model.ts';
import { getTicket } from '../tickets/queries.ts';
import {
  type ComposedMail,
  firstAttempt,
  messageDeliveries,
  queueDelivery,
  recordSkipped,
  retryDelivery,
} from './ledger.ts';
import type { DeliveryRow, EmailPayload, MailAddress } from './model.ts';
import { outboundSendJob } from './job-refs.ts';
import { signatureFor } from './signature.ts';

/**
 * The messages with the delivery of their mail filled in from the ledger: an agent's public messages
 * (the ones that leave as mail); the others have none.
 */
export async function withDeliveries(tx: TenantTx, messages: TicketMessage[]): Promise<TicketMessage[]> {
  const mailed = messages.filter((m) => m.direction === 'outbound' && m.visibility === 'public');
  const deliveries = await messageDeliveries(tx, mailed);
  return messages.map((m) =>
    m.direction === 'outbound' && m.visibility === 'public'
      ? { ...m, delivery: deliveries.get(m.id) ?? null }
      : m,
  );
}

const withDelivery = async (tx: TenantTx, message: TicketMessage): Promise<TicketMessage> =>
  (await withDeliveries(tx, [message]))[0]!;

export interface OutboundDeps {
  /** Key of the signed Message-IDs (inbound/signing.ts messageIdKey). */
  messageIdKey: Buffer;
  queue: Pick<JobQueue, 'send'>;
}

/** What making a mail needs (no queue: the caller queues). */
export type MailDeps = Pick<OutboundDeps, 'messageIdKey'>;

export interface PostMessageInput {
  ticketId: string;
  authorId: string;
  visibility: Visibility;
  text: string;
  html?: SafeHtml | undefined;
  cc?: string[] | undefined;
  bcc?: string[] | undefined;
  /** The mailbox to send through (else the conversation's). */
  mailboxId?: string | undefined;
  attachments?: NewAttachment[] | undefined;
  /** Collision detection: the newest message the author had seen (tickets/messages.ts appendMessage). */
  seenMessageId?: string | undefined;
}

/** References kept on a reply (the newest); long threads would otherwise grow the header without end. */
const MAX_REFERENCES = 20;
const QUOTE_LIMIT = 20_000;

const bracket = (id: string) => `<${id}>`;

/** The subject of mail about a ticket: `Re: <subject> <tag>`, the tag once. */
export function replySubject(ticket: Ticket, tagFormat: string, prefix = 'Re: '): string {
  const tag = tagFormat.replace('{number}', ticket.number);
  const base = ticket.subject.replace(/[\r\n]+/g, ' ').trim();
  const withPrefix = /^(re|aw|sv|antw):/i.test(base) || prefix === '' ? base : `${prefix}${base}`;
  return (withPrefix.includes(tag) ? withPrefix : `${withPrefix} ${tag}`).slice(0, 998);
}

/** Reply-To: the mailbox, plus-addressed with the ticket where the mailbox allows it. */
export function replyToAddress(mailbox: Mailbox, ticket: Ticket): string {
  if (!mailbox.settings.outbound.plusAddressing) return mailbox.address;
  const at = mailbox.address.lastIndexOf('@');
  return `${mailbox.address.slice(0, at)}+${ticket.number}${mailbox.address.slice(at)}`;
}

/** The Message-ID of mail about the ticket, signed so that an answer threads back (rule 1). */
export function newMessageId(
  deps: { messageIdKey: Buffer },
  tenantId: string,
  ticketId: string,
  mailbox: Mailbox,
): string {
  const domain = mailbox.address.slice(mailbox.address.lastIndexOf('@') + 1);
  return signedMessageId(deps.messageIdKey, tenantId, ticketId, domain, uuidv7().replace(/-/g, ''));
}

/** In-Reply-To (the customer's latest message, else the latest) and References (oldest first). */
export function threadHeaders(thread: ThreadMessage[]): { inReplyTo: string | null; references: string[] } {
  const ids = thread.filter((m) => m.rfcMessageId);
  const lastInbound = [...ids].reverse().find((m) => m.direction === 'inbound');
  const parent = lastInbound ?? ids[ids.length - 1];
  return {
    inReplyTo: parent ? bracket(parent.rfcMessageId!) : null,
    references: ids.slice(-MAX_REFERENCES).map((m) => bracket(m.rfcMessageId!)),
  };
}

/** The customer's last message, quoted (text and HTML), or nothing. */
function quoteOf(thread: ThreadMessage[]): { text: string; html: string } | undefined {
  const last = [...thread].reverse().find((m) => m.direction === 'inbound');
  if (!last) return undefined;
  const body = (last.replyText ?? last.text).slice(0, QUOTE_LIMIT).trimEnd();
  const who = last.from ?? 'you';
  const when = new Date(last.createdAt).toUTCString();
  const intro = `On ${when}, ${who} wrote:`;
  return {
    text: `${intro}\n${body
      .split('\n')
      .map((l) => `> ${l}`)
      .join('\n')}`,
    html: `<p>${escapeHtml(intro)}</p><blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">${escapeHtml(body).replace(/\n/g, '<br>')}</blockquote>`,
  };
}

function checkAddresses(list: string[] | undefined, path: string): string[] {
  return (list ?? []).map((a, i) => normalizeEmail(assertEmail(a, `${path}/${i}`)));
}

const person = (p: Person): MailAddress => ({ address: p.email!, name: p.displayName });

/**
 * Adds a message to a ticket; an agent's public message also queues its mail (see the top of this
 * file), recorded `skipped` with the reason when it cannot be sent (no mailbox, no address).
 */
export async function postTicketMessage(
  tx: TenantTx,
  deps: OutboundDeps,
  input: PostMessageInput,
): Promise<TicketMessage> {
  const cc = checkAddresses(input.cc, '/cc');
  const bcc = checkAddresses(input.bcc, '/bcc');
  const author = await getPerson(tx, input.authorId);
  const outbound = input.visibility === 'public' && author.kind === 'agent';
  if (!outbound) {
    if (cc.length > 0 || bcc.length > 0 || input.mailboxId)
      throw validation('cc, bcc and mailboxId apply to a public message of an agent only', [
        { path: cc.length > 0 ? '/cc' : bcc.length > 0 ? '/bcc' : '/mailboxId', message: 'not sent by mail' },
      ]);
    return withDelivery(tx, await appendMessage(tx, { ...input, id: uuidv7() }));
  }
  const ticket = await getTicket(tx, input.ticketId);
  const mailbox = await conversationMailbox(tx, ticket.id, input.mailboxId);
  const thread = await threadMessages(tx, { ticketId: ticket.id, limit: 50 });
  const id = uuidv7();
  if (!mailbox) {
    const message = await appendMessage(tx, { ...input, id });
    const skipped = await recordSkipped(tx, {
      channel: 'email',
      purpose: 'reply',
      destination: '',
      ticketId: ticket.id,
      ticketMessageId: id,
      mailboxId: null,
      rfcMessageId: null,
      payload: {},
      reason: 'no_mailbox',
    });
    return { ...message, delivery: firstAttempt(skipped, 'skipped') };
  }

  const rfcMessageId = newMessageId(deps, tx.tenantId, ticket.id, mailbox);
  const { to, ccList, payload } = await composeReply(tx, deps, {
    ticket,
    author,
    mailbox,
    thread,
    rfcMessageId,
    text: input.text,
    html: input.html ?? null,
    cc,
    bcc,
  });

  if (mailbox.kind === 'graph') checkGraphSize(payload, input.attachments ?? []);

  const message = await appendMessage(tx, {
    ...input,
    id,
    rfcMessageId,
    mail: {
      from: mailbox.address,
      to,
      cc: ccList,
      subject: payload.subject,
      replyText: null,
      classification: {},
    },
    // Whom the agent copied stays in the conversation: later replies copy them too, and their
    // answers may use the ticket's tag. (Bcc stays hidden: it is not kept.)
    participants: ccList.map((a) => a.address),
  });
  const delivery = {
    channel: 'email' as const,
    purpose: 'reply' as const,
    destination: to[0]?.address ?? '',
    ticketId: ticket.id,
    ticketMessageId: id,
    mailboxId: mailbox.id,
    rfcMessageId,
  };
  let attempt;
  if (to.length === 0) {
    attempt = firstAttempt(
      await recordSkipped(tx, { ...delivery, payload: {}, reason: 'no_recipient' }),
      'skipped',
    );
  } else {
    const deliveryId = await queueDelivery(tx, { ...delivery, payload });
    await deps.queue.send(outboundSendJob, { tenantId: tx.tenantId, deliveryId }, { tx });
    attempt = firstAttempt(deliveryId, 'queued');
  }
  // The message as appendMessage read it back: what follows writes the ledger and the queue only.
  return { ...message, delivery: attempt };
}

/** Graph answers 413 to a sendMail request over 4 MB ("the maximum request length supported"). */
export const GRAPH_SEND_LIMIT = 4 * 1024 * 1024;

const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4;

/**
 * Refuses, before anything is written, a reply that Graph would refuse to send: the request is the
 * base64 of the MIME, which carries the attachments in base64 (estimated generously, with room for
 * the headers and the MIME parts' own lines).
 */
function checkGraphSize(payload: EmailPayload, attachments: { content: Buffer }[]): void {
  const body = Buffer.byteLength(payload.text) + Buffer.byteLength(payload.html ?? '');
  const files = attachments.reduce((sum, a) => sum + base64Length(a.content.length) * 1.03, 0);
  const estimate = base64Length(16 * 1024 + body * 1.1 + files);
  if (estimate > GRAPH_SEND_LIMIT)
    throw new AppError(
      'payload_too_large',
      `Microsoft 365 sends a message of at most 4 MB with its attachments in base64 (about 2.2 MB of ` +
        `files); this reply would be about ${(estimate / 1024 / 1024).toFixed(1)} MB: send fewer or ` +
        'smaller files, or a link to them',
    );
}

/**
 * The mail of an agent's reply (see the top of this file): recipients (the requester, else the first
 * participant, then the participants and `cc` in Cc; never one of our own addresses, nor the author),
 * the subject with the ticket's tag, the body with the signature and the quoted customer message,
 * and the threading headers from `thread` (the public messages before this one).
 */
async function composeReply(
  tx: TenantTx,
  deps: MailDeps,
  input: {
    ticket: Ticket;
    author: Person;
    mailbox: Mailbox;
    thread: ThreadMessage[];
    rfcMessageId: string;
    text: string;
    html: string | null;
    cc: string[];
    bcc: string[];
  },
): Promise<{ to: MailAddress[]; ccList: MailAddress[]; payload: EmailPayload }> {
  const { ticket, author, mailbox, thread, rfcMessageId } = input;
  const own = await mailboxAddresses(tx);
  const requester = await getPerson(tx, ticket.requesterId);
  const requesterAddresses = new Set(requester.emails.map((e) => normalizeEmail(e.address)));
  const to: MailAddress[] = requester.email && !isOwnAddress(own, requester.email) ? [person(requester)] : [];
  const taken = new Set([...requesterAddresses]);
  const ccList: MailAddress[] = [];
  for (const a of [...(await ticketParticipants(tx, ticket.id)), ...input.cc]) {
    if (taken.has(a) || isOwnAddress(own, a) || normalizeEmail(author.email ?? '') === a) continue;
    taken.add(a);
    ccList.push({ address: a, name: '' });
  }
  const bccList: MailAddress[] = [];
  for (const a of input.bcc) {
    if (taken.has(a) || isOwnAddress(own, a)) continue;
    taken.add(a);
    bccList.push({ address: a, name: '' });
  }
  // Without the requester's address the first Cc is who the mail is for.
  if (to.length === 0 && ccList.length > 0) to.push(ccList.shift()!);

  const { inReplyTo, references } = threadHeaders(thread);
  const subject = replySubject(ticket, mailbox.settings.outbound.subjectTag);
  const signature = await signatureFor(tx, { author, ticket, requester, mailbox });
  const quote = mailbox.settings.outbound.quoteHistory ? quoteOf(thread) : undefined;
  const text = [input.text.trimEnd(), signature ? `-- \n${signature.text}` : null, quote?.text ?? null]
    .filter((p) => p !== null)
    .join('\n\n');
  const html = input.html
    ? [input.html, signature?.html ? `<div>-- <br>${signature.html}</div>` : null, quote?.html ?? null]
        .filter((p) => p !== null)
        .join('\n')
    : null;
  const payload: EmailPayload = {
    from: { address: mailbox.address, name: mailbox.displayName ?? '' },
    replyTo: replyToAddress(mailbox, ticket),
    to,
    cc: ccList,
    bcc: bccList,
    subject,
    text,
    html,
    inReplyTo,
    references: [...references.filter((r) => r !== bracket(rfcMessageId))],
    automatic: false,
  };
  return { to, ccList, payload };
}

/**
 * The mail of a reply whose first attempt was skipped before its mail was made (no mailbox, no
 * recipient), made now for a retry: through the ticket's mailbox, to its requester and participants
 * (the Cc and Bcc the agent added were not kept), quoting what came before the reply. The message
 * gets its Message-ID and headers here if it had none. A validation error says why it still cannot go.
 */
export async function composeSkippedReply(
  tx: TenantTx,
  deps: MailDeps,
  latest: DeliveryRow,
): Promise<ComposedMail> {
  const cannot = (why: string) =>
    validation(`the reply still cannot be sent: ${why}`, [{ path: '/id', message: why }]);
  if (latest.purpose !== 'reply' || !latest.ticket_message_id || !latest.ticket_id)
    throw validation('a skipped delivery with nothing to send cannot be retried', [
      { path: '/id', message: `skipped: ${latest.skip_reason ?? 'no reason'}` },
    ]);
  const message = await getMessage(tx, latest.ticket_message_id);
  const ticket = await getTicket(tx, latest.ticket_id);
  // The mailbox the reply chose (no_recipient), while it exists; else the conversation's.
  const mailbox =
    (latest.mailbox_id
      ? await conversationMailbox(tx, ticket.id, latest.mailbox_id).catch(() => null)
      : null) ?? (await conversationMailbox(tx, ticket.id, undefined));
  if (!mailbox) throw cannot('the workspace has no mailbox to send it through');
  const author = await getPerson(tx, message.authorId);
  const thread = await threadMessages(tx, { ticketId: ticket.id, limit: 50, before: message });
  const rfcMessageId = message.messageId ?? newMessageId(deps, tx.tenantId, ticket.id, mailbox);
  const { to, ccList, payload } = await composeReply(tx, deps, {
    ticket,
    author,
    mailbox,
    thread,
    rfcMessageId,
    text: message.text,
    html: message.html,
    cc: [],
    bcc: [],
  });
  if (to.length === 0) throw cannot('the ticket has no address to send it to');
  await attachMail(tx, message.id, {
    rfcMessageId,
    mail: { from: mailbox.address, to, cc: ccList, subject: payload.subject },
  });
  return {
    destination: to[0]!.address,
    mailboxId: mailbox.id,
    rfcMessageId,
    payload: payload as unknown as Record<string, unknown>,
  };
}

/**
 * A person retries a delivery (the API and the CLI): ledger.ts retryDelivery, making a skipped
 * reply's mail. `deps` is asked for only then (the CLI reads the secret key for it).
 */
export function retryDeliveryWithMail(
  tx: TenantTx,
  deps: () => Promise<MailDeps>,
  id: string,
): Promise<DeliveryRow> {
  return retryDelivery(tx, id, async (latest) => composeSkippedReply(tx, await deps(), latest));
}
