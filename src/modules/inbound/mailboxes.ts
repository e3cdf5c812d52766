// Mailboxes: where mail comes from. Credentials are sealed with the configured key and never
// returned; provider base URLs are settings (real defaults), so tests and the demo can point them
// at the simulators.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { seal, unseal } from '../../platform/crypto.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { assertEmail, normalizeEmail } from '../people/service.ts';
import { createHealth, credentialsChanged, recordRenewed } from './health.ts';
import { notifyImapMailboxChanged } from './providers/imap/notify.ts';

export const MAILBOX_KINDS = ['imap', 'graph', 'gmail', 'mime'] as const;

/**
 * What the audit trail hashes of a mailbox write leaves out (`config.auditRedact` of POST and PATCH
 * /mailboxes, and `relaydesk mailbox create`): the value of every credential (IMAP and SMTP
 * passwords, client secrets, refresh tokens), keeping which were given and a null that removes them.
 */
export const MAILBOX_AUDIT_REDACT: readonly string[] = ['credentials.*'];
export type MailboxKind = (typeof MAILBOX_KINDS)[number];

export interface MailboxSettings {
  /** Unknown senders become contacts (else their mail is skipped: unknown_sender). */
  createContacts: boolean;
  /** Automatic mail (auto-replies, lists) may open new tickets (else skipped: automatic). */
  automaticMayOpenTickets: boolean;
  /** Larger messages are skipped (too_large) with only their headers kept. */
  maxMessageBytes: number;
  /** A reply to a solved/closed ticket reopens it within this many days; later it opens a new ticket. */
  reopenWithinDays: number;
  /**
   * tokenUrl: the base of the app-only token endpoint ({tokenUrl}/{tenant}/oauth2/v2.0/token);
   * authorizeUrl and delegatedTokenUrl: the endpoints of connecting by OAuth (authorization code).
   */
  graph: {
    apiBaseUrl: string;
    tokenUrl: string;
    authorizeUrl: string;
    delegatedTokenUrl: string;
    [key: string]: unknown;
  };
  /** pushAudience and serviceAccountEmail: what Pub/Sub push tokens must carry. */
  gmail: {
    apiBaseUrl: string;
    tokenUrl: string;
    jwksUrl: string;
    authorizeUrl: string;
    [key: string]: unknown;
  };
  imap: { [key: string]: unknown };
  /**
   * How mail leaves an IMAP or MIME mailbox: its SMTP server (the password is credentials.smtpPassword;
   * `ca`: a PEM certificate to trust besides the system's, for a private relay).
   */
  smtp?: SmtpSettings;
  /** Outbound mail of the mailbox: replies and acknowledgements. */
  outbound: OutboundSettings;
  /**
   * The mailbox's own OAuth app registration for connecting it (its secret is
   * credentials.oauthClientSecret); without it, the install's (RELAYDESK_MICROSOFT_* / RELAYDESK_GOOGLE_*).
   */
  oauth?: { clientId?: string };
}

export interface SmtpSettings {
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username?: string;
  ca?: string;
}

export interface OutboundSettings {
  /** The subject tag of the ticket; `{number}` stands for its number (T-12). Inbound threads by it. */
  subjectTag: string;
  /** Quote the customer's last message under a reply. */
  quoteHistory: boolean;
  /** Reply-To local+T-12@domain (when the mail server delivers plus addresses to the mailbox). */
  plusAddressing: boolean;
  /** Acknowledge a new ticket opened by mail, with this template (else the tenant's default). */
  acknowledge: boolean;
  acknowledgementTemplateId: string | null;
  /** Automatic mails (acknowledgements) to one address per hour, at most. */
  automaticPerRecipientPerHour: number;
  /**
   * Where customers follow a ticket, if the desk has a customer portal: an http(s) URL with
   * `{number}` (T-12) in it; templates' `portal.link`. Relaydesk's console is for agents only.
   */
  portalLink: string | null;
}

export const DEFAULT_OUTBOUND: OutboundSettings = {
  subjectTag: '[#{number}]',
  quoteHistory: true,
  plusAddressing: false,
  acknowledge: false,
  acknowledgementTemplateId: null,
  automaticPerRecipientPerHour: 5,
  portalLink: null,
};

