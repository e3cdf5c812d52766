// The writes of an inbound batch (apply.ts decides them): a few multi-row statements for all its
// messages, in a fixed order (tickets, their updates and history, messages, participants, blobs,
// attachments, SLA wake-ups, keys, records), each sorted where rows may already exist, so two
// batches meeting on a row take their locks in the same order.
import { nextTicketNumber, type TenantTx } from '../../platform/db/tx.ts';
import type { TicketStatus } from '../tickets/service.ts';
import type { InboundStatus } from './apply.ts';

export interface TicketState {
  id: string;
  /** Set for a ticket of this batch once numbers are taken. */
  number: number | undefined;
  status: TicketStatus;
  requesterId: string;
  updatedAt: string;
}

/** What the batch writes, collected while its messages are decided. */
export class Writes {
  newTickets: { state: TicketState; subject: string }[] = [];
  /** Final status of existing tickets that changed (absent: only touched). */
  ticketStatus = new Map<string, TicketStatus | null>();
  history: { ticketId: string; from: TicketStatus; to: TicketStatus; by: string }[] = [];
  messages: unknown[][] = [];
  participants = new Set<string>();
  blobs = new Map<string, Buffer>();
  attachments: unknown[][] = [];
  wakes = new Set<string>();
  keyOutcomes: {
    mailboxId: string;
    key: string;
    outcome: string;
    reason: string | null;
    ticket: TicketState | null;
  }[] = [];
  finals: {
    inboundId: string;
    status: InboundStatus;
    reason: string | null;
    ticket: TicketState | null;
    ticketId: string | null;
    messageId: string | null;
    key: string;
  }[] = [];
}

/** Takes `count` ticket numbers, increasing (from the short counter transaction createTicket uses). */
async function takeTicketNumbers(tx: TenantTx, count: number): Promise<number[]> {
  if (count === 0) return [];
  if (!tx.pool) {
    const { rows } = await tx.query<{ last_number: number }>(
      'UPDATE ticket_counters SET last_number = last_number + $2 WHERE tenant_id = $1 RETURNING last_number',
      [tx.tenantId, count],
    );
    const last = rows[0]?.last_number;
    if (last === undefined) throw new Error(`tenant ${tx.tenantId} has no ticket counter`);
    return Array.from({ length: count }, (_, i) => last - count + 1 + i);
  }
  const pool = tx.pool;
  const numbers = await Promise.all(Array.from({ length: count }, () => nextTicketNumber(pool, tx.tenantId)));
  return numbers.sort((a, b) => a - b);
}

