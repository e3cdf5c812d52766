// Operations other modules need on tickets as a whole: a person merged into another, a tenant
// removed, tickets locked for the SLA scheduler's evaluation.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';

/**
 * Points everything of the tenant's tickets that names `fromId` (requester, assignee, message author,
 * status history) at `toId` instead; returns how many tickets and messages moved.
 */
export async function movePersonReferences(
  tx: TenantTx,
  input: { fromId: string; toId: string },
): Promise<{ tickets: number; messages: number }> {
  const values = [tx.tenantId, input.fromId, input.toId];
  const tickets = await tx.query(
    `UPDATE tickets SET requester_id = CASE WHEN requester_id = $2 THEN $3 ELSE requester_id END,
                        assignee_id = CASE WHEN assignee_id = $2 THEN $3 ELSE assignee_id END,
                        updated_at = now()
      WHERE tenant_id = $1 AND (requester_id = $2 OR assignee_id = $2)`,
    values,
  );
  const messages = await tx.query(
    'UPDATE ticket_messages SET author_id = $3 WHERE tenant_id = $1 AND author_id = $2',
    values,
  );
  await tx.query(
    'UPDATE ticket_status_history SET changed_by = $3 WHERE tenant_id = $1 AND changed_by = $2',
    values,
  );
  return { tickets: tickets.rowCount ?? 0, messages: messages.rowCount ?? 0 };
}

/**
 * Removes every ticket of a tenant with what hangs on it (system transaction, as part of deleting
 * the tenant). Tickets and wake-ups have no cascading key to tenants (migrations 0011 and 0013):
 * tickets reach their tenant through their requester, whose key does not cascade to them.
 */
export async function deleteTenantTickets(sys: SystemTx, tenantId: string): Promise<void> {
  // Messages first: they also reference their author, whom the tenant's removal deletes.
  await sys.query('DELETE FROM ticket_messages WHERE tenant_id = $1', [tenantId]);
  await sys.query('DELETE FROM tickets WHERE tenant_id = $1', [tenantId]);
  // After the tickets: a change of a ticket that committed before their removal has written its
  // wake-up by now, and a later one finds no ticket.
  await sys.query('DELETE FROM ticket_wakeups WHERE tenant_id = $1', [tenantId]);
}

/**
 * Locks these tickets against changes (FOR NO KEY UPDATE, in id order: the order every change
 * takes them in) and returns the ids that exist.
 */
export async function lockTickets(tx: TenantTx, ticketIds: string[]): Promise<string[]> {
  if (ticketIds.length === 0) return [];
  const { rows } = await tx.query<{ id: string }>(
    'SELECT id FROM tickets WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR NO KEY UPDATE',
    [tx.tenantId, ticketIds],
  );
  return rows.map((r) => r.id);
}