export const DEFAULT_SETTINGS: MailboxSettings = {
  createContacts: true,
  automaticMayOpenTickets: false,
  maxMessageBytes: 25 * 1024 * 1024,
  reopenWithinDays: 14,
  graph: {
    apiBaseUrl: 'https://graph.microsoft.com/v1.0',
    tokenUrl: 'https://login.microsoftonline.com',
    authorizeUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
    delegatedTokenUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
  },
  gmail: {
    apiBaseUrl: 'https://gmail.googleapis.com/gmail/v1',
    tokenUrl: 'https://oauth2.googleapis.com/token',
    jwksUrl: 'https://www.googleapis.com/oauth2/v3/certs',
    authorizeUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
  },
  imap: {},
  outbound: DEFAULT_OUTBOUND,
};

export interface Mailbox {
  id: string;
  kind: MailboxKind;
  address: string;
  displayName: string | null;
  settings: MailboxSettings & Record<string, unknown>;
  hasCredentials: boolean;
  createdAt: string;
  updatedAt: string;
}

/**
 * Where each provider endpoint of the settings may point: the provider's own origins (with its
 * national clouds). A tenant admin sets the settings, and the server then sends requests there (with
 * the mailbox's credentials, for a token), so an endpoint anywhere else would let a tenant reach
 * into the network Relaydesk runs in. An operator allows more origins with RELAYDESK_PROVIDER_ORIGINS.
 */
const MICROSOFT_LOGIN = [
  'https://login.microsoftonline.com',
  'https://login.microsoftonline.us',
  'https://login.chinacloudapi.cn',
];
const PROVIDER_ORIGINS: Record<'graph' | 'gmail', Record<string, string[]>> = {
  graph: {
    apiBaseUrl: [
      'https://graph.microsoft.com',
      'https://graph.microsoft.us',
      'https://dod-graph.microsoft.us',
      'https://microsoftgraph.chinacloudapi.cn',
    ],
    tokenUrl: MICROSOFT_LOGIN,
    authorizeUrl: MICROSOFT_LOGIN,
    delegatedTokenUrl: MICROSOFT_LOGIN,
  },
  gmail: {
    apiBaseUrl: ['https://gmail.googleapis.com'],
    tokenUrl: ['https://oauth2.googleapis.com'],
    jwksUrl: ['https://www.googleapis.com'],
    authorizeUrl: ['https://accounts.google.com'],
  },
};

/** True when `origin` (scheme://host:port) matches a rule of RELAYDESK_PROVIDER_ORIGINS. */
export function operatorAllows(url: URL, rules: readonly string[]): boolean {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return rules.some((rule) => {
    const m = /^(https?):\/\/([^/:]+)(?::(\d+|\*))?$/.exec(rule);
    if (!m) return false;
    const rulePort = m[3] ?? (m[1] === 'https' ? '443' : '80');
    return (
      `${m[1]}:` === url.protocol &&
      m[2]!.toLowerCase() === url.hostname.toLowerCase() &&
      (rulePort === '*' || rulePort === port)
    );
  });
}

/** Refuses provider endpoints in `given` settings that point anywhere but where they may (above). */
export function assertProviderEndpoints(
  given: Record<string, unknown> | undefined,
  operatorOrigins: readonly string[],
): void {
  for (const provider of ['graph', 'gmail'] as const) {
    const block = given?.[provider];
    if (!block || typeof block !== 'object') continue;
    for (const [key, origins] of Object.entries(PROVIDER_ORIGINS[provider])) {
      const value = (block as Record<string, unknown>)[key];
      if (value === undefined) continue;
      const where = `/settings/${provider}/${key}`;
      let url: URL | undefined;
      try {
        url = typeof value === 'string' ? new URL(value) : undefined;
      } catch {
        url = undefined;
      }
      if (!url || url.username || url.password || url.search || url.hash) {
        throw validation(`settings.${provider}.${key} must be a URL without credentials or query`, [
          { path: where, message: 'must be a URL without credentials or query' },
        ]);
      }
      if (!origins.includes(url.origin) && !operatorAllows(url, operatorOrigins)) {
        const message = `must be on ${origins.join(', ')} (or an origin the operator allows in RELAYDESK_PROVIDER_ORIGINS)`;
        throw validation(`settings.${provider}.${key} ${message}`, [{ path: where, message }]);
      }
    }
  }
}

