// What an inbound batch reads before deciding its messages (apply.ts), one statement each: the
// tenant's own addresses, the senders, the stored Message-IDs the references name and the tickets
// those (or subject tags) point at. Unknown senders become contacts here (resolveSenders), where
// their mailbox allows it. Reads are unlocked: the tickets module locks the tickets it changes and
// decides their statuses from the locked rows.
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { findOrCreateContact, normalizeEmail } from '../people/service.ts';
import type { TicketStatus } from '../tickets/model.ts';
import { keyOf } from './keys.ts';
import { isOwnAddress, type Mailbox, mailboxAddresses } from './mailboxes.ts';
import { type ParsedMessage, subjectTicketNumber } from './mime.ts';
import { looksLikeOurMessageId, verifyMessageId } from './signing.ts';

/** A parsed message to apply, with its record and mailbox. */
export interface ApplyItem {
  inboundId: string;
  mailbox: Mailbox;
  mail: ParsedMessage;
}

/** What the decisions know of a ticket (a ticket of the batch is in here too, once decided). */
export interface TicketState {
  id: string;
  /** Set for a ticket of this batch once it is written. */
  number: number | undefined;
  status: TicketStatus;
  requesterId: string;
  updatedAt: string;
}
export const senderOf = (it: ApplyItem): string | undefined => it.mail.from?.address;

/**
 * The ticket number the message names: its subject tag, else a plus address of its mailbox among
 * its recipients (support+T-12@…, the Reply-To of our mail when the mailbox plus-addresses).
 */
export function taggedNumber(it: ApplyItem): number | undefined {
  const bySubject = subjectTicketNumber(it.mail.subject, it.mailbox.settings.outbound.subjectTag);
  if (bySubject !== undefined) return bySubject;
  const own = normalizeEmail(it.mailbox.address);
  const at = own.lastIndexOf('@');
  const [local, domain] = [own.slice(0, at), own.slice(at + 1)];
  for (const a of [...it.mail.to, ...it.mail.cc]) {
    const n = normalizeEmail(a.address);
    if (!n.startsWith(`${local}+`) || !n.endsWith(`@${domain}`)) continue;
    const m = /^t-(\d{1,18})$/.exec(n.slice(local.length + 1, n.length - domain.length - 1));
    if (m) return Number(m[1]);
  }
  return undefined;
}
/** Mail from one of the tenant's own mailboxes, or carrying Relaydesk's own Message-ID. */
export const isOwnMail = (ownAddresses: Set<string>, it: ApplyItem): boolean =>
  isOwnAddress(ownAddresses, senderOf(it)!) ||
  (it.mail.messageId !== null && looksLikeOurMessageId(it.mail.messageId));

interface TicketRow {
  id: string;
  number: number;
  status: TicketStatus;
  requester_id: string;
  updated_at: string;
}

const toState = (r: TicketRow): TicketState => ({
  id: r.id,
  number: r.number,
  status: r.status,
  requesterId: r.requester_id,
  updatedAt: r.updated_at,
});

/** A person by normalised address, or 'invalid' when no contact could be made of the address. */
export type Sender = { id: string; kind: string | null } | 'invalid';

export interface BatchContext {
  ownAddresses: Set<string>;
  people: Map<string, Sender>;
  /** Ticket of each stored key that the batch's references (and bounces) name. */
  storedKeys: Map<string, string>;
  tickets: Map<string, TicketState>;
  /** Ticket id by number, for the subject tags of the batch. */
  tagged: Map<number, string>;
  /** Participants (ticket id and address) among the batch's senders, of the tagged tickets. */
  participants: Set<string>;
  /**
   * Contacts made for this batch, by address: the inbound id of the message that made it. Messages
   * before that one (in order) do not know the sender yet, as if applied one by one.
   */
  contactsMadeBy: Map<string, string>;
}

/**
 * Reads what the decisions about the claimed messages (`live`, in order) need. Unknown senders
 * become contacts here where their mailbox allows it (the first message's name), one address at a
 * time in a fixed order; an address that cannot be one is 'invalid'.
 */
