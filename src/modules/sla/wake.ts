// Asking the scheduler to evaluate tickets again. These run in the transaction that made the change,
// so the wake-up commits (or rolls back) with it: the scheduler can never miss a committed change,
// and it evaluates the ticket — and writes the SLA events the change causes — in its own transaction
// right after, at most a second later.
import type { TenantTx } from '../../platform/db/tx.ts';

/** Asks the scheduler to look at this ticket now (call in the transaction that changed it). */
export async function scheduleSlaWake(tx: TenantTx, ticketId: string): Promise<void> {
  await tx.query(
    `INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, now())
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(sla_wakeups.next_wake_at, now())`,
    [tx.tenantId, ticketId],
  );
}

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
  // In ticket order: the scheduler locks the wake-ups of the tickets it evaluates in that order too,
  // so the two can wait for each other but never deadlock.
  const { rowCount } = await tx.query(
    `INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at)
     SELECT $1, ticket_id, now() FROM (
       SELECT ticket_id FROM sla_clocks
        WHERE tenant_id = $1 AND status NOT IN ('fulfilled', 'cancelled')
          AND ($2::uuid IS NULL OR calendar_id = $2::uuid)
       UNION
       SELECT id FROM tickets WHERE $3 AND tenant_id = $1 AND status NOT IN ('solved', 'closed') AND deleted_at IS NULL
     ) woken ORDER BY ticket_id
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(sla_wakeups.next_wake_at, now())`,
    [tx.tenantId, scope.calendarId ?? null, scope.openTickets ?? false],
  );
  return rowCount ?? 0;
}
