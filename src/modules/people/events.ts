// The identity event log: every change to a person's identities, emails, tokens, status or profile
// is recorded in the transaction that makes it. Append-only (the application role cannot update or
// delete rows; see migrations/0002_identity.sql). Events never hold a token or a secret.
import type { Principal } from '../../platform/http/auth.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';

export const IDENTITY_EVENT_TYPES = [
  'identity_added',
  'identity_removed',
  'email_added',
  'email_removed',
  'auto_merge',
  'manual_merge',
  'token_minted',
  'token_revoked',
  'status_changed',
  'profile_changed',
] as const;
export type IdentityEventType = (typeof IDENTITY_EVENT_TYPES)[number];

/** Who made a change: `person:<id>`, `token:<preview>` or `system:<component>`. */
export type Actor = `person:${string}` | `token:${string}` | `system:${string}`;

/** The actor of what an API caller does: its token's person. */
export const actorOf = (p: Principal): Actor => `person:${p.personId}`;

export interface IdentityEvent {
  id: string;
  personId: string;
  type: IdentityEventType;
  actor: Actor;
  before: unknown;
  after: unknown;
  createdAt: string;
}

export async function recordEvent(
  tx: TenantTx,
  event: { personId: string; type: IdentityEventType; actor: Actor; before?: unknown; after?: unknown },
): Promise<void> {
  await tx.query(
    `INSERT INTO identity_events (tenant_id, id, person_id, event_type, actor, before, after)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      tx.tenantId,
      uuidv7(),
      event.personId,
      event.type,
      event.actor,
      event.before === undefined ? null : JSON.stringify(event.before),
      event.after === undefined ? null : JSON.stringify(event.after),
    ],
  );
}

interface EventRow {
  id: string;
  person_id: string;
  event_type: IdentityEventType;
  actor: Actor;
  before: unknown;
  after: unknown;
  created_at: string;
}

/** A person's events, newest first. */
export async function listEvents(
  tx: TenantTx,
  input: { personId: string; limit?: number; cursor?: string },
): Promise<Page<IdentityEvent>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId, input.personId];
  let where = 'tenant_id = $1 AND person_id = $2';
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where += ' AND (created_at, id) < ($3::timestamptz, $4::uuid)';
  }
  values.push(limit + 1);
  const { rows } = await tx.query<EventRow>(
    `SELECT id, person_id, event_type, actor, before, after, created_at FROM identity_events
      WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, (r) => ({
    id: r.id,
    personId: r.person_id,
    type: r.event_type,
    actor: r.actor,
    before: r.before,
    after: r.after,
    createdAt: r.created_at,
  }));
}
