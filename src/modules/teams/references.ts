// Conversation references: where the bot can reach a Teams user or conversation, as the last
// activity from there showed it. A reference is `(tenant, Teams user, conversation)`; the person
// behind the user is found through the identities (teams: the user id, entra: the object id) each
// time, never stored, so a link made later in triage takes effect at once.
import type { TenantTx } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';

export const CONVERSATION_TYPES = ['personal', 'groupChat', 'channel'] as const;
export type ConversationType = (typeof CONVERSATION_TYPES)[number];

export interface ReferenceInput {
  userId: string;
  aadObjectId: string | null;
  conversationId: string;
  conversationType: ConversationType;
  serviceUrl: string;
  entraTenantId: string | null;
  channelId: string;
  at: Date;
}

/**
 * How old a reference's last activity may grow before an activity that changes nothing else writes
 * it again: a busy conversation sends many activities (typing, messages), and a write each, with its
 * commit flushed, cost more than the rest of receiving one. The time orders a person's
 * conversations (personalConversationOf); a minute does not change which one is latest in practice.
 */
export const LAST_ACTIVITY_RESOLUTION_MS = 60_000;

/**
 * Stores or refreshes the reference; a new activity makes a stale reference usable again. Answers
 * without writing when the stored reference already says all this and its last activity is recent.
 */
export async function upsertReference(tx: TenantTx, input: ReferenceInput): Promise<void> {
  const { rows } = await tx.query<{ current: boolean }>(
    `SELECT aad_object_id IS NOT DISTINCT FROM coalesce($4, aad_object_id)
            AND conversation_type = $5 AND service_url = $6
            AND entra_tenant_id IS NOT DISTINCT FROM coalesce($7, entra_tenant_id) AND channel_id = $8
            AND stale_at IS NULL AND last_activity_at >= $9 AS current
       FROM teams_conversation_references
      WHERE tenant_id = $1 AND user_id = $2 AND conversation_id = $3`,
    [
      tx.tenantId,
      input.userId,
      input.conversationId,
      input.aadObjectId,
      input.conversationType,
      input.serviceUrl,
      input.entraTenantId,
      input.channelId,
      new Date(input.at.getTime() - LAST_ACTIVITY_RESOLUTION_MS),
    ],
  );
  if (rows[0]?.current) return;
  await tx.query(
    `INSERT INTO teams_conversation_references AS r
            (tenant_id, id, user_id, aad_object_id, conversation_id, conversation_type, service_url,
             entra_tenant_id, channel_id, last_activity_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (tenant_id, user_id, conversation_id) DO UPDATE SET
            aad_object_id = coalesce(excluded.aad_object_id, r.aad_object_id),
            conversation_type = excluded.conversation_type,
            service_url = excluded.service_url,
            entra_tenant_id = coalesce(excluded.entra_tenant_id, r.entra_tenant_id),
            channel_id = excluded.channel_id,
            last_activity_at = greatest(r.last_activity_at, excluded.last_activity_at),
            stale_at = NULL,
            stale_reason = NULL`,
    [
      tx.tenantId,
      uuidv7(),
      input.userId,
      input.aadObjectId,
      input.conversationId,
      input.conversationType,
      input.serviceUrl,
      input.entraTenantId,
      input.channelId,
      input.at,
    ],
  );
}

/** The person's most recently used personal conversation with the bot that is not stale. */
export async function personalConversationOf(tx: TenantTx, personId: string): Promise<string | undefined> {
  const { rows } = await tx.query<{ conversation_id: string }>(
    `SELECT r.conversation_id FROM teams_conversation_references r
      WHERE r.tenant_id = $1 AND r.conversation_type = 'personal' AND r.stale_at IS NULL
        AND EXISTS (SELECT 1 FROM person_identities i
                     WHERE i.tenant_id = r.tenant_id AND i.person_id = $2
                       AND ((i.kind = 'teams' AND i.external_id = r.user_id)
                         OR (i.kind = 'entra' AND i.external_id = r.aad_object_id)))
      ORDER BY r.last_activity_at DESC, r.id DESC LIMIT 1`,
    [tx.tenantId, personId],
  );
  return rows[0]?.conversation_id;
}

/** Whether the tenant knows a channel or group chat with this conversation id. */
export async function sharedConversationExists(tx: TenantTx, conversationId: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `SELECT 1 FROM teams_conversation_references
      WHERE tenant_id = $1 AND conversation_id = $2 AND conversation_type IN ('channel', 'groupChat') LIMIT 1`,
    [tx.tenantId, conversationId],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Where to send to a conversation: the serviceUrl of its most recent reference, and whether every
 * reference of it is stale (then nothing should be sent until a new activity arrives).
 */
export async function conversationTarget(
  tx: TenantTx,
  conversationId: string,
): Promise<{ serviceUrl: string; stale: boolean } | undefined> {
  const { rows } = await tx.query<{ service_url: string; stale: boolean }>(
    `SELECT service_url, stale_at IS NOT NULL AS stale FROM teams_conversation_references
      WHERE tenant_id = $1 AND conversation_id = $2
      ORDER BY (stale_at IS NULL) DESC, last_activity_at DESC LIMIT 1`,
    [tx.tenantId, conversationId],
  );
  return rows[0] ? { serviceUrl: rows[0].service_url, stale: rows[0].stale } : undefined;
}

/** Marks every reference of the conversation stale (a send to it failed for good). Returns how many. */
export async function markConversationStale(
  tx: TenantTx,
  conversationId: string,
  reason: string,
): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE teams_conversation_references SET stale_at = now(), stale_reason = $3
      WHERE tenant_id = $1 AND conversation_id = $2 AND stale_at IS NULL`,
    [tx.tenantId, conversationId, reason.slice(0, 200)],
  );
  return rowCount ?? 0;
}
