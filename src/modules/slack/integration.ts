// A tenant's Slack workspace: the bot token (sealed), the Web API's base URL, and what auth.test said
// of the token when it was saved. One per tenant. The token is unsealed only to call Slack; the API
// shows a hint of it at most.
import { seal, unseal } from '../../platform/crypto.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';

export const DEFAULT_SLACK_API_BASE_URL = 'https://slack.com/api';

/** What the API shows of an integration (never the token). */
export interface SlackIntegrationView {
  configured: boolean;
  apiBaseUrl: string;
  /** "xoxb-…abcd": the token's kind and its last four characters. */
  tokenHint: string | null;
  teamId: string | null;
  teamName: string | null;
  botUserId: string | null;
  updatedAt: string | null;
}

/** What sending needs. */
export interface SlackConnection {
  apiBaseUrl: string;
  botToken: string;
}

export interface SaveSlackIntegration {
  secretKey: Buffer;
  botToken: string;
  apiBaseUrl: string;
  /** From auth.test. */
  teamId: string | null;
  teamName: string | null;
  botUserId: string | null;
  now: Date;
}

/**
 * The token's kind (up to its first dash) and last four characters. A token too short to spare
 * four characters shows only its kind.
 */
export function tokenHint(token: string): string {
  const dash = token.indexOf('-');
  const kind = dash > 0 && dash <= 10 ? token.slice(0, dash + 1) : '';
  return token.length >= 20 ? `${kind}…${token.slice(-4)}` : `${kind}…`;
}

interface Row {
  token_hint: string;
  api_base_url: string;
  team_id: string | null;
  team_name: string | null;
  bot_user_id: string | null;
  updated_at: string;
}

const NOT_CONFIGURED = (apiBaseUrl = DEFAULT_SLACK_API_BASE_URL): SlackIntegrationView => ({
  configured: false,
  apiBaseUrl,
  tokenHint: null,
  teamId: null,
  teamName: null,
  botUserId: null,
  updatedAt: null,
});

const toView = (r: Row): SlackIntegrationView => ({
  configured: true,
  apiBaseUrl: r.api_base_url,
  tokenHint: r.token_hint,
  teamId: r.team_id,
  teamName: r.team_name,
  botUserId: r.bot_user_id,
  updatedAt: r.updated_at,
});

export async function getSlackIntegration(tx: TenantTx): Promise<SlackIntegrationView> {
  const { rows } = await tx.query<Row>(
    `SELECT token_hint, api_base_url, team_id, team_name, bot_user_id, updated_at
       FROM slack_integrations WHERE tenant_id = $1`,
    [tx.tenantId],
  );
  return rows[0] ? toView(rows[0]) : NOT_CONFIGURED();
}

/** Stores (or replaces) the tenant's integration. */
export async function saveSlackIntegration(
  tx: TenantTx,
  input: SaveSlackIntegration,
): Promise<SlackIntegrationView> {
  const { rows } = await tx.query<Row>(
    `INSERT INTO slack_integrations (tenant_id, bot_token, token_hint, api_base_url, team_id, team_name,
                                     bot_user_id, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
     ON CONFLICT (tenant_id) DO UPDATE
        SET bot_token = EXCLUDED.bot_token, token_hint = EXCLUDED.token_hint,
            api_base_url = EXCLUDED.api_base_url, team_id = EXCLUDED.team_id,
            team_name = EXCLUDED.team_name, bot_user_id = EXCLUDED.bot_user_id,
            updated_at = EXCLUDED.updated_at
     RETURNING token_hint, api_base_url, team_id, team_name, bot_user_id, updated_at`,
    [
      tx.tenantId,
      seal(input.secretKey, input.botToken),
      tokenHint(input.botToken),
      input.apiBaseUrl,
      input.teamId,
      input.teamName,
      input.botUserId,
      input.now,
    ],
  );
  return toView(rows[0]!);
}

export async function deleteSlackIntegration(tx: TenantTx): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM slack_integrations WHERE tenant_id = $1', [tx.tenantId]);
  if (!rowCount) throw notFound('Slack integration');
}

/** The token and base URL to send with, or undefined when the tenant has no Slack integration. */
export async function slackConnection(tx: TenantTx, secretKey: Buffer): Promise<SlackConnection | undefined> {
  const { rows } = await tx.query<{ bot_token: Buffer; api_base_url: string }>(
    'SELECT bot_token, api_base_url FROM slack_integrations WHERE tenant_id = $1',
    [tx.tenantId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return { apiBaseUrl: row.api_base_url, botToken: unseal(secretKey, row.bot_token).toString('utf8') };
}

export async function hasSlackIntegration(tx: TenantTx): Promise<boolean> {
  const { rowCount } = await tx.query('SELECT 1 FROM slack_integrations WHERE tenant_id = $1', [tx.tenantId]);
  return (rowCount ?? 0) > 0;
}
