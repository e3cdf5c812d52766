// A tenant's single sign-on providers: at most one of each kind (Microsoft Entra ID, Google, any
// other OpenID provider), each with its issuer, the client registered with it and that client's
// secret (sealed; unsealed only to redeem a code, never answered), whether it is on and which email
// domains may sign in through it.
import { isLoopbackHost } from '../../platform/config.ts';
import { seal, unseal } from '../../platform/crypto.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound, validation } from '../../platform/errors.ts';

export const SSO_PROVIDERS = ['entra', 'google', 'oidc'] as const;
export type SsoProvider = (typeof SSO_PROVIDERS)[number];

/** What the sign-in page calls a provider that has no label of its own. */
export const DEFAULT_LABELS: Record<SsoProvider, string> = {
  entra: 'Microsoft',
  google: 'Google',
  oidc: 'Single sign-on',
};

/** What the API shows of a provider (never the secret). */
export interface SsoProviderView {
  provider: SsoProvider;
  issuer: string;
  clientId: string;
  enabled: boolean;
  allowedDomains: string[];
  label: string;
  createdAt: string;
  updatedAt: string;
}

/** What signing in needs. */
export interface SsoProviderSettings {
  provider: SsoProvider;
  issuer: string;
  clientId: string;
  clientSecret: string;
  enabled: boolean;
  allowedDomains: string[];
}

export interface SaveSsoProvider {
  provider: SsoProvider;
  issuer: string;
  clientId: string;
  /** Omitted: the stored one is kept, which is only allowed while issuer and client id stay the same. */
  clientSecret?: string | undefined;
  /** Default true. */
  enabled?: boolean | undefined;
  /** Default none (every domain). */
  allowedDomains?: string[] | undefined;
  label?: string | undefined;
  secretKey: Buffer;
  now: Date;
}

// Entra's multi-tenant authorities name no directory: their metadata's issuer is a template
// ("https://login.microsoftonline.com/{tenantid}/v2.0") that no token matches, and anyone of any
// directory could sign in through them. One directory's issuer is what a tenant means.
const ENTRA_MULTI_TENANT = new Set(['common', 'organizations', 'consumers']);

/**
 * The issuer as stored: an https URL without credentials, query or fragment; plain http only on a
 * loopback host (a local provider such as the simulator), since the metadata, keys and tokens would
 * otherwise travel in the clear. The text is kept as given: it must equal the metadata's issuer.
 */
export function checkIssuer(provider: SsoProvider, given: string): string {
  const issuer = given.trim();
  const refuse = (message: string) => validation(`issuer ${message}`, [{ path: '/issuer', message }]);
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw refuse('must be an absolute https URL');
  }
  if (url.username || url.password || url.search || url.hash || issuer.includes('?') || issuer.includes('#'))
    throw refuse('must have no credentials, query or fragment');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    throw refuse('must be https (plain http only for a provider on this machine: localhost, 127.0.0.1, ::1)');
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse('must be an https URL');
  if (provider === 'entra') {
    const directory = url.pathname.split('/').filter(Boolean)[0]?.toLowerCase();
    if (directory !== undefined && ENTRA_MULTI_TENANT.has(directory))
      throw refuse(
        `must name one directory (https://login.microsoftonline.com/{tenant id}/v2.0), not "${directory}"`,
      );
  }
  return issuer;
}

const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lower-cased, without duplicates; each a domain name (no @, no wildcard). */
export function checkDomains(given: string[] | undefined): string[] {
  const domains = new Set<string>();
  (given ?? []).forEach((d, i) => {
    const domain = d.trim().toLowerCase().replace(/^@/, '');
    if (!DOMAIN_RE.test(domain))
      throw validation(`"${d.slice(0, 100)}" is not a domain name`, [
        { path: `/allowedDomains/${i}`, message: 'must be a domain name such as contoso.com' },
      ]);
    domains.add(domain);
  });
  return [...domains];
}

/** Whether an address is in one of the domains (exactly; a subdomain is another domain). */
export function emailInDomains(email: string, domains: readonly string[]): boolean {
  const at = email.lastIndexOf('@');
  return (
    at > 0 &&
    domains.includes(
      email
        .slice(at + 1)
        .trim()
        .toLowerCase(),
    )
  );
}

