// Unmapped identities: chat and other channel identities seen but linked to nobody, kept for an
// operator to link or dismiss. Recording a sighting is one atomic upsert and never fails its caller.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemTx, withTenant } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logging.ts';
import { isUuid, uuidv7 } from '../../platform/ids.ts';
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

// One statement records a whole batch of sightings: duplicates inside the batch are counted
// together first (ON CONFLICT may touch a row only once per statement), rows are sorted so that
// concurrent batches lock them in the same order, and identities already linked are skipped.
const UPSERT_BATCH = `
  INSERT INTO unmapped_identities AS u
         (tenant_id, id, kind, external_id, sightings, sample_event_type, sample_context, display_name, email)
  SELECT $1, x.id, x.kind, x.external_id, x.n, x.event_type, x.context, x.display_name, x.email
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[])
         AS x(id, kind, external_id, n, event_type, context, display_name, email)
   WHERE NOT EXISTS (SELECT 1 FROM person_identities i
                      WHERE i.tenant_id = $1 AND i.kind = x.kind AND i.external_id = x.external_id)
  ON CONFLICT (tenant_id, kind, external_id) DO UPDATE SET
         last_seen_at = now(),
         sightings = u.sightings + excluded.sightings,
         sample_event_type = coalesce(excluded.sample_event_type, u.sample_event_type),
         sample_context = coalesce(excluded.sample_context, u.sample_context),
         display_name = coalesce(excluded.display_name, u.display_name),
         email = coalesce(excluded.email, u.email)`;

interface Aggregated {
  kind: string;
  externalId: string;
  n: number;
  eventType: string | null;
  context: string | null;
  displayName: string | null;
  email: string | null;
}

function aggregate(sightings: Sighting[]): Aggregated[] {
  const byKey = new Map<string, Aggregated>();
  for (const s of sightings) {
    const externalId = s.externalId.slice(0, 512);
    const key = `${s.kind}\u0000${externalId}`;
    const row = byKey.get(key) ?? {
      kind: s.kind,
      externalId,
      n: 0,
      eventType: null,
      context: null,
      displayName: null,
      email: null,
    };
    row.n++;
    // The latest sighting's samples win, as with one upsert per sighting.
    if (s.eventType !== undefined) row.eventType = s.eventType.slice(0, 64);
    if (s.context !== undefined) row.context = [...s.context].slice(0, CONTEXT_LIMIT).join('');
    if (s.displayName !== undefined) row.displayName = s.displayName.slice(0, 200);
    if (s.email !== undefined) row.email = s.email.slice(0, 254);
    byKey.set(key, row);
  }
  return [...byKey.values()].sort((a, b) => (a.kind + a.externalId < b.kind + b.externalId ? -1 : 1));
}

async function upsertBatch(tx: TenantTx, sightings: Sighting[]): Promise<void> {
  const rows = aggregate(sightings);
  await tx.query(UPSERT_BATCH, [
    tx.tenantId,
    rows.map(() => uuidv7()),
    rows.map((r) => r.kind),
    rows.map((r) => r.externalId),
    rows.map((r) => r.n),
    rows.map((r) => r.eventType),
    rows.map((r) => r.context),
    rows.map((r) => r.displayName),
    rows.map((r) => r.email),
  ]);
}

/** Records a sighting inside the caller's transaction. */
export async function recordUnmappedInTx(tx: TenantTx, sighting: Sighting): Promise<void> {
  await upsertBatch(tx, [sighting]);
}

/**
 * Group commit for sightings: calls that arrive while a batch is being written wait for the next
 * batch, which is written with one statement in one transaction. A caller's promise resolves once
 * its sighting is committed, so nothing is acknowledged that a crash could lose.
 */
class SightingRecorder {
  private readonly pending = new Map<string, { sighting: Sighting; done: (ok: boolean) => void }[]>();
  private inFlight = 0;
  private scheduled = false;
  private static readonly MAX_IN_FLIGHT = 4;
  private static readonly MAX_BATCH = 1000;

  private readonly pool: Pool;
  private readonly logger: Logger | undefined;

  constructor(pool: Pool, logger: Logger | undefined) {
    this.pool = pool;
    this.logger = logger;
  }

  record(tenantId: string, sighting: Sighting): Promise<boolean> {
    return new Promise((done) => {
      const list = this.pending.get(tenantId);
      if (list) list.push({ sighting, done });
      else this.pending.set(tenantId, [{ sighting, done }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= SightingRecorder.MAX_IN_FLIGHT || this.pending.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushOne();
    });
  }

  private flushOne(): void {
    const first = this.pending.entries().next();
    if (first.done) return;
    const [tenantId, list] = first.value;
    const batch = list.splice(0, SightingRecorder.MAX_BATCH);
    if (list.length === 0) this.pending.delete(tenantId);
    this.inFlight++;
    this.write(
      tenantId,
      batch.map((b) => b.sighting),
    )
      .then((ok) => {
        for (const b of batch) b.done(ok);
      })
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
    this.schedule();
  }

  private async write(tenantId: string, sightings: Sighting[]): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await withTenant(this.pool, tenantId, (tx) => upsertBatch(tx, sightings));
        return true;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt < 2 && (code === '40P01' || code === '40001')) continue; // deadlock or serialization: retry
        this.logger?.warn({ err, sightings: sightings.length }, 'recording unmapped identities failed');
        return false;
      }
    }
  }
}

const recorders = new WeakMap<Pool, SightingRecorder>();

/**
 * Records a sighting. Never throws: a channel must not fail because triage bookkeeping did (the
 * failure is logged). Resolves to whether the sighting was stored.
 */
export async function recordUnmapped(
  pool: Pool,
  tenantId: string,
  sighting: Sighting,
  logger?: Logger,
): Promise<boolean> {
  if (!IDENTITY_KIND_RE.test(sighting.kind) || sighting.externalId.trim() === '' || !isUuid(tenantId)) {
    logger?.warn({ kind: sighting.kind }, 'ignored an unmapped sighting with an invalid identity or tenant');
    return false;
  }
  let recorder = recorders.get(pool);
  if (!recorder) {
    recorder = new SightingRecorder(pool, logger);
    recorders.set(pool, recorder);
  }
  return recorder.record(tenantId, sighting);
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
  const { rowCount } = await withSystemTx(pool, (sys) =>
    sys.query('DELETE FROM unmapped_identities WHERE last_seen_at < now() - make_interval(days => $1)', [
      ttlDays,
    ]),
  );
  return rowCount ?? 0;
}
