// Threading: which existing ticket does a message belong to? In this order (DESIGN §5.1):
//   1. a Message-ID Relaydesk signed for this tenant, in In-Reply-To or References;
//   2. any Message-ID stored for this tenant and mailbox, References read newest first;
//   3. a [#T-n] subject tag, only when the sender is the ticket's requester or a participant;
// otherwise none (a new ticket).
import type { TenantTx } from '../../platform/db/tx.ts';
import type { TicketStatus } from '../tickets/service.ts';
import { normalizeEmail } from '../people/service.ts';
import { subjectTicketNumber } from './mime.ts';
import { verifyMessageId } from './signing.ts';

export interface ThreadTarget {
  ticketId: string;
  status: TicketStatus;
  requesterId: string;
  updatedAt: string;
  /** Which rule matched: signed_id, message_id or subject_tag. */
  rule: 'signed_id' | 'message_id' | 'subject_tag' | 'bounce';
}

async function ticketById(tx: TenantTx, id: string): Promise<Omit<ThreadTarget, 'rule'> | undefined> {
  const { rows } = await tx.query<{
    id: string;
    status: TicketStatus;
    requester_id: string;
    updated_at: string;
  }>('SELECT id, status, requester_id, updated_at FROM tickets WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  const r = rows[0];
  return r && { ticketId: r.id, status: r.status, requesterId: r.requester_id, updatedAt: r.updated_at };
}

/** The ticket of the newest of `messageIds` that this mailbox has stored. */
export async function ticketByMessageIds(
  tx: TenantTx,
  mailboxId: string,
  messageIds: string[],
): Promise<string | undefined> {
  if (messageIds.length === 0) return undefined;
  const { rows } = await tx.query<{ ticket_id: string }>(
    `SELECT ticket_id FROM message_keys
      WHERE tenant_id = $1 AND mailbox_id = $2 AND key = ANY($3::text[]) AND ticket_id IS NOT NULL
      ORDER BY array_position($3::text[], key) LIMIT 1`,
    [tx.tenantId, mailboxId, messageIds],
  );
  return rows[0]?.ticket_id;
}

export async function findThread(
  tx: TenantTx,
  input: {
    mailboxId: string;
    references: string[];
    subject: string;
    senderId: string;
    senderAddress: string;
    messageIdKey: Buffer;
  },
): Promise<ThreadTarget | undefined> {
  for (const ref of input.references) {
    const ticketId = verifyMessageId(input.messageIdKey, tx.tenantId, ref);
    if (ticketId) {
      const t = await ticketById(tx, ticketId);
      if (t) return { ...t, rule: 'signed_id' };
    }
  }
  const byId = await ticketByMessageIds(tx, input.mailboxId, input.references);
  if (byId) {
    const t = await ticketById(tx, byId);
    if (t) return { ...t, rule: 'message_id' };
  }
  const number = subjectTicketNumber(input.subject);
  if (number !== undefined) {
    const { rows } = await tx.query<{
      id: string;
      status: TicketStatus;
      requester_id: string;
      updated_at: string;
      allowed: boolean;
    }>(
      `SELECT t.id, t.status, t.requester_id, t.updated_at,
              (t.requester_id = $3 OR EXISTS (SELECT 1 FROM ticket_participants p
                  WHERE p.tenant_id = t.tenant_id AND p.ticket_id = t.id AND p.address_normalized = $4)) AS allowed
         FROM tickets t WHERE t.tenant_id = $1 AND t.number = $2`,
      [tx.tenantId, number, input.senderId, normalizeEmail(input.senderAddress)],
    );
    const r = rows[0];
    // A tag from a stranger is ignored: it must not let anyone write into any ticket by guessing numbers.
    if (r?.allowed)
      return {
        ticketId: r.id,
        status: r.status,
        requesterId: r.requester_id,
        updatedAt: r.updated_at,
        rule: 'subject_tag',
      };
  }
  return undefined;
}
