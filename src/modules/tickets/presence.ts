// Who has a ticket open right now (collision detection): the console sends a heartbeat while a
// ticket is on screen, saying whether the agent is only viewing or writing a reply. A row lives
// PRESENCE_TTL_MS past its last heartbeat; expired rows are ignored by every read and deleted by the
// next heartbeat on the same ticket, so a closed browser tab disappears without anyone cleaning up.
import type { TenantTx } from '../../platform/db/tx.ts';
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
  input: { ticketId: string; personId: string; state: PresenceState; now: Date },
): Promise<void> {
  await assertTicket(tx, input.ticketId);
  await tx.query('DELETE FROM ticket_presence WHERE tenant_id = $1 AND ticket_id = $2 AND expires_at <= $3', [
    tx.tenantId,
    input.ticketId,
    input.now,
  ]);
  await tx.query(
    `INSERT INTO ticket_presence (tenant_id, ticket_id, person_id, state, updated_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id, ticket_id, person_id)
     DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
    [
      tx.tenantId,
      input.ticketId,
      input.personId,
      input.state,
      input.now,
      new Date(input.now.getTime() + PRESENCE_TTL_MS),
    ],
  );
}

/** The person leaves the ticket (closing it in the console). Leaving twice is fine. */
export async function leavePresence(
  tx: TenantTx,
  input: { ticketId: string; personId: string },
): Promise<void> {
  await assertTicket(tx, input.ticketId);
  await tx.query('DELETE FROM ticket_presence WHERE tenant_id = $1 AND ticket_id = $2 AND person_id = $3', [
    tx.tenantId,
    input.ticketId,
    input.personId,
  ]);
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
      WHERE x.tenant_id = $1 AND x.ticket_id = $2 AND x.expires_at > $3
        AND ($4::uuid IS NULL OR x.person_id <> $4::uuid)
      ORDER BY x.state = 'replying' DESC, p.display_name, p.id`,
    [tx.tenantId, input.ticketId, input.now, input.exceptPersonId ?? null],
  );
  return rows.map((r) => ({ id: r.id, displayName: r.display_name, state: r.state, since: r.updated_at }));
}
