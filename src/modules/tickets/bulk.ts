// Changing many tickets at once (the inbox's bulk assign and status change): the same operation as
// PATCH /tickets/:id, applied ticket by ticket, each in a transaction of its own.
//
// Why not one transaction for all: a ticket that cannot be changed (deleted meanwhile, another
// tenant's id) must not undo the others, and the caller is told per ticket; each change keeps its
// own status history, events and SLA wake-up exactly as a single update would; and no transaction
// holds the locks of 200 tickets while inbound mail or the SLA scheduler wait for one of them (nor
// takes them in an order that could deadlock with theirs).
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, type ErrorCode, validation } from '../../platform/errors.ts';
import { updateTicket } from './changes.ts';
import type { TicketPriority, TicketStatus } from './model.ts';

/** Most tickets one request changes. */
export const MAX_BULK = 200;

export interface BulkChanges {
  status?: TicketStatus | undefined;
  priority?: TicketPriority | undefined;
  /** null unassigns. */
  assigneeId?: string | null | undefined;
}

export interface BulkResult {
  ticketId: string;
  ok: boolean;
  /** Why this ticket was not changed (not_found, validation_failed, ...). */
  code?: ErrorCode;
}

/**
 * Applies `changes` to each ticket, in the order given. A failure of the database itself (not a
 * refusal of one ticket) stops the run and is thrown: the tickets before it stay changed.
 */
export async function bulkUpdateTickets(
  pool: Pool,
  input: { tenantId: string; ticketIds: string[]; changes: BulkChanges; actorId: string },
): Promise<BulkResult[]> {
  const assigneeId = input.changes.assigneeId;
  // A wrong assignee is wrong for every ticket: the request is refused as a whole.
  if (assigneeId) {
    const { rows } = await withTenantRead(pool, input.tenantId, (tx) =>
      tx.query<{ kind: string }>('SELECT kind FROM people WHERE tenant_id = $1 AND id = $2', [
        tx.tenantId,
        assigneeId,
      ]),
    );
    if (rows[0]?.kind !== 'agent') {
      const message = rows[0] ? 'must be an agent' : 'no such person';
      throw validation(`changes.assigneeId: ${message}`, [{ path: '/changes/assigneeId', message }]);
    }
  }
  const results: BulkResult[] = [];
  for (const ticketId of input.ticketIds) {
    try {
      await withTenant(pool, input.tenantId, (tx) =>
        updateTicket(tx, { ...input.changes, ticketId, actorId: input.actorId }),
      );
      results.push({ ticketId, ok: true });
    } catch (err) {
      if (!(err instanceof AppError) || err.code === 'database_unavailable') throw err;
      results.push({ ticketId, ok: false, code: err.code });
    }
  }
  return results;
}
