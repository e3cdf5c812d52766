// Creating a ticket: its row, its number, its first status, its first message and its wake-up, in
// one statement. The number comes from the tenant's counter row, updated in that same statement,
// so it is taken if and only if the ticket is created (the row lock is held until the creating
// transaction ends: numbers of one tenant are handed out one commit at a time, never twice).

/** Gives a new tenant its ticket counter (call in the transaction that creates the tenant). */
export async function startTicketNumbers(tx: TenantTx): Promise<void> {
  await tx.query('INSERT INTO ticket_counters (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING', [tx.tenantId]);
}
import type { TenantTx } from '../../platform/db/tx.ts';
import { validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { assertEmail, findOrCreateContact, normalizeEmail } from '../people/service.ts';
import { insertMessages, type NewMessage } from './messages.ts';
import {
  checkSubject,
  checkText,
  type Ticket,
  TICKET_COLUMNS,
  type TicketPriority,
  type TicketRow,
  toTicket,
} from './model.ts';

export interface CreateTicketInput {
  subject: string;
  /** An existing person, or an address (a contact is created for an unknown one). */
  requester: { personId: string } | { email: string; name?: string | undefined };
  priority?: TicketPriority | undefined;
  assigneeId?: string | null | undefined;
  /** The requester's first message (the request: inbound, whoever the requester is). */
  message?: Omit<NewMessage, 'authorId' | 'visibility' | 'automatic'> | undefined;
  /** The person acting (the token's person); recorded in the status history. */
  actorId: string;
}

/** Creates a ticket in the caller's transaction; a contact is created for an unknown requester address. */
export async function createTicket(tx: TenantTx, input: CreateTicketInput): Promise<Ticket> {
  const ticket = await createTicketForKnownRequester(tx, input);
  if (ticket) return ticket;
  const requester = input.requester as { email: string; name?: string };
  const personId = await findOrCreateContact(tx, requester.email, {
    name: requester.name,
    actor: `person:${input.actorId}`,
  });
  const created = await createTicketForKnownRequester(tx, { ...input, requester: { personId } });
  if (!created) throw new Error('the requester just created is missing');
  return created;
}

/**
 * Creates the ticket with one statement when its requester is a known person or address; with an
 * unknown address it writes nothing and answers undefined (createTicket then makes the contact). One
 * statement is atomic on its own, so this may also run in a statement-at-a-time scope
 * (withTenantAutocommit), where BEGIN, the statement and COMMIT travel together: the counter row is
 * then locked only while PostgreSQL executes and commits, never while a round trip is under way.
 */
export async function createTicketForKnownRequester(
  tx: TenantTx,
  input: CreateTicketInput,
): Promise<Ticket | undefined> {
  const subject = checkSubject(input.subject);
  const text = input.message ? checkText(input.message.text, '/message/text') : null;
  const byId = 'personId' in input.requester;
  const requester =
    'personId' in input.requester
      ? input.requester.personId
      : normalizeEmail(assertEmail(input.requester.email, '/requester/email'));
  // A plain first message is written by the same statement; one with mail details, attachments or
  // participants by insertMessages right after it.
  const m = input.message;
  const plain = m && !m.mail && !m.id && !m.rfcMessageId && !m.attachments?.length && !m.participants?.length;
  const messageId = m?.id ?? uuidv7();
  const { rows } = await tx.query<
    Partial<TicketRow> & { requester_found: boolean; assignee_kind: string | null }
  >(
    `WITH r AS (
       ${
         byId
           ? 'SELECT id FROM people WHERE tenant_id = $1 AND id = $5::uuid'
           : 'SELECT person_id AS id FROM person_emails WHERE tenant_id = $1 AND address_normalized = $5'
       }
     ), a AS (
       SELECT kind FROM people WHERE tenant_id = $1 AND id = $6::uuid
     ), ok AS (
       SELECT r.id FROM r WHERE $6::uuid IS NULL OR EXISTS (SELECT 1 FROM a WHERE a.kind = 'agent')
     ), n AS (
       UPDATE ticket_counters SET last_number = last_number + 1
        WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM ok)
       RETURNING last_number
     ), t AS (
       INSERT INTO tickets (tenant_id, id, number, subject, priority, requester_id, assignee_id)
       SELECT $1, $2, n.last_number, $3, $4, ok.id, $6 FROM ok, n
       RETURNING ${TICKET_COLUMNS}, tenant_id
     ), h AS (
       INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
       SELECT tenant_id, id, NULL, status, created_at, $7 FROM t
     ), m AS (
       INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html)
       SELECT tenant_id, $8, id, requester_id, 'public', 'inbound', $9, $10 FROM t WHERE $9::text IS NOT NULL
     ), w AS (
       INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at) SELECT tenant_id, id, now() FROM t
     )
     SELECT EXISTS (SELECT 1 FROM r) AS requester_found, (SELECT kind FROM a) AS assignee_kind, t.*
       FROM (SELECT 1) AS one LEFT JOIN t ON true`,
    [
      tx.tenantId,
      uuidv7(),
      subject,
      input.priority ?? 'normal',
      requester,
      input.assigneeId ?? null,
      input.actorId,
      messageId,
      plain ? text : null,
      plain ? (m.html ?? null) : null,
    ],
  );
  const row = rows[0]!;
  if (
    row.requester_found &&
    (row.id === null || row.id === undefined) &&
    !(input.assigneeId && row.assignee_kind !== 'agent')
  )
    throw new Error(`tenant ${tx.tenantId} has no ticket counter (startTicketNumbers was not run)`);
  if (input.assigneeId && row.assignee_kind !== 'agent') {
    const message = row.assignee_kind === null ? 'no such person' : 'must be an agent';
    throw validation(`assigneeId: ${message}`, [{ path: '/assigneeId', message }]);
  }
  if (row.id !== null && row.id !== undefined) {
    if (m && !plain)
      await insertMessages(tx, [
        {
          ...m,
          id: messageId,
          text: text!,
          ticketId: row.id,
          authorId: row.requester_id!,
          visibility: 'public',
          direction: 'inbound',
        },
      ]);
    return toTicket(row as TicketRow);
  }
  if (byId)
    throw validation('requester/personId: no such person', [
      { path: '/requester/personId', message: 'no such person' },
    ]);
  return undefined;
}
