// Applying parsed messages, a batch of them in ONE transaction (DESIGN §3.2, §3.4): claim each
// message key, resolve the senders, thread, and write the tickets or comments with their
// attachments, participants, SLA wake-ups and the inbound outcomes. A message alone is a batch of one.
//
// The batch reads what it needs in a few set-based statements (keys, senders, threads), decides
// each message in order in memory exactly as if the messages had been applied one after another
// (a later message sees the tickets, keys, contacts and participants an earlier one made, and the
// ticket states it changed), then writes everything in a few multi-row statements: about fifteen
// statements for the whole batch instead of twenty per message. Keys are claimed first, in one
// sorted INSERT ... ON CONFLICT DO NOTHING, so a key taken by another transaction (or by an earlier
// message of the same batch) makes that message a duplicate before anything else is written for it.
// If any statement fails the caller rolls the whole batch back and applies its messages one by one.
import type { TenantTx } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { normalizeEmail } from '../people/service.ts';
import type { TicketStatus } from '../tickets/service.ts';
import { claimKeys, isOwnMail, keyOf, readContext, senderOf, takenKeys } from './lookups.ts';
import type { Mailbox } from './mailboxes.ts';
import { type ParsedMessage, subjectTicketNumber } from './mime.ts';
import { verifyMessageId } from './signing.ts';
import { type TicketState, Writes, writeBatch } from './store.ts';

export type InboundStatus =
  'queued' | 'processing' | 'created' | 'appended' | 'duplicate' | 'skipped' | 'failed' | 'quarantined';

export interface Outcome {
  status: InboundStatus;
  reason: string | null;
  ticketId: string | null;
  ticketNumber: string | null;
}

export interface ApplyItem {
  inboundId: string;
  mailbox: Mailbox;
  mail: ParsedMessage;
}

type Rule = 'signed_id' | 'message_id' | 'subject_tag' | 'bounce';

const numberText = (n: number | undefined) => (n === undefined ? null : `T-${n}`);

