// Applying parsed messages, a batch of them in ONE transaction (DESIGN §3.2, §3.4): claim each
// message key, resolve the senders, thread, and have the tickets module write the tickets and
// comments (its batch form, which applies the same rules as its one-by-one operations), then the
// keys' and records' outcomes. A message alone is a batch of one.
//
// The batch reads what it needs in a few set-based statements (context.ts), decides each message in
// order in memory exactly as if the messages had been applied one after another (a later message
// sees the tickets, keys, contacts and participants an earlier one made), then writes everything in
// a few multi-row statements. Keys are claimed first, in one sorted INSERT ... ON CONFLICT DO
// NOTHING, so a key taken by another transaction (or by an earlier message of the same batch)
// makes that message a duplicate before anything else is written for it. If any statement fails
// the caller rolls the whole batch back and applies its messages one by one.
import type { Clock } from '../../platform/clock.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import type { JobContext } from '../../platform/queue/registry.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { normalizeEmail } from '../people/service.ts';
import { applyTicketBatch, type TicketBatchOp } from '../tickets/batch.ts';
import type { NewAttachment } from '../tickets/messages.ts';
import { ticketNumber } from '../tickets/model.ts';
import {
  type ApplyItem,
  isOwnMail,
  readContext,
  senderOf,
  taggedNumber,
  type TicketState,
} from './context.ts';
import {
  claimKeys,
  decideOnTakenKey,
  type KeyHolder,
  keyOf,
  type KeyOutcome,
  recordKeyOutcomes,
} from './keys.ts';
import { isOwnAddress } from './mailboxes.ts';
import type { ParsedMessage } from './mime.ts';
import type { Outcome } from './outcomes.ts';
import { noteMessages } from './health.ts';
import { finishRecords, type RecordFinal } from './records.ts';
import {
  type DeliveryReportPayload,
  deliveryReportJob,
  type TicketOpenedByMailPayload,
  ticketOpenedByMailJob,
} from './job-refs.ts';
import { looksLikeOurMessageId, verifyMessageId } from './signing.ts';

/** Enqueues a job in the caller's transaction (a job context's send, or the queue's). */
export type JobSender = JobContext['send'];

type Rule = 'signed_id' | 'message_id' | 'subject_tag' | 'bounce';

/** A record's reason, with what storable.ts changed in the message when it changed anything. */
const noting = (reason: string | null, mail: ParsedMessage): string | null =>
  mail.sanitised.length === 0
    ? reason
    : [reason, `sanitised: ${mail.sanitised.join(', ')}`].filter((r) => r !== null).join('; ');

/** The outcome a message decided, with its ticket (whose number the writes give). */
interface Decided {
  outcome: Outcome;
  ticket: TicketState | null;
}

