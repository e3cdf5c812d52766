// Unmapped identities: chat and other channel identities seen but linked to nobody, kept for an
// operator to link or dismiss. Recording a sighting is one atomic upsert and never fails its caller.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logging.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import type { Actor } from './events.ts';
import { addIdentity, assertIdentity, IDENTITY_KIND_RE } from './identities.ts';

/** A row with no sighting for this long is expired. */
export const UNMAPPED_TTL_DAYS = 30;
const CONTEXT_LIMIT = 100;

export interface Sighting {
  kind: string;
  externalId: string;
  /** What the channel saw, e.g. "message" or "mention". */
  eventType?: string;
  /** A short sample (cut to 100 characters). */
  context?: string;
  /** Name and email the channel showed, only as suggestions for triage (never linked automatically). */
  displayName?: string;
  email?: string;
}

export interface UnmappedIdentity {
  id: string;
  kind: string;
  externalId: string;
  firstSeenAt: string;
  lastSeenAt: string;
  sightings: number;
  sampleEventType: string | null;
  sampleContext: string | null;
  displayName: string | null;
  email: string | null;
  /** People whose name matches the sighting's display name: suggestions only. */
  suggestions: { personId: string; displayName: string }[];
}

const UPSERT = `
  INSERT INTO unmapped_identities AS u
         (tenant_id, id, kind, external_id, sample_event_type, sample_context, display_name, email)
  SELECT $1, $2, $3, $4, $5, $6, $7, $8
   WHERE NOT EXISTS (SELECT 1 FROM person_identities i WHERE i.tenant_id = $1 AND i.kind = $3 AND i.external_id = $4)
  ON CONFLICT (tenant_id, kind, external_id) DO UPDATE SET
         last_seen_at = now(),
         sightings = u.sightings + 1,
         sample_event_type = coalesce(excluded.sample_event_type, u.sample_event_type),
         sample_context = coalesce(excluded.sample_context, u.sample_context),
         display_name = coalesce(excluded.display_name, u.display_name),
         email = coalesce(excluded.email, u.email)`;

function upsertValues(tenantId: string, s: Sighting): unknown[] {
  return [
    tenantId,
    uuidv7(),
    s.kind,
    s.externalId.slice(0, 512),
    s.eventType?.slice(0, 64) ?? null,
    s.context === undefined ? null : [...s.context].slice(0, CONTEXT_LIMIT).join(''),
    s.displayName?.slice(0, 200) ?? null,
    s.email?.slice(0, 254) ?? null,
  ];
}

/** Records a sighting inside the caller's transaction. */
export async function recordUnmappedInTx(tx: TenantTx, sighting: Sighting): Promise<void> {
  await tx.query(UPSERT, upsertValues(tx.tenantId, sighting));
}

/**
 * Records a sighting in its own transaction. Never throws: a channel must not fail because triage
 * bookkeeping did (the failure is logged). Returns whether the sighting was stored.
 */
export async function recordUnmapped(
  pool: Pool,
  tenantId: string,
  sighting: Sighting,
  logger?: Logger,
): Promise<boolean> {
  if (!IDENTITY_KIND_RE.test(sighting.kind) || sighting.externalId.trim() === '') {
    logger?.warn({ kind: sighting.kind }, 'ignored an unmapped sighting with an invalid identity');
    return false;
  }
  try {
    await withTenant(pool, tenantId, (tx) => tx.query(UPSERT, upsertValues(tenantId, sighting)));
    return true;
  } catch (err) {
    logger?.warn({ err, kind: sighting.kind }, 'recording an unmapped identity failed');
    return false;
  }
}

interface Row {
  id: string;
  kind: string;
  external_id: string;
  first_seen_at: string;
  last_seen_at: string;
  sightings: number;
  sample_event_type: string | null;
  sample_context: string | null;
  display_name: string | null;
  email: string | null;
  created_at: string;
  suggestions: { personId: string; displayName: string }[] | null;
}

export async function listUnmapped(
  tx: TenantTx,
  input: { kind?: string; limit?: number; cursor?: string },
): Promise<Page<UnmappedIdentity>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId, UNMAPPED_TTL_DAYS];
  const where = ['u.tenant_id = $1', 'u.last_seen_at > now() - make_interval(days => $2)'];
  if (input.kind) {
    values.push(input.kind);
    where.push(`u.kind = $${values.length}`);
  }
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(u.last_seen_at, u.id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<Row>(
    `SELECT u.*, u.last_seen_at AS created_at,
            (SELECT json_agg(json_build_object('personId', p.id, 'displayName', p.display_name))
               FROM (SELECT id, display_name FROM people p
                      WHERE p.tenant_id = u.tenant_id AND u.display_name IS NOT NULL
                        AND lower(p.display_name) = lower(u.display_name)
                      ORDER BY p.created_at LIMIT 5) p) AS suggestions
       FROM unmapped_identities u
      WHERE ${where.join(' AND ')}
      ORDER BY u.last_seen_at DESC, u.id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, (r) => ({
    id: r.id,
    kind: r.kind,
    externalId: r.external_id,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    sightings: r.sightings,
    sampleEventType: r.sample_event_type,
    sampleContext: r.sample_context,
    displayName: r.display_name,
    email: r.email,
    suggestions: r.suggestions ?? [],
  }));
}

/** Links an unmapped identity to a person: creates the identity (identity_added) and removes the row. */
export async function linkUnmapped(
  tx: TenantTx,
  input: { id: string; personId: string; actor: Actor },
): Promise<void> {
  const { rows } = await tx.query<{ kind: string; external_id: string }>(
    'SELECT kind, external_id FROM unmapped_identities WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
    [tx.tenantId, input.id],
  );
  if (!rows[0]) throw notFound('unmapped identity');
  await addIdentity(
    tx,
    input.personId,
    assertIdentity({ kind: rows[0].kind, externalId: rows[0].external_id }),
    input.actor,
  );
  await tx.query('DELETE FROM unmapped_identities WHERE tenant_id = $1 AND id = $2', [tx.tenantId, input.id]);
}

export async function dismissUnmapped(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM unmapped_identities WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('unmapped identity');
}

/** Deletes rows silent for longer than the TTL, in every tenant (a scheduler job). Returns how many. */
export async function expireUnmapped(pool: Pool, ttlDays = UNMAPPED_TTL_DAYS): Promise<number> {
  const { rowCount } = await pool.query(
    'DELETE FROM unmapped_identities WHERE last_seen_at < now() - make_interval(days => $1)',
    [ttlDays],
  );
  return rowCount ?? 0;
}