/** Merges given settings over the defaults, checking the known keys. */
export function resolveSettings(
  given: Record<string, unknown> = {},
  base: MailboxSettings = DEFAULT_SETTINGS,
): MailboxSettings {
  const s = {
    ...base,
    ...given,
    graph: { ...base.graph },
    gmail: { ...base.gmail },
    imap: { ...base.imap },
    outbound: { ...base.outbound },
  } as MailboxSettings;
  for (const provider of ['graph', 'gmail', 'imap'] as const) {
    const value = given[provider];
    if (value === undefined) continue;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw validation(`settings.${provider} must be an object`, [
        { path: `/settings/${provider}`, message: 'must be an object' },
      ]);
    }
    Object.assign(s[provider], value);
  }
  const checks: [keyof MailboxSettings, (v: unknown) => boolean, string][] = [
    ['createContacts', (v) => typeof v === 'boolean', 'a boolean'],
    ['automaticMayOpenTickets', (v) => typeof v === 'boolean', 'a boolean'],
    [
      'maxMessageBytes',
      (v) => Number.isInteger(v) && (v as number) >= 1024 && (v as number) <= 100 * 1024 * 1024,
      'an integer from 1024 to 104857600',
    ],
    [
      'reopenWithinDays',
      (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 3650,
      'an integer from 0 to 3650',
    ],
  ];
  for (const [key, ok, what] of checks) {
    if (!ok(s[key]))
      throw validation(`settings.${key} must be ${what}`, [
        { path: `/settings/${key}`, message: `must be ${what}` },
      ]);
  }
  if (given['oauth'] !== undefined) {
    const oauth = given['oauth'];
    const clientId = (oauth as Record<string, unknown> | null)?.['clientId'];
    if (
      oauth === null ||
      typeof oauth !== 'object' ||
      Array.isArray(oauth) ||
      Object.keys(oauth).some((k) => k !== 'clientId') ||
      (clientId !== undefined && !isText(clientId))
    )
      throw validation('settings.oauth must be {clientId} (the app registration to connect with)', [
        { path: '/settings/oauth', message: 'must be {clientId}, clientId a non-empty string' },
      ]);
  }
  if (given['outbound'] !== undefined) s.outbound = checkOutbound(given['outbound'], base.outbound);
  if (given['smtp'] !== undefined && given['smtp'] !== null) s.smtp = checkSmtp(given['smtp']);
  if (given['smtp'] === null) delete s.smtp;
  const known = new Set([...Object.keys(DEFAULT_SETTINGS), 'oauth', 'smtp']);
  for (const key of Object.keys(given)) {
    if (!known.has(key))
      throw validation(`unknown setting "${key}"`, [
        { path: `/settings/${key}`, message: 'unknown setting' },
      ]);
  }
  return s;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function settingError(path: string, message: string): never {
  throw validation(`settings.${path.replace(/\//g, '.')} ${message}`, [
    { path: `/settings/${path}`, message },
  ]);
}

function checkSmtp(value: unknown): SmtpSettings {
  if (!isObject(value)) settingError('smtp', 'must be {host, port, security, username?, ca?}');
  for (const key of Object.keys(value))
    if (!['host', 'port', 'security', 'username', 'ca'].includes(key))
      settingError(`smtp/${key}`, 'unknown setting');
  const { host, port, security, username, ca } = value;
  if (typeof host !== 'string' || !/^[A-Za-z0-9.:[\]-]{1,253}$/.test(host))
    settingError('smtp/host', 'must be a host name or address');
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
    settingError('smtp/port', 'must be an integer from 1 to 65535');
  if (security !== 'tls' && security !== 'starttls' && security !== 'none')
    settingError('smtp/security', 'must be "tls", "starttls" or "none"');
  if (username !== undefined && (typeof username !== 'string' || username.length > 320))
    settingError('smtp/username', 'must be a string of at most 320 characters');
  if (
    ca !== undefined &&
    (typeof ca !== 'string' || !ca.includes('-----BEGIN CERTIFICATE-----') || ca.length > 65536)
  )
    settingError('smtp/ca', 'must be PEM certificates');
  return {
    host,
    port: port as number,
    security,
    ...(username === undefined ? {} : { username }),
    ...(ca === undefined ? {} : { ca }),
  };
}

function isPortalLink(v: unknown): v is string {
  if (typeof v !== 'string' || v.length > 500 || !v.includes('{number}')) return false;
  try {
    const url = new URL(v.replaceAll('{number}', 'T-1'));
    return (url.protocol === 'https:' || url.protocol === 'http:') && !url.username && !url.password;
  } catch {
    return false;
  }
}

function checkOutbound(value: unknown, base: OutboundSettings): OutboundSettings {
  if (!isObject(value)) settingError('outbound', 'must be an object');
  const out = { ...base };
  for (const [key, v] of Object.entries(value)) {
    switch (key) {
      case 'subjectTag':
        if (typeof v !== 'string' || !v.includes('{number}') || v.length > 40 || /[\r\n]/.test(v))
          settingError('outbound/subjectTag', 'must contain {number}, on one line, at most 40 characters');
        out.subjectTag = v;
        break;
      case 'quoteHistory':
      case 'plusAddressing':
      case 'acknowledge':
        if (typeof v !== 'boolean') settingError(`outbound/${key}`, 'must be a boolean');
        out[key] = v;
        break;
      case 'acknowledgementTemplateId':
        if (
          v !== null &&
          (typeof v !== 'string' ||
            !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v))
        )
          settingError('outbound/acknowledgementTemplateId', 'must be a template id or null');
        out.acknowledgementTemplateId = v;
        break;
      case 'automaticPerRecipientPerHour':
        if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 100)
          settingError('outbound/automaticPerRecipientPerHour', 'must be an integer from 0 to 100');
        out.automaticPerRecipientPerHour = v as number;
        break;
      case 'portalLink':
        if (v !== null && !isPortalLink(v))
          settingError(
            'outbound/portalLink',
            'must be an http or https URL containing {number}, at most 500 characters, or null',
          );
        out.portalLink = v;
        break;
      default:
        settingError(`outbound/${key}`, 'unknown setting');
    }
  }
  return out;
}

