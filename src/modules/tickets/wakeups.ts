// Ticket wake-ups: when something that runs on time (the SLA scheduler) must look at a ticket next.
// Every change of a ticket that can matter to it sets the ticket's wake-up to "now" in the
// transaction that made the change, so the scheduler can never miss a committed change and never
// sees an uncommitted one. The scheduler claims due wake-ups and sets the next one through the
// operations below; nothing else writes this table.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';

/** Asks for these tickets to be looked at now (call in the transaction that changed them). */
export async function wakeTickets(tx: TenantTx, ticketIds: string[]): Promise<number> {
  if (ticketIds.length === 0) return 0;
  // In ticket order: the scheduler locks the wake-ups of the tickets it evaluates in that order too,
  // so the two can wait for each other but never deadlock.
  const { rowCount } = await tx.query(
    `INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at)
     SELECT $1, id, now() FROM unnest($2::uuid[]) AS id ORDER BY id
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(ticket_wakeups.next_wake_at, now())`,
    [tx.tenantId, [...new Set(ticketIds)]],
  );
  return rowCount ?? 0;
}

/** Wakes every ticket of the tenant that is not solved or closed (after a change of SLA policies). */
export async function wakeOpenTickets(tx: TenantTx): Promise<number> {
  const { rowCount } = await tx.query(
    `INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at)
     SELECT $1, id, now() FROM tickets
      WHERE tenant_id = $1 AND status NOT IN ('solved', 'closed') AND deleted_at IS NULL
      ORDER BY id
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(ticket_wakeups.next_wake_at, now())`,
    [tx.tenantId],
  );
  return rowCount ?? 0;
}

export interface DueWakeup {
  tenantId: string;
  ticketId: string;
}

/**
 * Locks up to `limit` wake-ups due at `nowSeconds`, across tenants, oldest first, skipping those
 * another scheduler holds (call in a system transaction; the locks last until it ends).
 */
export async function lockDueWakeups(
  sys: SystemTx,
  input: { nowSeconds: number; limit: number },
): Promise<DueWakeup[]> {
  const { rows } = await sys.query<{ tenant_id: string; ticket_id: string }>(
    `SELECT tenant_id, ticket_id FROM ticket_wakeups WHERE next_wake_at <= to_timestamp($1)
      ORDER BY next_wake_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [input.nowSeconds, input.limit],
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, ticketId: r.ticket_id }));
}

/** Moves locked wake-ups to `untilSeconds` (a claim: other schedulers leave them alone until then). */
export async function postponeWakeups(
  sys: SystemTx,
  wakeups: DueWakeup[],
  untilSeconds: number,
): Promise<void> {
  if (wakeups.length === 0) return;
  await sys.query(
    `UPDATE ticket_wakeups w SET next_wake_at = to_timestamp($3)
       FROM unnest($1::uuid[], $2::uuid[]) AS d (tenant_id, ticket_id)
      WHERE w.tenant_id = d.tenant_id AND w.ticket_id = d.ticket_id`,
    [wakeups.map((w) => w.tenantId), wakeups.map((w) => w.ticketId), untilSeconds],
  );
}

/** Removes wake-ups across tenants (system transaction): nothing is left to look at on those tickets. */
export async function dropWakeupsAcrossTenants(sys: SystemTx, wakeups: DueWakeup[]): Promise<void> {
  if (wakeups.length === 0) return;
  await sys.query(
    `DELETE FROM ticket_wakeups w USING unnest($1::uuid[], $2::uuid[]) AS d (tenant_id, ticket_id)
      WHERE w.tenant_id = d.tenant_id AND w.ticket_id = d.ticket_id`,
    [wakeups.map((w) => w.tenantId), wakeups.map((w) => w.ticketId)],
  );
}

/** Locks the wake-ups of these tickets (in ticket order) and returns the tickets that have one. */
export async function lockWakeups(tx: TenantTx, ticketIds: string[]): Promise<string[]> {
  if (ticketIds.length === 0) return [];
  const { rows } = await tx.query<{ ticket_id: string }>(
    `SELECT ticket_id FROM ticket_wakeups WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[])
      ORDER BY ticket_id FOR UPDATE`,
    [tx.tenantId, ticketIds],
  );
  return rows.map((r) => r.ticket_id);
}

/** Sets each ticket's next wake-up (seconds since the epoch). */
export async function setNextWakeups(tx: TenantTx, next: Map<string, number>): Promise<void> {
  if (next.size === 0) return;
  await tx.query(
    `UPDATE ticket_wakeups w SET next_wake_at = to_timestamp(x.at)
       FROM unnest($2::uuid[], $3::float8[]) AS x (ticket_id, at)
      WHERE w.tenant_id = $1 AND w.ticket_id = x.ticket_id`,
    [tx.tenantId, [...next.keys()], [...next.values()]],
  );
}

/** Removes the wake-ups of these tickets: nothing is left to look at on them. */
export async function dropWakeups(tx: TenantTx, ticketIds: string[]): Promise<void> {
  if (ticketIds.length === 0) return;
  await tx.query('DELETE FROM ticket_wakeups WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[])', [
    tx.tenantId,
    ticketIds,
  ]);
}