export async function writeBatch(tx: TenantTx, w: Writes): Promise<void> {
  const t = tx.tenantId;
  const numbers = await takeTicketNumbers(tx, w.newTickets.length);
  w.newTickets.forEach((n, i) => {
    n.state.number = numbers[i];
  });
  if (w.newTickets.length > 0) {
    // Created in the batch's order: clock_timestamp() per row keeps that order in created_at.
    await tx.query(
      `WITH x AS (
         SELECT x.*, clock_timestamp() AS at
           FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::uuid[]) WITH ORDINALITY AS x(id, number, subject, requester_id, ord)
       ), t AS (
         INSERT INTO tickets (tenant_id, id, number, subject, priority, requester_id, created_at, updated_at)
         SELECT $1, id, number, subject, 'normal', requester_id, at, at FROM x ORDER BY ord
         RETURNING tenant_id, id, status, requester_id, created_at
       )
       INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
       SELECT tenant_id, id, NULL, status, created_at, requester_id FROM t ORDER BY created_at`,
      [
        t,
        w.newTickets.map((n) => n.state.id),
        w.newTickets.map((n) => n.state.number),
        w.newTickets.map((n) => n.subject),
        w.newTickets.map((n) => n.state.requesterId),
      ],
    );
  }
  if (w.ticketStatus.size > 0) {
    const ids = [...w.ticketStatus.keys()].sort();
    await tx.query(
      `UPDATE tickets t SET status = coalesce(x.status, t.status), updated_at = clock_timestamp()
         FROM unnest($2::uuid[], $3::text[]) AS x(id, status)
        WHERE t.tenant_id = $1 AND t.id = x.id`,
      [t, ids, ids.map((id) => w.ticketStatus.get(id) ?? null)],
    );
  }
  if (w.history.length > 0) {
    await tx.query(
      `INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
       SELECT $1, x.ticket_id, x.from_status, x.to_status, clock_timestamp(), x.changed_by
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[]) WITH ORDINALITY AS x(ticket_id, from_status, to_status, changed_by, ord)
        ORDER BY x.ord`,
      [
        t,
        w.history.map((h) => h.ticketId),
        w.history.map((h) => h.from),
        w.history.map((h) => h.to),
        w.history.map((h) => h.by),
      ],
    );
  }
  if (w.messages.length > 0) {
    const col = (i: number) => w.messages.map((m) => m[i]);
    await tx.query(
      `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html,
                                    rfc_message_id, inbound_id, mail_from, mail_to, mail_cc, mail_subject, reply_text,
                                    classification, created_at)
       SELECT $1, x.id, x.ticket_id, x.author_id, x.visibility, x.direction, x.body_text, x.body_html, x.rfc_message_id,
              x.inbound_id, x.mail_from, x.mail_to, x.mail_cc, x.mail_subject, x.reply_text, x.classification, clock_timestamp()
         FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                     $10::uuid[], $11::text[], $12::jsonb[], $13::jsonb[], $14::text[], $15::text[], $16::jsonb[])
              WITH ORDINALITY AS x(id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id,
                                   inbound_id, mail_from, mail_to, mail_cc, mail_subject, reply_text, classification, ord)
        ORDER BY x.ord`,
      [t, ...Array.from({ length: 15 }, (_, i) => col(i))],
    );
  }
  if (w.participants.size > 0) {
    const pairs = [...w.participants].sort().map((p) => p.split('\n'));
    await tx.query(
      `INSERT INTO ticket_participants (tenant_id, ticket_id, address_normalized)
       SELECT $1, x.ticket_id, x.address FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS x(ticket_id, address, ord)
        ORDER BY x.ord
       ON CONFLICT DO NOTHING`,
      [t, pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
  }
  if (w.blobs.size > 0) {
    // Contents go as binary parameters (an array parameter would travel as escaped text).
    const hashes = [...w.blobs.keys()].sort();
    const values: unknown[] = [t];
    const rows = hashes.map((h) => {
      const content = w.blobs.get(h)!;
      values.push(Buffer.from(h, 'hex'), content.length, content);
      return `($1, $${values.length - 2}, $${values.length - 1}, $${values.length})`;
    });
    await tx.query(
      `INSERT INTO blobs (tenant_id, sha256, size, content) VALUES ${rows.join(', ')}
       ON CONFLICT (tenant_id, sha256) DO NOTHING`,
      values,
    );
  }
  if (w.attachments.length > 0) {
    const col = (i: number) => w.attachments.map((a) => a[i]);
    await tx.query(
      `INSERT INTO attachments (tenant_id, id, ticket_id, message_id, filename, content_type, size, sha256, content_id, inline, created_at)
       SELECT $1, x.id, x.ticket_id, x.message_id, x.filename, x.content_type, x.size, decode(x.sha256, 'hex'), x.content_id,
              x.inline, clock_timestamp()
         FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::boolean[])
              WITH ORDINALITY AS x(id, ticket_id, message_id, filename, content_type, size, sha256, content_id, inline, ord)
        ORDER BY x.ord`,
      [t, ...Array.from({ length: 9 }, (_, i) => col(i))],
    );
  }
  if (w.wakes.size > 0) {
    // As scheduleSlaWake does, for every ticket the batch touched (the SLA scheduler looks at it now).
    await tx.query(
      `INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at)
       SELECT $1, x.id, now() FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, ord) ORDER BY x.ord
       ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(sla_wakeups.next_wake_at, now())`,
      [t, [...w.wakes].sort()],
    );
  }
  if (w.keyOutcomes.length > 0) {
    const k = w.keyOutcomes;
    await tx.query(
      `UPDATE message_keys k SET outcome = x.outcome, reason = x.reason, ticket_id = x.ticket_id
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[]) AS x(mailbox_id, key, outcome, reason, ticket_id)
        WHERE k.tenant_id = $1 AND k.mailbox_id = x.mailbox_id AND k.key = x.key`,
      [
        t,
        k.map((o) => o.mailboxId),
        k.map((o) => o.key),
        k.map((o) => o.outcome),
        k.map((o) => o.reason),
        k.map((o) => o.ticket?.id ?? null),
      ],
    );
  }
  if (w.finals.length > 0) {
    const f = [...w.finals].sort((a, b) => (a.inboundId < b.inboundId ? -1 : 1));
    await tx.query(
      `UPDATE inbound_messages i SET status = x.status, reason = x.reason, ticket_id = x.ticket_id,
              ticket_message_id = x.message_id, message_key = coalesce(x.key, i.message_key), updated_at = now()
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::text[]) AS x(id, status, reason, ticket_id, message_id, key)
        WHERE i.tenant_id = $1 AND i.id = x.id`,
      [
        t,
        f.map((o) => o.inboundId),
        f.map((o) => o.status),
        f.map((o) => o.reason),
        f.map((o) => o.ticket?.id ?? o.ticketId),
        f.map((o) => o.messageId),
        f.map((o) => o.key),
      ],
    );
  }
}
