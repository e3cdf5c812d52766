// A tenant's Teams integration: its bot's app id and password (sealed), and where its tokens and
// signing keys come from. One per tenant; an app id belongs to one tenant of the installation,
// because activities of every tenant arrive on one endpoint and are routed by the app id.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead, withSystemTx } from '../../platform/db/tx.ts';
import { seal, unseal } from '../../platform/crypto.ts';
import { conflict, notFound } from '../../platform/errors.ts';
import { DEFAULT_OPENID_METADATA_URL } from './jwt.ts';

export const DEFAULT_TOKEN_URL = 'https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token';

export interface TeamsIntegration {
  appId: string;
  /** Null: the public endpoint (DEFAULT_TOKEN_URL). */
  tokenUrl: string | null;
  /** Null: the public endpoint (DEFAULT_OPENID_METADATA_URL). */
  openIdMetadataUrl: string | null;
  createdAt: string;
  updatedAt: string;
}

/** What sending needs: the bot's credentials and the endpoints with their defaults applied. */
export interface TeamsCredentials {
  appId: string;
  appPassword: string;
  tokenUrl: string;
  openIdMetadataUrl: string;
}

interface Row {
  tenant_id: string;
  app_id: string;
  app_password: Buffer;
  token_url: string | null;
  openid_metadata_url: string | null;
  created_at: string;
  updated_at: string;
}

const toIntegration = (r: Row): TeamsIntegration => ({
  appId: r.app_id,
  tokenUrl: r.token_url,
  openIdMetadataUrl: r.openid_metadata_url,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface PutIntegrationInput {
  tenantId: string;
  appId: string;
  appPassword: string;
  tokenUrl?: string | undefined;
  openIdMetadataUrl?: string | undefined;
}

/**
 * Creates or replaces the tenant's integration. An app id held by another tenant is a conflict. The
 * check and the write run in one transaction under an advisory lock on the app id, so two tenants
 * claiming one app id at once cannot both pass the check (a unique index would have to lead with the
 * tenant, DESIGN §3.5, and so could not say it). The scope spans tenants for the check only; the row
 * written is the caller's tenant's.
 */
export async function putIntegration(
  pool: Pool,
  secretKey: Buffer,
  input: PutIntegrationInput,
): Promise<TeamsIntegration> {
  return withSystemTx(pool, async (sys) => {
    await sys.query("SELECT pg_advisory_xact_lock(hashtextextended('teams.app_id|' || $1, 0))", [
      input.appId,
    ]);
    const { rowCount: taken } = await sys.query(
      'SELECT 1 FROM teams_integrations WHERE app_id = $1 AND tenant_id <> $2',
      [input.appId, input.tenantId],
    );
    if (taken) throw conflict('this bot app id is connected to another tenant', { field: 'appId' });
    const { rows } = await sys.query<Row>(
      `INSERT INTO teams_integrations AS i (tenant_id, app_id, app_password, token_url, openid_metadata_url)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id) DO UPDATE SET app_id = excluded.app_id, app_password = excluded.app_password,
              token_url = excluded.token_url, openid_metadata_url = excluded.openid_metadata_url,
              updated_at = now()
       RETURNING *`,
      [
        input.tenantId,
        input.appId,
        seal(secretKey, input.appPassword),
        input.tokenUrl ?? null,
        input.openIdMetadataUrl ?? null,
      ],
    );
    return toIntegration(rows[0]!);
  });
}

export async function getIntegration(tx: TenantTx): Promise<TeamsIntegration> {
  const { rows } = await tx.query<Row>('SELECT * FROM teams_integrations WHERE tenant_id = $1', [
    tx.tenantId,
  ]);
  if (!rows[0]) throw notFound('Teams integration');
  return toIntegration(rows[0]);
}

/** The tenant's bot credentials, unsealed, or undefined without an integration. */
export async function integrationCredentials(
  tx: TenantTx,
  secretKey: Buffer,
): Promise<TeamsCredentials | undefined> {
  const { rows } = await tx.query<Row>('SELECT * FROM teams_integrations WHERE tenant_id = $1', [
    tx.tenantId,
  ]);
  const r = rows[0];
  if (!r) return undefined;
  return {
    appId: r.app_id,
    appPassword: unseal(secretKey, r.app_password).toString('utf8'),
    tokenUrl: r.token_url ?? DEFAULT_TOKEN_URL,
    openIdMetadataUrl: r.openid_metadata_url ?? DEFAULT_OPENID_METADATA_URL,
  };
}

/**
 * Which tenant's bot an activity is for, by the app id its token names (across tenants: the tenant
 * is not known yet). Only routing: the token is verified against this integration afterwards.
 */
export async function integrationByAppId(
  pool: Pool,
  appId: string,
): Promise<{ tenantId: string; appId: string; openIdMetadataUrl: string } | undefined> {
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<Pick<Row, 'tenant_id' | 'app_id' | 'openid_metadata_url'>>(
      'SELECT tenant_id, app_id, openid_metadata_url FROM teams_integrations WHERE app_id = $1 LIMIT 1',
      [appId],
    ),
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    tenantId: r.tenant_id,
    appId: r.app_id,
    openIdMetadataUrl: r.openid_metadata_url ?? DEFAULT_OPENID_METADATA_URL,
  };
}