/** Applies the messages in order; returns one outcome per item. Items must have distinct inbound ids. */
export async function applyBatch(tx: TenantTx, messageIdKey: Buffer, items: ApplyItem[]): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = items.map(() => undefined);
  const w = new Writes();

  // 1. Claims. The first message of the batch with a key claims it; later ones with the same key
  //    are duplicates of that one, decided below once its outcome is known.
  const first = new Map<string, number>();
  items.forEach((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    if (!first.has(k)) first.set(k, i);
  });
  const claimed = await claimKeys(tx, items, first);
  const taken = await takenKeys(
    tx,
    [...first.entries()].filter(([k]) => !claimed.has(k)).map(([, i]) => items[i]!),
  );
  const batchKeys = new Map<string, { inboundId: string; outcome: string; ticket: TicketState | null }>();

  // 2. What the decisions read: own addresses, senders, keys and tickets threads may point at.
  const live = items.filter((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    return claimed.has(k) && first.get(k) === i;
  });
  const { ownAddresses, people, storedKeys, tickets, tagged, participants } = await readContext(
    tx,
    messageIdKey,
    live,
  );
  // 3. Decisions, message by message in order.
  const now = new Date().toISOString();
  const ticketOfKey = (mailboxId: string, key: string): string | undefined => {
    const k = keyOf(mailboxId, key);
    return batchKeys.get(k)?.ticket?.id ?? storedKeys.get(k);
  };
  // Threading (DESIGN §5.1), in this order: a Message-ID Relaydesk signed for this tenant in
  // In-Reply-To or References; any Message-ID stored for this mailbox, References read newest
  // first; a [#T-n] subject tag, only when the sender is the ticket's requester or a participant.
  const findThread = (
    it: ApplyItem,
    senderId: string,
    address: string,
  ): { ticket: TicketState; rule: Rule } | undefined => {
    for (const ref of it.mail.references) {
      const id = verifyMessageId(messageIdKey, tx.tenantId, ref);
      const t = id === undefined ? undefined : tickets.get(id);
      if (t) return { ticket: t, rule: 'signed_id' };
    }
    const byRef = it.mail.references
      .map((ref) => ticketOfKey(it.mailbox.id, ref))
      .find((id) => id !== undefined);
    if (byRef !== undefined) {
      const t = tickets.get(byRef);
      if (t) return { ticket: t, rule: 'message_id' };
    }
    const number = subjectTicketNumber(it.mail.subject);
    const id = number === undefined ? undefined : tagged.get(number);
    const t = id === undefined ? undefined : tickets.get(id);
    // A tag from a stranger is ignored: it must not let anyone write into any ticket by guessing numbers.
    if (t && (t.requesterId === senderId || participants.has(keyOf(t.id, address))))
      return { ticket: t, rule: 'subject_tag' };
    return undefined;
  };

  items.forEach((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    const key = it.mail.key;
    const firstIndex = first.get(k)!;
    if (!claimed.has(k)) {
      const row = taken.get(k);
      if (!row) throw new Error(`message key ${key} is neither claimed nor taken`);
      if (row.inbound_id === it.inboundId) {
        // Two workers ran this same record at once (a redelivered job beside the CLI, say): the
        // other one committed first. Its outcome is the outcome.
        outcomes[i] = {
          status: row.own_status ?? 'processing',
          reason: row.own_reason,
          ticketId: row.own_ticket_id,
          ticketNumber: numberText(row.own_number ?? undefined),
        };
        return;
      }
      const reason = `duplicate of ${row.inbound_id} (${row.outcome})`;
      w.finals.push({
        inboundId: it.inboundId,
        status: 'duplicate',
        reason,
        ticket: null,
        ticketId: row.ticket_id,
        messageId: null,
        key,
      });
      outcomes[i] = {
        status: 'duplicate',
        reason,
        ticketId: row.ticket_id,
        ticketNumber: numberText(row.number ?? undefined),
      };
      return;
    }
    if (firstIndex !== i) {
      const earlier = batchKeys.get(k)!;
      const reason = `duplicate of ${earlier.inboundId} (${earlier.outcome})`;
      const ticket = earlier.ticket;
      w.finals.push({
        inboundId: it.inboundId,
        status: 'duplicate',
        reason,
        ticket,
        ticketId: ticket?.id ?? null,
        messageId: null,
        key,
      });
      outcomes[i] = { status: 'duplicate', reason, ticketId: ticket?.id ?? null, ticketNumber: null };
      return;
    }
    const skip = (reason: string) => {
      batchKeys.set(k, { inboundId: it.inboundId, outcome: 'skipped', ticket: null });
      w.keyOutcomes.push({ mailboxId: it.mailbox.id, key, outcome: 'skipped', reason, ticket: null });
      w.finals.push({
        inboundId: it.inboundId,
        status: 'skipped',
        reason,
        ticket: null,
        ticketId: null,
        messageId: null,
        key,
      });
      outcomes[i] = { status: 'skipped', reason, ticketId: null, ticketNumber: null };
    };
    const mail = it.mail;
    const senderAddress = senderOf(it);
    if (!senderAddress) return skip('no_sender');
    if (isOwnMail(ownAddresses, it)) return skip('own_mail');
    const person = people.get(normalizeEmail(senderAddress));
    if (person === undefined) return skip('unknown_sender');
    if (person === 'invalid') return skip('invalid_sender_address');
    const senderId = person.id;
    const fromAgent = person.kind === 'agent';
    const { automatic, bounce } = mail.classification;

    let target = findThread(it, senderId, normalizeEmail(senderAddress));
    if (!target && bounce && mail.bouncedMessageId) {
      const id = ticketOfKey(it.mailbox.id, mail.bouncedMessageId);
      const t = id === undefined ? undefined : tickets.get(id);
      if (t) target = { ticket: t, rule: 'bounce' };
    }
    // A reply to a solved or closed ticket reopens it within the mailbox's window; later, or when it
    // is automatic mail that must not reopen anything, see below.
    if (target && (target.ticket.status === 'solved' || target.ticket.status === 'closed') && !automatic) {
      const ageDays = (Date.now() - Date.parse(target.ticket.updatedAt)) / 86_400_000;
      if (ageDays > it.mailbox.settings.reopenWithinDays) target = undefined; // a new ticket
    }

    let ticket: TicketState;
    let status: 'created' | 'appended';
    if (target) {
      ticket = target.ticket;
      status = 'appended';
      let next: TicketStatus | undefined;
      if (
        !automatic &&
        !fromAgent &&
        (ticket.status === 'pending' || ticket.status === 'solved' || ticket.status === 'closed')
      )
        next = 'open';
      else if (fromAgent && ticket.status === 'new' && !bounce) next = 'open';
      if (next && next !== ticket.status) {
        w.history.push({ ticketId: ticket.id, from: ticket.status, to: next, by: senderId });
        ticket.status = next;
        w.ticketStatus.set(ticket.id, next);
      } else if (!w.ticketStatus.has(ticket.id)) w.ticketStatus.set(ticket.id, null);
      ticket.updatedAt = now;
    } else {
      if (automatic && !it.mailbox.settings.automaticMayOpenTickets)
        return skip(bounce ? 'bounce' : 'automatic');
      ticket = { id: uuidv7(), number: undefined, status: 'new', requesterId: senderId, updatedAt: now };
      tickets.set(ticket.id, ticket);
      w.newTickets.push({ state: ticket, subject: (mail.subject.slice(0, 998) || '(no subject)').trim() });
      status = 'created';
    }

    const messageRowId = uuidv7();
    // Participants: the sender and the To/Cc addresses that are not our own mailboxes.
    const added = new Set<string>([normalizeEmail(senderAddress)]);
    for (const a of [...mail.to, ...mail.cc]) {
      const n = normalizeEmail(a.address);
      if (!ownAddresses.has(n)) added.add(n);
    }
    for (const a of added) {
      participants.add(keyOf(ticket.id, a));
      w.participants.add(keyOf(ticket.id, a));
    }
    // Attachments, and the cid: references of inline images pointed at them.
    const byContentId = new Map<string, string>();
    for (const a of mail.attachments) {
      const hash = a.sha256;
      w.blobs.set(hash.toString('hex'), a.content);
      const attachmentId = uuidv7();
      if (a.contentId) byContentId.set(a.contentId.toLowerCase(), attachmentId);
      w.attachments.push([
        attachmentId,
        ticket.id,
        messageRowId,
        a.filename.slice(0, 255),
        a.contentType.slice(0, 255),
        a.content.length,
        hash.toString('hex'),
        a.contentId,
        a.inline,
      ]);
    }
    let html = mail.html;
    if (html && byContentId.size > 0) {
      html = html.replace(/(["'])cid:<?([^"'>\s]+?)>?\1/gi, (whole, quote: string, cid: string) => {
        const id = byContentId.get(cid.toLowerCase());
        return id ? `${quote}/api/v1/attachments/${id}${quote}` : whole;
      });
    }
    w.messages.push([
      messageRowId,
      ticket.id,
      senderId,
      bounce ? 'internal' : 'public',
      fromAgent ? 'outbound' : 'inbound',
      mail.text || '(empty message)',
      html,
      mail.messageId,
      it.inboundId,
      senderAddress,
      JSON.stringify(mail.to),
      JSON.stringify(mail.cc),
      mail.subject,
      mail.replyText,
      JSON.stringify({ ...mail.classification, thread: target?.rule ?? 'new' }),
    ]);
    w.wakes.add(ticket.id);
    batchKeys.set(k, { inboundId: it.inboundId, outcome: status, ticket });
    w.keyOutcomes.push({ mailboxId: it.mailbox.id, key, outcome: status, reason: null, ticket });
    const reason = target ? `thread: ${target.rule}` : null;
    w.finals.push({
      inboundId: it.inboundId,
      status,
      reason,
      ticket,
      ticketId: ticket.id,
      messageId: messageRowId,
      key,
    });
    outcomes[i] = { status, reason, ticketId: ticket.id, ticketNumber: null };
  });

  // 4. Writes.
  await writeBatch(tx, w);
  // Ticket numbers, now that the new tickets have theirs (duplicates of an earlier message included).
  return outcomes.map((o, i) => {
    if (!o) throw new Error('a message of the batch got no outcome');
    if (o.ticketNumber !== null || o.ticketId === null) return o;
    const final = w.finals.find((f) => f.inboundId === items[i]!.inboundId);
    const n = final?.ticket?.number ?? tickets.get(o.ticketId)?.number;
    return { ...o, ticketNumber: numberText(n) };
  });
}