/** Applies the messages in order; returns one outcome per item. Items must have distinct inbound ids. */
export async function applyBatch(
  tx: TenantTx,
  deps: { messageIdKey: Buffer; clock: Clock; send?: JobSender | undefined },
  items: ApplyItem[],
): Promise<Outcome[]> {
  // What the outbound module hears of, queued in this transaction: tickets to acknowledge, reports
  // of our mail bouncing.
  const opened: TicketOpenedByMailPayload[] = [];
  const reports: DeliveryReportPayload[] = [];
  const decided: Decided[] = [];
  const finals: RecordFinal[] = [];
  const keyOutcomes: KeyOutcome[] = [];
  const ops: TicketBatchOp[] = [];

  // 1. Claims. The first message of the batch with a key claims it; later ones with the same key
  //    are duplicates of that one, decided below once its outcome is known.
  const first = new Map<string, number>();
  items.forEach((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    if (!first.has(k)) first.set(k, i);
  });
  const held = await claimKeys(
    tx,
    [...first.values()].map((i) => ({
      mailboxId: items[i]!.mailbox.id,
      key: items[i]!.mail.key,
      inboundId: items[i]!.inboundId,
    })),
  );
  const claimedHere = new Map<string, { inboundId: string; decided: Decided }>();

  // 2. What the decisions read: own addresses, senders, keys and tickets threads may point at.
  const live = items.filter((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    return !held.has(k) && first.get(k) === i;
  });
  const { ownAddresses, people, contactsMadeBy, storedKeys, tickets, tagged, participants } =
    await readContext(tx, deps.messageIdKey, live);
  // 3. Decisions, message by message in order.
  const contactsMade = new Set<string>();
  const now = deps.clock.now();
  const ticketOfKey = (mailboxId: string, key: string): string | undefined => {
    const k = keyOf(mailboxId, key);
    return claimedHere.get(k)?.decided.ticket?.id ?? storedKeys.get(k);
  };
  // Threading (DESIGN §5.1), in this order: a Message-ID Relaydesk signed for this tenant in
  // In-Reply-To or References; any Message-ID stored for this mailbox, References read newest
  // first; a [#T-n] subject tag (or the mailbox's plus address, support+T-n@), only when the sender
  // is the ticket's requester or a participant.
  const findThread = (
    it: ApplyItem,
    senderId: string,
    address: string,
  ): { ticket: TicketState; rule: Rule } | undefined => {
    for (const ref of it.mail.references) {
      const id = verifyMessageId(deps.messageIdKey, tx.tenantId, ref);
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
    const number = taggedNumber(it);
    const id = number === undefined ? undefined : tagged.get(number);
    const t = id === undefined ? undefined : tickets.get(id);
    // A tag from a stranger is ignored: it must not let anyone write into any ticket by guessing numbers.
    if (t && (t.requesterId === senderId || participants.has(keyOf(t.id, address))))
      return { ticket: t, rule: 'subject_tag' };
    return undefined;
  };

  const decide = (it: ApplyItem): Decided => {
    const key = it.mail.key;
    const end = (status: 'skipped', why: string): Decided => {
      const reason = noting(why, it.mail)!;
      keyOutcomes.push({ mailboxId: it.mailbox.id, key, outcome: status, reason: why, ticketId: null });
      finals.push({ inboundId: it.inboundId, status, reason, ticketId: null, ticketMessageId: null, key });
      return { outcome: { status, reason, ticketId: null, ticketNumber: null }, ticket: null };
    };
    const mail = it.mail;
    if (mail.classification.bounce && mail.bouncedMessageId && looksLikeOurMessageId(mail.bouncedMessageId))
      reports.push({ tenantId: tx.tenantId, rfcMessageId: mail.bouncedMessageId, inboundId: it.inboundId });
    const senderAddress = senderOf(it);
    if (!senderAddress) return end('skipped', 'no_sender');
    if (isOwnMail(ownAddresses, it)) return end('skipped', 'own_mail');
    const address = normalizeEmail(senderAddress);
    // A contact this batch made exists from the message that made it on (an earlier message to a
    // mailbox that makes no contacts still finds the sender unknown, as one by one).
    const madeBy = contactsMadeBy.get(address);
    if (madeBy !== undefined && !contactsMade.has(address)) {
      if (madeBy !== it.inboundId) return end('skipped', 'unknown_sender');
      contactsMade.add(address);
    }
    const person = people.get(address);
    if (person === undefined) return end('skipped', 'unknown_sender');
    if (person === 'invalid') return end('skipped', 'invalid_sender_address');
    const senderId = person.id;
    const { automatic, bounce } = mail.classification;

    let target = findThread(it, senderId, address);
    if (!target && bounce && mail.bouncedMessageId) {
      // Our own mail that bounced (its signed Message-ID), else a message stored for this mailbox.
      const id =
        verifyMessageId(deps.messageIdKey, tx.tenantId, mail.bouncedMessageId) ??
        ticketOfKey(it.mailbox.id, mail.bouncedMessageId);
      const t = id === undefined ? undefined : tickets.get(id);
      if (t) target = { ticket: t, rule: 'bounce' };
    }
    // A reply to a solved or closed ticket reopens it within the mailbox's window (rules.ts); later,
    // it opens a new ticket. Automatic mail never reopens anything, so it may still thread.
    if (target && (target.ticket.status === 'solved' || target.ticket.status === 'closed') && !automatic) {
      const ageDays = (now.getTime() - Date.parse(target.ticket.updatedAt)) / 86_400_000;
      if (ageDays > it.mailbox.settings.reopenWithinDays) target = undefined;
    }
    if (!target && automatic && !it.mailbox.settings.automaticMayOpenTickets)
      return end('skipped', bounce ? 'bounce' : 'automatic');

    // Participants: the sender and the To/Cc addresses that are not our own mailboxes.
    const added = new Set<string>([address]);
    for (const a of [...mail.to, ...mail.cc]) {
      const n = normalizeEmail(a.address);
      if (!isOwnAddress(ownAddresses, n)) added.add(n);
    }
    const message = {
      id: uuidv7(),
      text: mail.text.trim() === '' ? '(empty message)' : mail.text,
      html: mail.html,
      rfcMessageId: mail.messageId,
      mail: {
        inboundId: it.inboundId,
        from: senderAddress,
        to: mail.to,
        cc: mail.cc,
        subject: mail.subject,
        replyText: mail.replyText,
        classification: {
          ...mail.classification,
          thread: target?.rule ?? 'new',
          ...(mail.sanitised.length > 0 ? { sanitised: mail.sanitised } : {}),
        },
      },
      attachments: mail.attachments.map((a): NewAttachment => ({
        id: uuidv7(),
        filename: a.filename,
        contentType: a.contentType,
        content: a.content,
        sha256: a.sha256,
        contentId: a.contentId,
        inline: a.inline,
      })),
      participants: [...added],
    };

    let ticket: TicketState;
    let status: 'created' | 'appended';
    if (target) {
      ticket = target.ticket;
      status = 'appended';
      ops.push({
        kind: 'append',
        ticketId: ticket.id,
        message: {
          ...message,
          authorId: senderId,
          authorKind: person.kind === 'agent' ? 'agent' : 'contact',
          // A bounce is a note for the agents, not part of the conversation.
          visibility: bounce ? 'internal' : 'public',
          automatic,
        },
      });
      ticket.updatedAt = now.toISOString();
    } else {
      ticket = {
        id: uuidv7(),
        number: undefined,
        status: 'new',
        requesterId: senderId,
        updatedAt: now.toISOString(),
      };
      tickets.set(ticket.id, ticket);
      ops.push({
        kind: 'create',
        ticketId: ticket.id,
        subject: (mail.subject.slice(0, 998) || '(no subject)').trim() || '(no subject)',
        requesterId: senderId,
        actorId: senderId,
        message,
      });
      status = 'created';
      if (it.mailbox.settings.outbound.acknowledge)
        opened.push({
          tenantId: tx.tenantId,
          ticketId: ticket.id,
          ticketMessageId: message.id,
          mailboxId: it.mailbox.id,
        });
    }
    for (const a of added) participants.add(keyOf(ticket.id, a));
    keyOutcomes.push({ mailboxId: it.mailbox.id, key, outcome: status, reason: null, ticketId: ticket.id });
    const reason = noting(target ? `thread: ${target.rule}` : null, mail);
    finals.push({
      inboundId: it.inboundId,
      status,
      reason,
      ticketId: ticket.id,
      ticketMessageId: message.id,
      key,
    });
    return { outcome: { status, reason, ticketId: ticket.id, ticketNumber: null }, ticket };
  };

  items.forEach((it, i) => {
    const k = keyOf(it.mailbox.id, it.mail.key);
    const holder: KeyHolder | undefined = held.get(k);
    if (holder) {
      const decision = decideOnTakenKey(holder, { inboundId: it.inboundId, key: it.mail.key });
      if (decision.final) finals.push(decision.final);
      decided.push({ outcome: decision.outcome, ticket: null });
      return;
    }
    if (first.get(k) !== i) {
      // A later copy in this batch: a duplicate of the first, as if that one had committed before.
      const earlier = claimedHere.get(k)!;
      const decision = decideOnTakenKey(
        {
          inboundId: earlier.inboundId,
          outcome: earlier.decided.outcome.status,
          ticketId: earlier.decided.ticket?.id ?? null,
          ticketNumber: null,
          record: { status: 'processing', reason: null, ticketId: null, ticketNumber: null },
        },
        { inboundId: it.inboundId, key: it.mail.key },
      );
      if (decision.final) finals.push(decision.final);
      decided.push({ outcome: decision.outcome, ticket: earlier.decided.ticket });
      return;
    }
    const d = decide(it);
    claimedHere.set(k, { inboundId: it.inboundId, decided: d });
    decided.push(d);
  });

  // 4. Writes: the tickets and their messages, then what became of the keys and records.
  const numbers = await applyTicketBatch(tx, ops);
  for (const [id, n] of numbers) {
    const t = tickets.get(id);
    if (t) t.number = n;
  }
  await recordKeyOutcomes(tx, keyOutcomes);
  await finishRecords(tx, finals);
  if (deps.send) {
    for (const p of opened) await deps.send(ticketOpenedByMailJob, p, { tx });
    for (const p of reports) await deps.send(deliveryReportJob, p, { tx });
  }
  // The mailboxes' health: when mail last arrived (ticket or comment made).
  await noteMessages(
    tx,
    items
      .filter((_, i) => ['created', 'appended'].includes(decided[i]!.outcome.status))
      .map((it) => it.mailbox.id),
  );
  return decided.map(({ outcome, ticket }) => {
    if (outcome.ticketNumber !== null || outcome.ticketId === null) return outcome;
    const n = ticket?.number ?? tickets.get(outcome.ticketId)?.number;
    return { ...outcome, ticketNumber: n === undefined ? null : ticketNumber(n) };
  });
}