export async function readContext(
  tx: TenantTx,
  messageIdKey: Buffer,
  live: ApplyItem[],
): Promise<BatchContext> {
  const ownAddresses = await mailboxAddresses(tx);
  const withSender = live.filter((it) => senderOf(it) && !isOwnMail(ownAddresses, it));
  const people = new Map<string, Sender>();
  const addresses = [...new Set(withSender.map((it) => normalizeEmail(senderOf(it)!)))];
  if (addresses.length > 0) {
    const { rows } = await tx.query<{ address: string; person_id: string; kind: string | null }>(
      `SELECT e.address_normalized AS address, e.person_id, p.kind
         FROM person_emails e LEFT JOIN people p ON p.tenant_id = e.tenant_id AND p.id = e.person_id
        WHERE e.tenant_id = $1 AND e.address_normalized = ANY($2::text[])`,
      [tx.tenantId, addresses],
    );
    for (const r of rows) people.set(r.address, { id: r.person_id, kind: r.kind });
  }
  const contactsMadeBy = await resolveSenders(tx, withSender, people);

  const refKeys = new Map<string, { mailboxId: string; key: string }>();
  for (const it of live) {
    for (const ref of it.mail.references)
      refKeys.set(keyOf(it.mailbox.id, ref), { mailboxId: it.mailbox.id, key: ref });
    if (it.mail.classification.bounce && it.mail.bouncedMessageId)
      refKeys.set(keyOf(it.mailbox.id, it.mail.bouncedMessageId), {
        mailboxId: it.mailbox.id,
        key: it.mail.bouncedMessageId,
      });
  }
  const storedKeys = new Map<string, string>();
  if (refKeys.size > 0) {
    const refs = [...refKeys.values()];
    const { rows } = await tx.query<{ mailbox_id: string; key: string; ticket_id: string }>(
      `SELECT k.mailbox_id, k.key, k.ticket_id
         FROM unnest($2::uuid[], $3::text[]) AS x(mailbox_id, key)
         JOIN message_keys k ON k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key
        WHERE k.ticket_id IS NOT NULL`,
      [tx.tenantId, refs.map((r) => r.mailboxId), refs.map((r) => r.key)],
    );
    for (const r of rows) storedKeys.set(keyOf(r.mailbox_id, r.key), r.ticket_id);
  }
  const tickets = new Map<string, TicketState>();
  const signed = new Set<string>();
  for (const it of live) {
    // A bounce quotes the Message-ID of the mail that bounced: ours, signed, when we sent it.
    const bounced = it.mail.classification.bounce ? it.mail.bouncedMessageId : null;
    for (const ref of bounced ? [...it.mail.references, bounced] : it.mail.references) {
      const id = verifyMessageId(messageIdKey, tx.tenantId, ref);
      if (id) signed.add(id);
    }
  }
  const wanted = [...new Set([...signed, ...storedKeys.values()])];
  if (wanted.length > 0) {
    const { rows } = await tx.query<TicketRow>(
      'SELECT id, number, status, requester_id, updated_at FROM tickets WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL',
      [tx.tenantId, wanted],
    );
    for (const r of rows) tickets.set(r.id, toState(r));
  }
  // Subject tags: the tickets they name, with those of their participants that send in this batch.
  const tagged = new Map<number, string>();
  const participants = new Set<string>();
  const tags = [...new Set(live.map((it) => taggedNumber(it)).filter((n) => n !== undefined))];
  if (tags.length > 0) {
    const { rows } = await tx.query<TicketRow & { participants: string[] }>(
      `SELECT t.id, t.number, t.status, t.requester_id, t.updated_at,
              ARRAY(SELECT p.address_normalized FROM ticket_participants p
                     WHERE p.tenant_id = t.tenant_id AND p.ticket_id = t.id AND p.address_normalized = ANY($3::text[])) AS participants
         FROM tickets t WHERE t.tenant_id = $1 AND t.number = ANY($2::bigint[]) AND t.deleted_at IS NULL`,
      [tx.tenantId, tags, addresses],
    );
    for (const r of rows) {
      if (!tickets.has(r.id)) tickets.set(r.id, toState(r));
      tagged.set(Number(r.number), r.id);
      for (const a of r.participants) participants.add(keyOf(r.id, a));
    }
  }

  return { ownAddresses, people, contactsMadeBy, storedKeys, tickets, tagged, participants };
}

/**
 * Unknown senders become contacts where their mailbox allows it (with the first message's name),
 * one address at a time in a fixed order; an address that cannot be a contact's is 'invalid' (its
 * messages are skipped). Any other failure fails the batch.
 */
async function resolveSenders(
  tx: TenantTx,
  items: ApplyItem[],
  people: Map<string, Sender>,
): Promise<Map<string, string>> {
  const madeBy = new Map<string, string>();
  const toCreate = new Map<string, ApplyItem>();
  for (const it of items) {
    const n = normalizeEmail(senderOf(it)!);
    if (!people.has(n) && it.mailbox.settings.createContacts && !toCreate.has(n)) toCreate.set(n, it);
  }
  for (const n of [...toCreate.keys()].sort()) {
    const it = toCreate.get(n)!;
    try {
      const id = await findOrCreateContact(tx, senderOf(it)!, {
        name: it.mail.from?.name || undefined,
        actor: 'system:inbound',
      });
      people.set(n, { id, kind: 'contact' });
      madeBy.set(n, it.inboundId);
    } catch (err) {
      // The address was refused before anything was written (findOrCreateContact checks it first).
      if (!(err instanceof AppError && err.code === 'validation_failed')) throw err;
      people.set(n, 'invalid');
    }
  }
  return madeBy;
}