interface Row {
  provider: SsoProvider;
  issuer: string;
  client_id: string;
  enabled: boolean;
  allowed_domains: string[];
  label: string | null;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'provider, issuer, client_id, enabled, allowed_domains, label, created_at, updated_at';

const toView = (r: Row): SsoProviderView => ({
  provider: r.provider,
  issuer: r.issuer,
  clientId: r.client_id,
  enabled: r.enabled,
  allowedDomains: r.allowed_domains,
  label: r.label ?? DEFAULT_LABELS[r.provider],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function getSsoProvider(tx: TenantTx, provider: SsoProvider): Promise<SsoProviderView> {
  const { rows } = await tx.query<Row>(
    `SELECT ${COLUMNS} FROM sso_providers WHERE tenant_id = $1 AND provider = $2`,
    [tx.tenantId, provider],
  );
  if (!rows[0]) throw notFound(`${provider} single sign-on provider`);
  return toView(rows[0]);
}

/** Stores (or replaces) one provider of the tenant. */
export async function saveSsoProvider(tx: TenantTx, input: SaveSsoProvider): Promise<SsoProviderView> {
  const issuer = checkIssuer(input.provider, input.issuer);
  const clientId = input.clientId.trim();
  if (clientId === '')
    throw validation('clientId must not be empty', [{ path: '/clientId', message: 'must not be empty' }]);
  const allowedDomains = checkDomains(input.allowedDomains);
  const label = input.label?.trim() || null;
  let sealed: Buffer;
  if (input.clientSecret !== undefined) {
    sealed = seal(input.secretKey, input.clientSecret);
  } else {
    const { rows } = await tx.query<{ issuer: string; client_id: string; client_secret: Buffer }>(
      `SELECT issuer, client_id, client_secret FROM sso_providers
        WHERE tenant_id = $1 AND provider = $2 FOR UPDATE`,
      [tx.tenantId, input.provider],
    );
    const kept = rows[0];
    // A secret belongs to one client of one issuer: it is not carried over to another.
    if (!kept || kept.issuer !== issuer || kept.client_id !== clientId)
      throw validation(
        kept
          ? 'clientSecret is required when the issuer or the client id changes'
          : 'clientSecret is required to set up a provider',
        [{ path: '/clientSecret', message: 'is required' }],
      );
    sealed = kept.client_secret;
  }
  const { rows } = await tx.query<Row>(
    `INSERT INTO sso_providers (tenant_id, provider, issuer, client_id, client_secret, enabled, allowed_domains,
                                label, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
     ON CONFLICT (tenant_id, provider) DO UPDATE
        SET issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id, client_secret = EXCLUDED.client_secret,
            enabled = EXCLUDED.enabled, allowed_domains = EXCLUDED.allowed_domains, label = EXCLUDED.label,
            updated_at = EXCLUDED.updated_at
     RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      input.provider,
      issuer,
      clientId,
      sealed,
      input.enabled ?? true,
      allowedDomains,
      label,
      input.now,
    ],
  );
  return toView(rows[0]!);
}

export async function deleteSsoProvider(tx: TenantTx, provider: SsoProvider): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM sso_providers WHERE tenant_id = $1 AND provider = $2', [
    tx.tenantId,
    provider,
  ]);
  if (!rowCount) throw notFound(`${provider} single sign-on provider`);
}

/** The providers people of the tenant can sign in with now, in a fixed order. */
export async function enabledSsoProviders(tx: TenantTx): Promise<{ provider: SsoProvider; label: string }[]> {
  const { rows } = await tx.query<{ provider: SsoProvider; label: string | null }>(
    `SELECT provider, label FROM sso_providers WHERE tenant_id = $1 AND enabled
      ORDER BY array_position(ARRAY['entra', 'google', 'oidc'], provider)`,
    [tx.tenantId],
  );
  return rows.map((r) => ({ provider: r.provider, label: r.label ?? DEFAULT_LABELS[r.provider] }));
}

/** The settings to sign in with (the secret unsealed), or undefined when the tenant has none of that kind. */
export async function ssoProviderSettings(
  tx: TenantTx,
  secretKey: Buffer,
  provider: SsoProvider,
): Promise<SsoProviderSettings | undefined> {
  const { rows } = await tx.query<{
    issuer: string;
    client_id: string;
    client_secret: Buffer;
    enabled: boolean;
    allowed_domains: string[];
  }>(
    `SELECT issuer, client_id, client_secret, enabled, allowed_domains FROM sso_providers
      WHERE tenant_id = $1 AND provider = $2`,
    [tx.tenantId, provider],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    provider,
    issuer: row.issuer,
    clientId: row.client_id,
    clientSecret: unseal(secretKey, row.client_secret).toString('utf8'),
    enabled: row.enabled,
    allowedDomains: row.allowed_domains,
  };
}
