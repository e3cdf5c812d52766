// Who has a ticket open right now (collision detection): the console sends a heartbeat while a
// ticket is on screen, saying whether the agent is only viewing or writing a reply. A row lives
// PRESENCE_TTL_MS past its last heartbeat; expired rows are ignored by every read and deleted by the
// next heartbeat on the same ticket, so a closed browser tab disappears without anyone cleaning up;
// the scheduler's hourly expirePresence takes those of tickets nobody opens again.
// A page that names itself and numbers its requests (`order`) is taken in its own order: its leave
// leaves a marker row (state 'left') that a request of the same page numbered before it cannot
// overwrite, so a heartbeat overtaken by the leave does not bring the person back.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';

export const PRESENCE_STATES = ['viewing', 'replying'] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];
export const PRESENCE_TTL_MS = 30_000;

export interface PresentPerson {
  id: string;
  displayName: string;
  state: PresenceState;
  /** The last heartbeat. */
  since: string;
}

/** Which page of the person's sent a presence request, and its number among that page's requests. */
export interface PresenceOrder {
  page: string;
  seq: number;
}

/**
 * Writes the person's row on the ticket: a heartbeat, or (state 'left') the marker of a leave. An
 * existing row is replaced unless it came from the same page with a number at or above this one's
 * (writes without `order` always replace, as before).
 */
async function upsertPresence(
  tx: TenantTx,
  input: {
    ticketId: string;
    personId: string;
    state: PresenceState | 'left';
    now: Date;
    order?: PresenceOrder | undefined;
  },
): Promise<void> {
  await tx.query(
    `INSERT INTO ticket_presence (tenant_id, ticket_id, person_id, state, updated_at, expires_at, page, seq)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant_id, ticket_id, person_id)
     DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
                   page = excluded.page, seq = excluded.seq
     WHERE ticket_presence.page IS DISTINCT FROM excluded.page OR ticket_presence.seq IS NULL
        OR excluded.seq IS NULL OR excluded.seq > ticket_presence.seq`,
    [
      tx.tenantId,
      input.ticketId,
      input.personId,
      input.state,
      input.now,
      new Date(input.now.getTime() + PRESENCE_TTL_MS),
      input.order?.page ?? null,
      input.order?.seq ?? null,
    ],
  );
}

async function assertTicket(tx: TenantTx, ticketId: string): Promise<void> {
  const { rowCount } = await tx.query(
    'SELECT 1 FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL',
    [tx.tenantId, ticketId],
  );
  if (rowCount === 0) throw notFound('ticket');
}

/** Records a heartbeat of the person on the ticket (and drops the ticket's expired rows). */
export async function touchPresence(
  tx: TenantTx,
  input: {
    ticketId: string;
    personId: string;
    state: PresenceState;
    now: Date;
    order?: PresenceOrder | undefined;
  },
): Promise<void> {
  await assertTicket(tx, input.ticketId);
  await tx.query('DELETE FROM ticket_presence WHERE tenant_id = $1 AND ticket_id = $2 AND expires_at <= $3', [
    tx.tenantId,
    input.ticketId,
    input.now,
  ]);
  await upsertPresence(tx, input);
}

/**
 * The person leaves the ticket (closing it in the console). Leaving twice is fine. With `order`, what
 * stays is a marker of the leave, until it expires like a heartbeat.
 */
export async function leavePresence(
  tx: TenantTx,
  input: { ticketId: string; personId: string; now: Date; order?: PresenceOrder | undefined },
): Promise<void> {
  await assertTicket(tx, input.ticketId);
  if (!input.order) {
    await tx.query('DELETE FROM ticket_presence WHERE tenant_id = $1 AND ticket_id = $2 AND person_id = $3', [
      tx.tenantId,
      input.ticketId,
      input.personId,
    ]);
    return;
  }
  await upsertPresence(tx, { ...input, state: 'left' });
}

/** Who is on the ticket now, replying first, then by name; `exceptPersonId` leaves the asker out. */
export async function ticketPresence(
  tx: TenantTx,
  input: { ticketId: string; now: Date; exceptPersonId?: string | undefined; checkTicket?: boolean },
): Promise<PresentPerson[]> {
  if (input.checkTicket ?? true) await assertTicket(tx, input.ticketId);
  const { rows } = await tx.query<{
    id: string;
    display_name: string;
    state: PresenceState;
    updated_at: string;
  }>(
    `SELECT p.id, p.display_name, x.state, x.updated_at
       FROM ticket_presence x JOIN people p ON p.tenant_id = x.tenant_id AND p.id = x.person_id
      WHERE x.tenant_id = $1 AND x.ticket_id = $2 AND x.expires_at > $3 AND x.state <> 'left'
        AND ($4::uuid IS NULL OR x.person_id <> $4::uuid)
      ORDER BY x.state = 'replying' DESC, p.display_name, p.id`,
    [tx.tenantId, input.ticketId, input.now, input.exceptPersonId ?? null],
  );
  return rows.map((r) => ({ id: r.id, displayName: r.display_name, state: r.state, since: r.updated_at }));
}

/**
 * Deletes the rows past their expiry on every tenant's tickets (the scheduler, hourly): the
 * heartbeats and leave markers of tickets nobody opened again, which no heartbeat cleared.
 */
export async function expirePresence(pool: Pool, now: Date): Promise<number> {
  const { rowCount } = await withSystemTx(pool, (sys) =>
    sys.query('DELETE FROM ticket_presence WHERE expires_at <= $1', [now]),
  );
  return rowCount ?? 0;
}