interface MailboxRow {
  id: string;
  kind: MailboxKind;
  address: string;
  display_name: string | null;
  settings: Record<string, unknown>;
  has_credentials: boolean;
  created_at: string;
  updated_at: string;
}

const COLUMNS =
  'id, kind, address, display_name, settings, credentials IS NOT NULL AS has_credentials, created_at, updated_at';

const toMailbox = (r: MailboxRow): Mailbox => ({
  id: r.id,
  kind: r.kind,
  address: r.address,
  displayName: r.display_name,
  settings: resolveSettings(r.settings) as MailboxSettings & Record<string, unknown>,
  hasCredentials: r.has_credentials,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface MailboxInput {
  kind: MailboxKind;
  address: string;
  displayName?: string | null;
  settings?: Record<string, unknown>;
  /** Provider secrets (password, client secret, refresh token): sealed at rest, never returned. */
  credentials?: Record<string, unknown> | null;
}

const isText = (v: unknown): boolean => typeof v === 'string' && v.trim() !== '';

/** Only the secret of the mailbox's own app registration (settings.oauth.clientId): waiting to be connected. */
const awaitsConnection = (credentials: Record<string, unknown> | null | undefined): boolean =>
  !!credentials &&
  isText(credentials['oauthClientSecret']) &&
  Object.keys(credentials).every((k) => k === 'oauthClientSecret');

/**
 * Whether a mailbox with these credentials can carry mail: always for IMAP and MIME (whose
 * credentials assertKindNeeds checks), for Graph and Gmail only once connected (credentials that are
 * not just waiting for a connection).
 */
export const connectedWith = (
  kind: MailboxKind,
  credentials: Record<string, unknown> | null | undefined,
): boolean => (kind !== 'graph' && kind !== 'gmail') || (!!credentials && !awaitsConnection(credentials));

/**
 * What a mailbox of its kind needs to receive mail, refused at once (400) rather than found out by
 * a retry loop: an IMAP mailbox needs its server and password. Graph and Gmail mailboxes may be
 * created without credentials (connected by OAuth later); credentials given must be complete.
 */
export function assertKindNeeds(
  kind: MailboxKind,
  settings: MailboxSettings,
  credentials: Record<string, unknown> | null | undefined,
): void {
  const missing: { path: string; message: string }[] = [];
  if (kind === 'imap') {
    if (!isText(settings.imap['host']))
      missing.push({ path: '/settings/imap/host', message: 'is required for an IMAP mailbox' });
    if (!credentials || !isText(credentials['password']))
      missing.push({ path: '/credentials/password', message: 'is required for an IMAP mailbox' });
  }
  const awaitingConnection = awaitsConnection(credentials);
  if (kind === 'graph' && credentials && !awaitingConnection) {
    const appOnly = ['tenantId', 'clientId', 'clientSecret'].every((k) => isText(credentials[k]));
    const delegated = isText(credentials['refreshToken']);
    if (!appOnly && !delegated)
      missing.push({
        path: '/credentials',
        message:
          'must be {tenantId, clientId, clientSecret} (an app registration) or {refreshToken} (from connecting by OAuth)',
      });
  }
  if (kind === 'gmail' && credentials && !awaitingConnection && !isText(credentials['refreshToken']))
    missing.push({
      path: '/credentials/refreshToken',
      message: "is required (with clientId and clientSecret, or the install's Google app)",
    });
  if (missing.length > 0)
    throw validation(
      missing.map((m) => `${m.path.slice(1).replace(/\//g, '.')} ${m.message}`).join('; '),
      missing,
    );
}

export async function createMailbox(tx: TenantTx, key: Buffer, input: MailboxInput): Promise<Mailbox> {
  const address = assertEmail(input.address, '/address');
  assertKindNeeds(input.kind, resolveSettings(input.settings), input.credentials);
  const id = uuidv7();
  const { rows } = await tx.query<MailboxRow>(
    `INSERT INTO mailboxes (tenant_id, id, kind, address, address_normalized, display_name, settings, credentials)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant_id, address_normalized) DO NOTHING
     RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      id,
      input.kind,
      address,
      normalizeEmail(address),
      input.displayName ?? null,
      JSON.stringify(input.settings ?? {}),
      input.credentials ? seal(key, JSON.stringify(input.credentials)) : null,
    ],
  );
  if (!rows[0]) throw conflict(`a mailbox for ${address} already exists`, { field: 'address' });
  await createHealth(tx, id, connectedWith(input.kind, input.credentials));
  if (input.kind === 'imap') await notifyImapMailboxChanged(tx, id);
  return toMailbox(rows[0]);
}

export async function getMailbox(tx: TenantTx, id: string): Promise<Mailbox> {
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('mailbox');
  return toMailbox(rows[0]);
}

/** By id or by address (the CLI accepts either). */
export async function findMailbox(tx: TenantTx, idOrAddress: string): Promise<Mailbox> {
  const byId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrAddress);
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE tenant_id = $1 AND ${byId ? 'id = $2' : 'address_normalized = lower(trim($2))'}`,
    [tx.tenantId, idOrAddress],
  );
  if (!rows[0]) throw notFound(`mailbox ${idOrAddress}`);
  return toMailbox(rows[0]);
}

export async function listMailboxes(
  tx: TenantTx,
  input: { limit?: number; cursor?: string },
): Promise<Page<Mailbox>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  let where = 'tenant_id = $1';
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where += ' AND (created_at, id) < ($2::timestamptz, $3::uuid)';
  }
  values.push(limit + 1);
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toMailbox);
}

