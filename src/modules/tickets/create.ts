// Creating tickets: each ticket's row, its number, its first status, its first message and its
// wake-up, for any number of tickets in one statement. The numbers come from the tenant's counter
// row, updated by that same statement, so they are taken if and only if the tickets are created
// (the row stays locked until the creating transaction ends: one tenant's numbers are handed out
// one commit at a time, never twice; a rollback takes its increment back with it).
import type { TenantTx } from '../../platform/db/tx.ts';
import { ticketCreatedEventsSql } from '../events/events.ts';
import { type AppError, validation } from '../../platform/errors.ts';
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

/** Gives a new tenant its ticket counter (call in the transaction that creates the tenant). */
export async function startTicketNumbers(tx: TenantTx): Promise<void> {
  await tx.query('INSERT INTO ticket_counters (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING', [tx.tenantId]);
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
 * Creates the ticket when its requester is a known person or address; with an unknown address it
 * writes nothing and answers undefined (createTicket then makes the contact). With a plain first
 * message (text and HTML) it is one statement, atomic on its own, so it may also run in a
 * statement-at-a-time scope (withTenantAutocommit), where BEGIN, the statement and COMMIT travel
 * together: the counter row is then locked only while PostgreSQL executes and commits, never while a
 * round trip is under way. A first message with attachments, participants or mail details is a
 * second statement: that needs a transaction (withTenant).
 */
export async function createTicketForKnownRequester(
  tx: TenantTx,
  input: CreateTicketInput,
): Promise<Ticket | undefined> {
  const [result] = await createTicketsForKnownRequesters(tx, [prepareTicket(input)]);
  if ('error' in result!) throw result.error;
  return result!.ticket;
}

/** The creating statement for one ticket (see createTicketsForKnownRequesters for why there are two). */
async function createOne(tx: TenantTx, c: PreparedTicket): Promise<CreationRow[]> {
  const { input } = c;
  const byId = 'personId' in input.requester;
  const { rows } = await tx.query<CreationRow>(
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
     ), e AS (
       ${ticketCreatedEventsSql('t AS ticket', '$7::uuid')}
     )
     SELECT EXISTS (SELECT 1 FROM r) AS requester_found, (SELECT kind FROM a) AS assignee_kind, t.*
       FROM (SELECT 1) AS one LEFT JOIN t ON true`,
    [
      tx.tenantId,
      c.id,
      c.subject,
      input.priority ?? 'normal',
      'personId' in input.requester ? input.requester.personId : normalizeEmail(input.requester.email),
      input.assigneeId ?? null,
      input.actorId,
      c.messageId,
      c.plain?.text ?? null,
      c.plain?.html ?? null,
    ],
  );
  return rows;
}

/** A creation checked and given its ids, ready for the statement. */
export interface PreparedTicket {
  input: CreateTicketInput;
  id: string;
  subject: string;
  messageId: string;
  /** The first message, when it is plain text and HTML (written by the statement itself). */
  plain: { text: string; html: string | null } | null;
}

/** Checks what can be checked without the database (throws validation errors) and assigns ids. */
export function prepareTicket(input: CreateTicketInput): PreparedTicket {
  const subject = checkSubject(input.subject);
  const m = input.message;
  const text = m ? checkText(m.text, '/message/text') : null;
  if ('email' in input.requester) assertEmail(input.requester.email, '/requester/email');
  // A plain first message is written by the creating statement; one with mail details,
  // attachments or participants by insertMessages right after it.
  const isPlain =
    m && !m.mail && !m.id && !m.rfcMessageId && !m.attachments?.length && !m.participants?.length;
  return {
    input,
    id: uuidv7(),
    subject,
    messageId: m?.id ?? uuidv7(),
    plain: isPlain ? { text: text!, html: m.html ?? null } : null,
  };
}

/** What the creating statement takes of each creation: column, type, value. */
const CREATION_COLUMNS: [string, string, (c: PreparedTicket) => unknown][] = [
  ['id', 'uuid', (c) => c.id],
  ['subject', 'text', (c) => c.subject],
  ['priority', 'text', (c) => c.input.priority ?? 'normal'],
  ['requester_person', 'uuid', (c) => ('personId' in c.input.requester ? c.input.requester.personId : null)],
  [
    'requester_address',
    'text',
    (c) => ('email' in c.input.requester ? normalizeEmail(c.input.requester.email) : null),
  ],
  ['assignee_id', 'uuid', (c) => c.input.assigneeId ?? null],
  ['actor_id', 'uuid', (c) => c.input.actorId],
  ['message_id', 'uuid', (c) => c.messageId],
  ['body_text', 'text', (c) => c.plain?.text ?? null],
  ['body_html', 'text', (c) => c.plain?.html ?? null],
];

/** What the creating statements answer per creation. */
type CreationRow = Partial<TicketRow> & { requester_found: boolean; assignee_kind: string | null };

/** Per creation: the ticket, or undefined for an unknown requester address, or why it was refused. */
export type CreationResult = { ticket: Ticket | undefined } | { error: AppError };

/**
 * Creates tickets for known requesters, in the given order, with one statement
 * (create-together.ts groups the API's concurrent creations with it). Each creation stands alone:
 * one whose requester or assignee is refused is left out (its result says why), the others are
 * created. There are two statements, one for a single ticket and one for several: PostgreSQL plans
 * the several-ticket (array) form again on every execution, as it cannot know the arrays' lengths,
 * which for a single ticket costs about a sixth more than the one-row statement, planned once.
 * create-together.test.ts checks that both write the same rows.
 */
export async function createTicketsForKnownRequesters(
  tx: TenantTx,
  creations: PreparedTicket[],
): Promise<CreationResult[]> {
  if (creations.length === 0) return [];
  const rows = creations.length === 1 ? await createOne(tx, creations[0]!) : await createMany(tx, creations);
  const results: CreationResult[] = [];
  const rich: Parameters<typeof insertMessages>[1] = [];
  creations.forEach((c, i) => {
    const row = rows[i]!;
    const { input } = c;
    if (input.assigneeId && row.assignee_kind !== 'agent') {
      const message = row.assignee_kind === null ? 'no such person' : 'must be an agent';
      results.push({ error: validation(`assigneeId: ${message}`, [{ path: '/assigneeId', message }]) });
    } else if (!row.requester_found) {
      results.push(
        'personId' in input.requester
          ? {
              error: validation('requester/personId: no such person', [
                { path: '/requester/personId', message: 'no such person' },
              ]),
            }
          : { ticket: undefined },
      );
    } else if (row.id === null || row.id === undefined) {
      throw new Error(`tenant ${tx.tenantId} has no ticket counter (startTicketNumbers was not run)`);
    } else {
      results.push({ ticket: toTicket(row as TicketRow) });
      if (input.message && !c.plain)
        rich.push({
          ...input.message,
          id: c.messageId,
          text: input.message.text,
          ticketId: row.id,
          authorId: row.requester_id!,
          visibility: 'public',
          direction: 'inbound',
        });
    }
  });
  await insertMessages(tx, rich);
  return results;
}

/** The creating statement for several tickets. */
async function createMany(tx: TenantTx, creations: PreparedTicket[]): Promise<CreationRow[]> {
  const x = `SELECT * FROM unnest(${CREATION_COLUMNS.map(([, type], i) => `$${i + 2}::${type}[]`).join(', ')})
         WITH ORDINALITY AS x(${CREATION_COLUMNS.map(([name]) => name).join(', ')}, ord)`;
  const values = CREATION_COLUMNS.map(([, , value]) => creations.map(value));
  const { rows } = await tx.query<CreationRow>(
    `WITH x AS (
       ${x}
     ), checked AS (
       -- Lookups by key, one per creation (a join here may be planned as a scan of the whole table).
       SELECT x.*,
              coalesce((SELECT p.id FROM people p WHERE p.tenant_id = $1 AND p.id = x.requester_person),
                       (SELECT e.person_id FROM person_emails e
                         WHERE e.tenant_id = $1 AND e.address_normalized = x.requester_address)) AS requester_id,
              (SELECT a.kind FROM people a WHERE a.tenant_id = $1 AND a.id = x.assignee_id) AS assignee_kind
         FROM x
     ), ok AS (
       SELECT checked.*, row_number() OVER (ORDER BY ord) AS k, count(*) OVER () AS total
         FROM checked
        WHERE requester_id IS NOT NULL AND (assignee_id IS NULL OR assignee_kind = 'agent')
     ), n AS (
       UPDATE ticket_counters SET last_number = last_number + (SELECT count(*) FROM ok)
        WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM ok)
       RETURNING last_number
     ), t AS (
       INSERT INTO tickets (tenant_id, id, number, subject, priority, requester_id, assignee_id)
       SELECT $1, ok.id, n.last_number - ok.total + ok.k, ok.subject, ok.priority, ok.requester_id, ok.assignee_id
         FROM ok, n ORDER BY ok.ord
       RETURNING ${TICKET_COLUMNS}, tenant_id
     ), h AS (
       INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
       SELECT t.tenant_id, t.id, NULL, t.status, t.created_at, ok.actor_id FROM t JOIN ok ON ok.id = t.id ORDER BY ok.ord
     ), m AS (
       INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html)
       SELECT t.tenant_id, ok.message_id, t.id, t.requester_id, 'public', 'inbound', ok.body_text, ok.body_html
         FROM t JOIN ok ON ok.id = t.id WHERE ok.body_text IS NOT NULL ORDER BY ok.ord
     ), w AS (
       INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at) SELECT tenant_id, id, now() FROM t
     ), e AS (
       ${ticketCreatedEventsSql('t AS ticket JOIN ok ON ok.id = ticket.id', 'ok.actor_id')}
     )
     SELECT checked.requester_id IS NOT NULL AS requester_found, checked.assignee_kind, t.*
       FROM checked LEFT JOIN t ON t.id = checked.id
      ORDER BY checked.ord`,
    [tx.tenantId, ...values],
  );
  return rows;
}
