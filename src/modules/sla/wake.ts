// Asking the scheduler to evaluate tickets again after a change of SLA configuration. Ticket
// changes wake their tickets themselves (the tickets module writes the wake-up in the changing
// transaction); this is for what only the SLA module knows about: which tickets a calendar or
// policy change concerns.
import type { TenantTx } from '../../platform/db/tx.ts';
import { wakeOpenTickets, wakeTickets } from '../tickets/wakeups.ts';

/**
 * After a change of SLA configuration (call in its transaction): wakes the tenant's tickets whose
 * clocks still run, so they are recomputed (and `recomputed` events written) under the new
 * configuration. With `calendarId`, only the clocks computed on that calendar. With
 * `openTickets`, also every ticket not solved or closed: a new or changed policy may now be the
 * first match of tickets that had no clocks, or other ones. Returns how many tickets were woken.
 */
export async function scheduleSlaRecompute(
  tx: TenantTx,
  scope: { calendarId?: string; openTickets?: boolean } = {},
): Promise<number> {
  const { rows } = await tx.query<{ ticket_id: string }>(
    `SELECT DISTINCT ticket_id FROM sla_clocks
      WHERE tenant_id = $1 AND status NOT IN ('fulfilled', 'cancelled')
        AND ($2::uuid IS NULL OR calendar_id = $2::uuid)`,
    [tx.tenantId, scope.calendarId ?? null],
  );
  const running = await wakeTickets(
    tx,
    rows.map((r) => r.ticket_id),
  );
  return running + (scope.openTickets ? await wakeOpenTickets(tx) : 0);
}