export async function updateMailbox(
  tx: TenantTx,
  key: Buffer,
  id: string,
  input: Partial<Omit<MailboxInput, 'kind'>>,
): Promise<Mailbox> {
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('mailbox');
  const address = input.address === undefined ? rows[0].address : assertEmail(input.address, '/address');
  const settings =
    input.settings === undefined ? rows[0].settings : { ...rows[0].settings, ...input.settings };
  const resolved = resolveSettings(settings);
  if (input.settings !== undefined || input.credentials !== undefined) {
    const credentials =
      input.credentials !== undefined ? input.credentials : await mailboxCredentials(tx, key, id);
    assertKindNeeds(rows[0].kind, resolved, credentials);
  }
  try {
    await tx.query('SAVEPOINT update_mailbox');
    await tx.query(
      `UPDATE mailboxes SET address = $3, address_normalized = $4, display_name = $5, settings = $6,
              credentials = CASE WHEN $7 THEN $8::bytea ELSE credentials END, updated_at = now()
        WHERE tenant_id = $1 AND id = $2`,
      [
        tx.tenantId,
        id,
        address,
        normalizeEmail(address),
        input.displayName === undefined ? rows[0].display_name : input.displayName,
        JSON.stringify(settings),
        input.credentials !== undefined,
        input.credentials ? seal(key, JSON.stringify(input.credentials)) : null,
      ],
    );
    await tx.query('RELEASE SAVEPOINT update_mailbox');
    if (input.credentials !== undefined)
      await credentialsChanged(tx, id, connectedWith(rows[0].kind, input.credentials));
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    await tx.query('ROLLBACK TO SAVEPOINT update_mailbox');
    throw conflict(`a mailbox for ${address} already exists`, { field: 'address' });
  }
  if (rows[0].kind === 'imap') await notifyImapMailboxChanged(tx, id);
  return getMailbox(tx, id);
}

