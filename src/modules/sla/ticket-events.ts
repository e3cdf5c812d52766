// Reading what the SLA engine did on a ticket (its sla_events), for the ticket's history.
import type { TenantTx } from '../../platform/db/tx.ts';

export interface SlaEvent {
  id: string;
  metric: string;
  cycle: number;
  /** started, paused, resumed, threshold, breached, escalation, fulfilled, recomputed, cancelled. */
  type: string;
  at: string;
  data: Record<string, unknown>;
}

/** The ticket's SLA events, the newest `limit` of them, oldest first. */
export async function ticketSlaEvents(
  tx: TenantTx,
  input: { ticketId: string; limit: number },
): Promise<SlaEvent[]> {
  const { rows } = await tx.query<SlaEvent>(
    `SELECT * FROM (
       SELECT id, metric, cycle, type, at, data FROM sla_events
        WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY at DESC, id DESC LIMIT $3) e
      ORDER BY at, id`,
    [tx.tenantId, input.ticketId, input.limit],
  );
  return rows;
}
