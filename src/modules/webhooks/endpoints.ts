// Webhook endpoints (webhook_endpoints): what a tenant registered, its sealed secrets, and its health.
// Only this file writes the table. A secret leaves the module twice: in the answer that made it
// (create, rotate) and, unsealed, to the sender that signs with it.
import type { Clock } from '../../platform/clock.ts';
import { seal, unseal } from '../../platform/crypto.ts';
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import { isUuid, uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { type AnyEventType, type EventType, recordEvent } from '../events/events.ts';
import { generateSecret } from './signing.ts';

/** How long the previous secret keeps signing after a rotation. */
export const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;

/** How long an endpoint may fail every attempt before it is turned off. */
export const FAILING_DISABLE_MS = 5 * 24 * 3600 * 1000;

export const DISABLED_REASONS = ['manual', 'gone', 'failing'] as const;
export type DisabledReason = (typeof DISABLED_REASONS)[number];

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string;
  events: EventType[];
  enabled: boolean;
  disabledReason: DisabledReason | null;
  disabledAt: string | null;
  failingSince: string | null;
  secretRotatedAt: string | null;
  /** Until when the secret before the last rotation still signs (null: only one secret signs). */
  previousSecretExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

interface EndpointRow {
  id: string;
  url: string;
  description: string;
  events: EventType[];
  enabled: boolean;
  disabled_reason: DisabledReason | null;
  disabled_at: string | null;
  failing_since: string | null;
  secret_rotated_at: string | null;
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

const COLUMNS = `id, url, description, events, enabled, disabled_reason, disabled_at, failing_since,
  secret_rotated_at, previous_secret_expires_at, created_at, updated_at`;

const toEndpoint = (r: EndpointRow): WebhookEndpoint => ({
  id: r.id,
  url: r.url,
  description: r.description,
  events: r.events,
  enabled: r.enabled,
  disabledReason: r.disabled_reason,
  disabledAt: r.disabled_at,
  failingSince: r.failing_since,
  secretRotatedAt: r.secret_rotated_at,
  previousSecretExpiresAt: r.previous_secret_expires_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface NewEndpoint {
  /** Checked already (checkEndpointUrl). */
  url: string;
  /** Distinct event types it takes. */
  events: EventType[];
  description?: string | undefined;
}

/** Creates an endpoint with a new secret; answers it with the secret (shown this once). */
export async function createEndpoint(
  tx: TenantTx,
  deps: { secretKey: Buffer; clock: Clock },
  input: NewEndpoint,
): Promise<WebhookEndpoint & { secret: string }> {
  const secret = generateSecret();
  const now = deps.clock.now();
  const { rows } = await tx.query<EndpointRow>(
    `INSERT INTO webhook_endpoints (tenant_id, id, url, description, events, secret, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      uuidv7(now.getTime()),
      input.url,
      input.description ?? '',
      [...new Set(input.events)],
      seal(deps.secretKey, secret),
      now,
    ],
  );
  return { ...toEndpoint(rows[0]!), secret };
}

export async function getEndpoint(tx: TenantTx, id: string): Promise<WebhookEndpoint> {
  const { rows } = await tx.query<EndpointRow>(
    `SELECT ${COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('webhook endpoint');
  return toEndpoint(rows[0]);
}

export async function listEndpoints(
  tx: TenantTx,
  input: { limit?: number | undefined; cursor?: string | undefined },
): Promise<Page<WebhookEndpoint>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const { rows } = await tx.query<EndpointRow>(
    `SELECT ${COLUMNS} FROM webhook_endpoints
      WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $4`,
    [tx.tenantId, cursor?.createdAt ?? null, cursor?.id ?? null, limit + 1],
  );
  return toPage(rows, limit, toEndpoint);
}

export interface EndpointPatch {
  /** Checked already. */
  url?: string | undefined;
  events?: EventType[] | undefined;
  description?: string | undefined;
  /** true turns it back on (and forgets its failing streak); false turns it off (`manual`). */
  enabled?: boolean | undefined;
}

export async function updateEndpoint(
  tx: TenantTx,
  deps: { clock: Clock },
  id: string,
  patch: EndpointPatch,
): Promise<WebhookEndpoint> {
  const { rows } = await tx.query<EndpointRow>(
    `UPDATE webhook_endpoints
        SET url = coalesce($3, url),
            events = coalesce($4, events),
            description = coalesce($5, description),
            enabled = coalesce($6, enabled),
            disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason
                                   WHEN $6 THEN NULL
                                   WHEN enabled THEN 'manual' ELSE disabled_reason END,
            disabled_at = CASE WHEN $6 IS NULL THEN disabled_at
                               WHEN $6 THEN NULL
                               WHEN enabled THEN $7 ELSE disabled_at END,
            failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END,
            updated_at = $7
      WHERE tenant_id = $1 AND id = $2
      RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      id,
      patch.url ?? null,
      patch.events ? [...new Set(patch.events)] : null,
      patch.description ?? null,
      patch.enabled ?? null,
      deps.clock.now(),
    ],
  );
  if (!rows[0]) throw notFound('webhook endpoint');
  return toEndpoint(rows[0]);
}

export async function deleteEndpoint(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('webhook endpoint');
}

/**
 * Gives the endpoint a new secret (answered this once); the current one keeps signing beside it for
 * ROTATION_OVERLAP_MS. A second rotation within the overlap drops the oldest secret.
 */
export async function rotateSecret(
  tx: TenantTx,
  deps: { secretKey: Buffer; clock: Clock },
  id: string,
): Promise<{ secret: string; previousSecretExpiresAt: string }> {
  const secret = generateSecret();
  const now = deps.clock.now();
  const expires = new Date(now.getTime() + ROTATION_OVERLAP_MS);
  const { rows } = await tx.query<{ previous_secret_expires_at: string }>(
    `UPDATE webhook_endpoints
        SET previous_secret = secret, previous_secret_expires_at = $4, secret = $3,
            secret_rotated_at = $5, updated_at = $5
      WHERE tenant_id = $1 AND id = $2 RETURNING previous_secret_expires_at`,
    [tx.tenantId, id, seal(deps.secretKey, secret), expires, now],
  );
  if (!rows[0]) throw notFound('webhook endpoint');
  return { secret, previousSecretExpiresAt: rows[0].previous_secret_expires_at };
}

/** What sending to an endpoint needs: its URL, state and the secrets that sign now (newest first). */
export interface EndpointForSend {
  id: string;
  url: string;
  enabled: boolean;
  secrets: string[];
  /** A failing streak was running when it was read (a success must end it). */
  failing: boolean;
}

interface EndpointSendRow {
  tenant_id: string;
  id: string;
  url: string;
  enabled: boolean;
  secret: Buffer;
  previous_secret: Buffer | null;
  previous_secret_expires_at: string | null;
  failing: boolean;
}

const SEND_COLUMNS = `e.tenant_id, e.id, e.url, e.enabled, e.secret, e.previous_secret,
  e.previous_secret_expires_at, e.failing_since IS NOT NULL AS failing`;

function forSend(deps: { secretKey: Buffer; clock: Clock }, r: EndpointSendRow): EndpointForSend {
  const secrets = [unseal(deps.secretKey, r.secret).toString('utf8')];
  if (
    r.previous_secret &&
    r.previous_secret_expires_at &&
    Date.parse(r.previous_secret_expires_at) > deps.clock.now().getTime()
  )
    secrets.push(unseal(deps.secretKey, r.previous_secret).toString('utf8'));
  return { id: r.id, url: r.url, enabled: r.enabled, secrets, failing: r.failing };
}

export async function endpointForSend(
  tx: TenantTx,
  deps: { secretKey: Buffer; clock: Clock },
  id: string,
): Promise<EndpointForSend | undefined> {
  if (!isUuid(id)) return undefined;
  const { rows } = await tx.query<EndpointSendRow>(
    `SELECT ${SEND_COLUMNS} FROM webhook_endpoints e WHERE e.tenant_id = $1 AND e.id = $2`,
    [tx.tenantId, id],
  );
  return rows[0] && forSend(deps, rows[0]);
}

/**
 * endpointForSend for the endpoints of a batch of deliveries, of several tenants at once (platform
 * work in the system scope, as the batch's ledger statements are), named by tenant and id; keyed
 * `tenant/id`, only the pairs asked for.
 */
export async function endpointsForSendAcrossTenants(
  sys: SystemTx,
  deps: { secretKey: Buffer; clock: Clock },
  refs: { tenantId: string; endpointId: string }[],
): Promise<Map<string, EndpointForSend>> {
  const valid = refs.filter((r) => isUuid(r.endpointId));
  if (valid.length === 0) return new Map();
  const { rows } = await sys.query<EndpointSendRow>(
    `SELECT ${SEND_COLUMNS} FROM webhook_endpoints e
       JOIN unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, endpoint_id)
         ON e.tenant_id = x.tenant_id AND e.id = x.endpoint_id
      WHERE e.tenant_id = ANY($1::uuid[])`,
    [valid.map((r) => r.tenantId), valid.map((r) => r.endpointId)],
  );
  return new Map(rows.map((r) => [`${r.tenant_id}/${r.id}`, forSend(deps, r)]));
}

/** Ids of the enabled endpoints that take this event type, oldest first. */
export async function subscribedEndpoints(tx: TenantTx, type: AnyEventType): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND enabled AND $2 = ANY(events)
      ORDER BY created_at, id`,
    [tx.tenantId, type],
  );
  return rows.map((r) => r.id);
}

/**
 * Of these tenants and event types, the pairs `tenant|type` an enabled endpoint subscribes to,
 * across tenants (the event dispatcher's check, platform work).
 */
export async function subscribedAmong(
  sys: SystemTx,
  tenantIds: string[],
  types: AnyEventType[],
): Promise<Set<string>> {
  const { rows } = await sys.query<{ tenant_id: string; events: string[] }>(
    `SELECT tenant_id, events FROM webhook_endpoints
      WHERE tenant_id = ANY($1::uuid[]) AND enabled AND events && $2::text[]`,
    [tenantIds, types],
  );
  const wanted = new Set<string>(types);
  return new Set(
    rows.flatMap((r) => r.events.filter((e) => wanted.has(e)).map((e) => `${r.tenant_id}|${e}`)),
  );
}

export async function endpointExists(tx: TenantTx, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const { rowCount } = await tx.query('SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  return (rowCount ?? 0) > 0;
}

/**
 * Turns an enabled endpoint off for `reason` and records a `delivery.failed` event in the same
 * transaction (once: an endpoint already off records nothing). Answers whether it did.
 */
export async function disableEndpoint(
  tx: TenantTx,
  deps: { clock: Clock },
  id: string,
  reason: 'gone' | 'failing',
): Promise<boolean> {
  if (!isUuid(id)) return false;
  const { rowCount } = await tx.query(
    `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3, disabled_at = $4, updated_at = $4
      WHERE tenant_id = $1 AND id = $2 AND enabled`,
    [tx.tenantId, id, reason, deps.clock.now()],
  );
  if ((rowCount ?? 0) === 0) return false;
  await recordEvent(tx, {
    type: 'delivery.failed',
    data: { endpointId: id, reason: 'endpoint_disabled', cause: reason },
  });
  return true;
}

/**
 * Notes a failed attempt: the failing streak starts now unless it began already; an endpoint whose
 * streak is FAILING_DISABLE_MS old is turned off (`failing`). Answers whether it was turned off.
 */
export async function noteFailure(tx: TenantTx, deps: { clock: Clock }, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const now = deps.clock.now();
  const { rows } = await tx.query<{ failing_since: string; enabled: boolean }>(
    `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $3)
      WHERE tenant_id = $1 AND id = $2 RETURNING failing_since, enabled`,
    [tx.tenantId, id, now],
  );
  const row = rows[0];
  if (!row?.enabled || now.getTime() - Date.parse(row.failing_since) < FAILING_DISABLE_MS) return false;
  return disableEndpoint(tx, deps, id, 'failing');
}

/** Ends the failing streak (an attempt succeeded). */
export async function noteSuccess(tx: TenantTx, id: string): Promise<void> {
  if (!isUuid(id)) return;
  await tx.query(
    `UPDATE webhook_endpoints SET failing_since = NULL
      WHERE tenant_id = $1 AND id = $2 AND failing_since IS NOT NULL`,
    [tx.tenantId, id],
  );
}