export async function deleteMailbox(tx: TenantTx, id: string): Promise<void> {
  const { rows } = await tx.query<{ kind: MailboxKind }>(
    'DELETE FROM mailboxes WHERE tenant_id = $1 AND id = $2 RETURNING kind',
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('mailbox');
  // Its IMAP listener lets go at once (heard after commit).
  if (rows[0].kind === 'imap') await notifyImapMailboxChanged(tx, id);
}

/**
 * Records a Graph subscription made outside upkeep (the demo, tests): its id and the clientState
 * that Graph sends back with every notification (the webhook compares them).
 */
export async function recordGraphSubscription(
  tx: TenantTx,
  id: string,
  subscription: { subscriptionId: string; clientState: string; expiresAt: Date },
): Promise<void> {
  const mailbox = await getMailbox(tx, id);
  if (mailbox.kind !== 'graph') throw notFound('mailbox');
  await recordRenewed(tx, id, {
    result: 'created',
    subscriptionId: subscription.subscriptionId,
    clientState: subscription.clientState,
    expiresAt: subscription.expiresAt,
  });
}

/** A provider's block of the mailbox's source state (Graph deltaLink, Gmail historyId, IMAP UIDs). */
export async function mailboxState(
  tx: TenantTx,
  id: string,
  provider: 'graph' | 'gmail' | 'imap',
): Promise<Record<string, unknown>> {
  const { rows } = await tx.query<{ s: Record<string, unknown> | null }>(
    'SELECT state->$3 AS s FROM mailboxes WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, id, provider],
  );
  if (!rows[0]) throw notFound('mailbox');
  return rows[0].s ?? {};
}

/** Merges values into a provider's block of the mailbox's source state. */
export async function setMailboxState(
  tx: TenantTx,
  id: string,
  provider: 'graph' | 'gmail' | 'imap',
  values: Record<string, unknown>,
): Promise<void> {
  if (Object.keys(values).length === 0) return;
  await tx.query(
    `UPDATE mailboxes SET state = state || jsonb_build_object($3::text, coalesce(state->$3, '{}') || $4::jsonb)
      WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id, provider, JSON.stringify(values)],
  );
}

/** The decrypted credentials of a mailbox (for provider clients only). */
export async function mailboxCredentials(
  tx: TenantTx,
  key: Buffer,
  id: string,
): Promise<Record<string, unknown> | null> {
  const { rows } = await tx.query<{ credentials: Buffer | null }>(
    'SELECT credentials FROM mailboxes WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('mailbox');
  return rows[0].credentials
    ? (JSON.parse(unseal(key, rows[0].credentials).toString('utf8')) as Record<string, unknown>)
    : null;
}

/**
 * Saves a refresh token the provider rotated into the mailbox's stored credentials, at once (the old
 * one stops working: losing the new one loses the mailbox, DESIGN §3.7). Not a change of credentials
 * by a person, so the health is left alone. Credentials replaced meanwhile (connected again, or
 * removed) are not overwritten: the token belongs to credentials that are gone.
 */
export async function saveRotatedRefreshToken(
  tx: TenantTx,
  key: Buffer,
  id: string,
  rotation: { previous: string; next: string },
): Promise<boolean> {
  const { rows } = await tx.query<{ credentials: Buffer | null }>(
    'SELECT credentials FROM mailboxes WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
    [tx.tenantId, id],
  );
  if (!rows[0]?.credentials) return false;
  const stored = JSON.parse(unseal(key, rows[0].credentials).toString('utf8')) as Record<string, unknown>;
  if (stored['refreshToken'] !== rotation.previous) return false;
  await tx.query(
    'UPDATE mailboxes SET credentials = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, id, seal(key, JSON.stringify({ ...stored, refreshToken: rotation.next }))],
  );
  return true;
}

/**
 * Mailboxes named by tenant and id, of several tenants at once (a batch of send jobs, platform work
 * in the system scope), keyed `tenant/id`; only the pairs asked for are answered.
 */
export async function mailboxesAcrossTenants(
  sys: SystemTx,
  refs: { tenantId: string; mailboxId: string }[],
): Promise<Map<string, Mailbox>> {
  if (refs.length === 0) return new Map();
  const { rows } = await sys.query<MailboxRow & { tenant_id: string }>(
    `SELECT m.tenant_id, ${COLUMNS} FROM mailboxes m
       JOIN unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, mailbox_id)
         ON m.tenant_id = x.tenant_id AND m.id = x.mailbox_id
      WHERE m.tenant_id = ANY($1::uuid[])`,
    [refs.map((r) => r.tenantId), refs.map((r) => r.mailboxId)],
  );
  return new Map(rows.map((r) => [`${r.tenant_id}/${r.id}`, toMailbox(r)]));
}

/**
 * The mailbox a ticket's conversation belongs to: the given one, else the one its latest mail came
 * in through, else the one its latest mail went out through (a ticket opened by API or console keeps
 * the mailbox its first reply chose), else the tenant's first mailbox; undefined when it has none.
 * (The ledger's rows are read here, not written: each later choice is evaluated only when needed.)
 */
export async function conversationMailbox(
  tx: TenantTx,
  ticketId: string,
  preferredId?: string | null,
): Promise<Mailbox | undefined> {
  if (preferredId) return getMailbox(tx, preferredId);
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE tenant_id = $1 AND id = coalesce(
       (SELECT i.mailbox_id FROM ticket_messages m
          JOIN inbound_messages i ON i.tenant_id = m.tenant_id AND i.id = m.inbound_id
         WHERE m.tenant_id = $1 AND m.ticket_id = $2 AND m.inbound_id IS NOT NULL
         ORDER BY m.created_at DESC LIMIT 1),
       (SELECT d.mailbox_id FROM deliveries d
          JOIN mailboxes x ON x.tenant_id = d.tenant_id AND x.id = d.mailbox_id
         WHERE d.tenant_id = $1 AND d.ticket_id = $2 AND d.channel = 'email'
         ORDER BY d.created_at DESC LIMIT 1),
       (SELECT id FROM mailboxes WHERE tenant_id = $1 ORDER BY created_at, id LIMIT 1))`,
    [tx.tenantId, ticketId],
  );
  return rows[0] ? toMailbox(rows[0]) : undefined;
}

/** The tenant's first mailbox (what mail that belongs to no conversation goes through), if any. */
export async function firstMailbox(tx: TenantTx): Promise<Mailbox | undefined> {
  const { rows } = await tx.query<MailboxRow>(
    `SELECT ${COLUMNS} FROM mailboxes WHERE tenant_id = $1 ORDER BY created_at, id LIMIT 1`,
    [tx.tenantId],
  );
  return rows[0] ? toMailbox(rows[0]) : undefined;
}

/** True when the address is one of these own addresses, also in a plus form (support+T-12@…). */
export function isOwnAddress(own: Set<string>, address: string): boolean {
  const n = normalizeEmail(address);
  return own.has(n) || own.has(n.replace(/\+[^@]*@/, '@'));
}

/** Normalised addresses of all the tenant's mailboxes (mail from them is our own). */
export async function mailboxAddresses(tx: TenantTx): Promise<Set<string>> {
  const { rows } = await tx.query<{ a: string }>(
    'SELECT address_normalized AS a FROM mailboxes WHERE tenant_id = $1',
    [tx.tenantId],
  );
  return new Set(rows.map((r) => r.a));
}
