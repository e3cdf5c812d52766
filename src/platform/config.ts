// Configuration: read once at boot from the environment (and CLI flags, which win), validated as a
// whole so that an operator sees every problem in one go instead of fixing them one restart at a time.
import path from 'node:path';

export const ROLES = ['all', 'api', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  /**
   * External PostgreSQL, as the application role (not superuser, no BYPASSRLS, owning no table);
   * when absent an embedded PostgreSQL runs in `dataDir`.
   */
  databaseUrl: string | undefined;
  /**
   * The same database as the role that owns the schema, for migrations (DATABASE_MIGRATION_URL).
   * Only with DATABASE_URL; a process without it finds the schema migrated or refuses to run.
   */
  databaseMigrationUrl: string | undefined;
  /**
   * The same database as DATABASE_URL, reached without a transaction-pooling pooler in between
   * (DATABASE_DIRECT_URL). Setting it says that DATABASE_URL goes through one (PgBouncer in
   * `pool_mode = transaction`): what needs a session of its own (LISTEN, the IMAP leader locks)
   * connects here, and DATABASE_URL's connections do without named prepared statements and
   * startup options, which such a pooler cannot carry from one transaction to the next.
   */
  databaseDirectUrl: string | undefined;
  /** Holds the embedded PostgreSQL, the generated secret key and the first admin token. */
  dataDir: string;
  host: string;
  port: number;
  /**
   * 32-byte AES-256-GCM key for provider credentials; undefined until generated on first embedded
   * start. Only what seals or opens credentials asks for it (resolveSecretKey in app.ts).
   */
  secretKey: Buffer | undefined;
  logLevel: LogLevel;
  /** JSON lines (the default, for log collectors) or `pretty` for a person at a terminal. */
  logFormat: LogFormat;
  role: Role;
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  /** Connections in this process's pool. */
  poolSize: number;
  /** Overrides every job type's lease (seconds), e.g. for crash tests; undefined keeps each type's own. */
  jobLeaseSeconds: number | undefined;
  /** Days the delivery ledger keeps attempts (RELAYDESK_DELIVERY_RETENTION_DAYS, default 180). */
  deliveryRetentionDays: number;
  /**
   * Fault injection for crash tests (RELAYDESK_FAULT_KILL_AT): the process kills itself at this named
   * point, e.g. `outbound.after-reserve` or `outbound.after-send`. Never set in production.
   */
  faultKillAt: string | undefined;
  /**
   * How long to keep trying to reach DATABASE_URL before giving up; undefined leaves it to the
   * command (a server waits longer than a one-off CLI command).
   */
  dbWaitSeconds: number | undefined;
  /** When set, /metrics answers only requests with `Authorization: Bearer <metricsToken>`. */
  metricsToken: string | undefined;
  /**
   * Origins (`scheme://host:port`, `*` for any port) a mailbox's provider endpoints may point at
   * beside the providers' own: simulators, a proxy. Empty by default (RELAYDESK_PROVIDER_ORIGINS).
   */
  providerOrigins: string[];
  /** Serve the OpenAPI document and its UI (/docs, /docs/json); by default only on a loopback host. */
  docs: boolean;
  /**
   * The address providers reach this install at (RELAYDESK_PUBLIC_URL, --public-url): Graph
   * subscriptions notify `{publicUrl}/hooks/graph/{mailboxId}`, OAuth redirects to
   * `{publicUrl}/oauth/callback`. Without it no subscription can be made.
   */
  publicUrl: string | undefined;
  upkeep: UpkeepConfig;
  /**
   * Mail in over SMTP (RELAYDESK_SMTP_PORT, `start --smtp-port`): the port of the SMTP listener on
   * `host`, in processes that serve (api, all); undefined runs none. STARTTLS with
   * RELAYDESK_SMTP_TLS_CERT and RELAYDESK_SMTP_TLS_KEY (PEM files).
   */
  smtpPort: number | undefined;
  smtpTls: { certFile: string; keyFile: string } | undefined;
  /** The install's OAuth app registrations (mailboxes may override them in their settings). */
  oauth: { microsoft?: OAuthApp; google?: OAuthApp };
  /**
   * Webhook endpoints may be on loopback, private and link-local addresses
   * (RELAYDESK_ALLOW_PRIVATE_WEBHOOKS=1): for tests and the demo. Off, such URLs are refused when an
   * endpoint is saved and again at each send (server-side request forgery).
   */
  allowPrivateWebhooks: boolean;
}

export interface OAuthApp {
  clientId: string;
  clientSecret: string;
}

/** Subscription upkeep (DESIGN §5.2). */
export interface UpkeepConfig {
  /** How often schedulers look for mailboxes due (RELAYDESK_UPKEEP_INTERVAL_SECONDS, 900). */
  intervalSeconds: number;
  /** Renew what expires within this (RELAYDESK_UPKEEP_LOOKAHEAD_SECONDS, 24 h). */
  lookAheadSeconds: number;
  /** Renew what was renewed longer ago than this, whatever its expiry (RELAYDESK_UPKEEP_MAX_AGE_SECONDS, 24 h). */
  maxAgeSeconds: number;
  /** The expiry asked of Graph for a mail subscription (RELAYDESK_GRAPH_SUBSCRIPTION_MINUTES, 10,070). */
  graphSubscriptionMinutes: number;
  /** Consecutive failures after which a mailbox is in `error` (RELAYDESK_UPKEEP_ERROR_AFTER, 3). */
  errorAfter: number;
  /** How often mail a webhook may have missed is looked for (RELAYDESK_RECONCILE_INTERVAL_SECONDS, 3600). */
  reconcileIntervalSeconds: number;
}

export const DEFAULT_UPKEEP: UpkeepConfig = {
  intervalSeconds: 900,
  lookAheadSeconds: 86_400,
  maxAgeSeconds: 86_400,
  graphSubscriptionMinutes: 10_070,
  errorAfter: 3,
  reconcileIntervalSeconds: 3600,
};

/** Values given as command-line flags; they win over the environment. */
export interface ConfigOverrides {
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  host?: string | undefined;
  port?: string | number | undefined;
  logLevel?: string | undefined;
  role?: string | undefined;
  dbWaitSeconds?: string | number | undefined;
  publicUrl?: string | undefined;
  smtpPort?: string | number | undefined;
}

/**
 * The flag behind each override, so that a problem names what the user typed: `--port 70000` is
 * reported as --port, PORT=70000 as PORT.
 */
const FLAGS: Record<keyof ConfigOverrides, string> = {
  databaseUrl: 'DATABASE_URL',
  dataDir: '--data',
  host: '--host',
  port: '--port',
  logLevel: '--log-level',
  role: '--role',
  dbWaitSeconds: '--db-wait',
  publicUrl: '--public-url',
  smtpPort: '--smtp-port',
};

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function parseInteger(
  name: string,
  raw: string | number | undefined,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  if (raw === undefined || raw === '') return fallback;
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) {
    problems.push(`${name} must be an integer between ${min} and ${max}, got "${text}"`);
    return fallback;
  }
  const value = Number(text);
  if (value < min || value > max) {
    problems.push(`${name} must be between ${min} and ${max}, got ${value}`);
    return fallback;
  }
  return value;
}

export function parseSecretKey(raw: string, source: string, problems: string[]): Buffer | undefined {
  const text = raw.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    problems.push(`${source} must be base64 (32 bytes); it contains other characters`);
    return undefined;
  }
  const key = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) {
    problems.push(
      `${source} must decode to 32 bytes, got ${key.length} (generate one with: openssl rand -base64 32)`,
    );
    return undefined;
  }
  return key;
}

/** True for names and addresses that only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/** Builds the configuration from `env` and `overrides` (flags), throwing one ConfigError listing every problem. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: ConfigOverrides = {},
  cwd = process.cwd(),
): Config {
  const problems: string[] = [];
  /** The flag when the value came from one, else the environment variable. */
  const source = (key: keyof ConfigOverrides, variable: string) =>
    overrides[key] !== undefined ? FLAGS[key] : variable;

  const databaseUrl = (overrides.databaseUrl ?? env['DATABASE_URL'])?.trim() || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must start with postgres:// or postgresql://');
  }
  const databaseMigrationUrl = env['DATABASE_MIGRATION_URL']?.trim() || undefined;
  if (databaseMigrationUrl !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(databaseMigrationUrl))
      problems.push('DATABASE_MIGRATION_URL must start with postgres:// or postgresql://');
    else if (databaseUrl === undefined)
      problems.push(
        'DATABASE_MIGRATION_URL is only for an external PostgreSQL: set DATABASE_URL too (the embedded one needs neither)',
      );
  }

  const databaseDirectUrl = env['DATABASE_DIRECT_URL']?.trim() || undefined;
  if (databaseDirectUrl !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(databaseDirectUrl))
      problems.push('DATABASE_DIRECT_URL must start with postgres:// or postgresql://');
    else if (databaseUrl === undefined)
      problems.push(
        'DATABASE_DIRECT_URL is only for an external PostgreSQL behind a pooler: set DATABASE_URL too',
      );
  }

  const dataDir = path.resolve(cwd, overrides.dataDir ?? env['RELAYDESK_DATA_DIR'] ?? './.relaydesk');
  const host = (overrides.host ?? env['HOST'] ?? '127.0.0.1').trim();
  if (host === '') problems.push(`${source('host', 'HOST')} must not be empty`);
  const port = parseInteger(source('port', 'PORT'), overrides.port ?? env['PORT'], 8080, 0, 65535, problems);

  // Not required here even with DATABASE_URL: `tenant list` or `migrate` never touch credentials.
  const rawKey = env['RELAYDESK_SECRET_KEY'];
  const secretKey =
    rawKey !== undefined && rawKey.trim() !== ''
      ? parseSecretKey(rawKey, 'RELAYDESK_SECRET_KEY', problems)
      : undefined;

  const logLevelRaw = (overrides.logLevel ?? env['LOG_LEVEL'] ?? 'info').trim().toLowerCase();
  let logLevel: LogLevel = 'info';
  if ((LOG_LEVELS as readonly string[]).includes(logLevelRaw)) logLevel = logLevelRaw as LogLevel;
  else
    problems.push(
      `${source('logLevel', 'LOG_LEVEL')} must be one of ${LOG_LEVELS.join(', ')}, got "${logLevelRaw}"`,
    );

  const logFormatRaw = (env['LOG_FORMAT'] ?? '').trim().toLowerCase() || 'json';
  let logFormat: LogFormat = 'json';
  if ((LOG_FORMATS as readonly string[]).includes(logFormatRaw)) logFormat = logFormatRaw as LogFormat;
  else problems.push(`LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}, got "${logFormatRaw}"`);

  const roleRaw = (overrides.role ?? env['RELAYDESK_ROLE'] ?? 'all').trim();
  let role: Role = 'all';
  if ((ROLES as readonly string[]).includes(roleRaw)) role = roleRaw as Role;
  else
    problems.push(`${source('role', 'RELAYDESK_ROLE')} must be one of ${ROLES.join(', ')}, got "${roleRaw}"`);

  const bodyLimit = parseInteger(
    'RELAYDESK_BODY_LIMIT',
    env['RELAYDESK_BODY_LIMIT'],
    10 * 1024 * 1024,
    1024,
    1024 * 1024 * 1024,
    problems,
  );
  const poolSize = parseInteger('RELAYDESK_POOL_SIZE', env['RELAYDESK_POOL_SIZE'], 20, 2, 500, problems);

  const leaseRaw = env['RELAYDESK_JOB_LEASE_SECONDS'];
  const jobLeaseSeconds =
    leaseRaw === undefined || leaseRaw === ''
      ? undefined
      : parseInteger('RELAYDESK_JOB_LEASE_SECONDS', leaseRaw, 60, 2, 86_400, problems);

  const deliveryRetentionDays = parseInteger(
    'RELAYDESK_DELIVERY_RETENTION_DAYS',
    env['RELAYDESK_DELIVERY_RETENTION_DAYS'],
    180,
    31,
    3650,
    problems,
  );
  const faultKillAt = env['RELAYDESK_FAULT_KILL_AT'] || undefined;

  const dbWaitRaw = overrides.dbWaitSeconds ?? env['RELAYDESK_DB_WAIT_SECONDS'];
  const dbWaitSeconds =
    dbWaitRaw === undefined || dbWaitRaw === ''
      ? undefined
      : parseInteger(source('dbWaitSeconds', 'RELAYDESK_DB_WAIT_SECONDS'), dbWaitRaw, 30, 0, 3600, problems);

  const metricsToken = env['RELAYDESK_METRICS_TOKEN']?.trim() || undefined;

  const providerOrigins = (env['RELAYDESK_PROVIDER_ORIGINS'] ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const origin of providerOrigins) {
    if (!/^https?:\/\/[^/:?#@\s]+(:(\d{1,5}|\*))?$/.test(origin))
      problems.push(
        `RELAYDESK_PROVIDER_ORIGINS: "${origin}" is not an origin (scheme://host or scheme://host:port, port * for any)`,
      );
  }

  // The API reference lists every route; an install that listens beyond this machine shows it only
  // when asked to.
  const docsRaw = (env['RELAYDESK_DOCS'] ?? '').trim().toLowerCase();
  let docs = isLoopbackHost(host);
  if (docsRaw === 'on' || docsRaw === 'off') docs = docsRaw === 'on';
  else if (docsRaw !== '') problems.push(`RELAYDESK_DOCS must be on or off, got "${docsRaw}"`);

  const publicRaw = (overrides.publicUrl ?? env['RELAYDESK_PUBLIC_URL'] ?? '').trim();
  let publicUrl: string | undefined;
  if (publicRaw !== '') {
    let url: URL | undefined;
    try {
      url = new URL(publicRaw);
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash || url.username)
      problems.push(
        `${source('publicUrl', 'RELAYDESK_PUBLIC_URL')} must be an http(s) URL without query or credentials, got "${publicRaw}"`,
      );
    else publicUrl = url.href.replace(/\/+$/, '');
  }
  const upkeepInt = (name: string, fallback: number, min: number, max: number) =>
    parseInteger(name, env[name], fallback, min, max, problems);
  const upkeep: UpkeepConfig = {
    intervalSeconds: upkeepInt(
      'RELAYDESK_UPKEEP_INTERVAL_SECONDS',
      DEFAULT_UPKEEP.intervalSeconds,
      1,
      86_400,
    ),
    lookAheadSeconds: upkeepInt(
      'RELAYDESK_UPKEEP_LOOKAHEAD_SECONDS',
      DEFAULT_UPKEEP.lookAheadSeconds,
      60,
      7 * 86_400,
    ),
    maxAgeSeconds: upkeepInt(
      'RELAYDESK_UPKEEP_MAX_AGE_SECONDS',
      DEFAULT_UPKEEP.maxAgeSeconds,
      60,
      7 * 86_400,
    ),
    graphSubscriptionMinutes: upkeepInt(
      'RELAYDESK_GRAPH_SUBSCRIPTION_MINUTES',
      DEFAULT_UPKEEP.graphSubscriptionMinutes,
      45,
      10_080,
    ),
    errorAfter: upkeepInt('RELAYDESK_UPKEEP_ERROR_AFTER', DEFAULT_UPKEEP.errorAfter, 1, 1000),
    reconcileIntervalSeconds: upkeepInt(
      'RELAYDESK_RECONCILE_INTERVAL_SECONDS',
      DEFAULT_UPKEEP.reconcileIntervalSeconds,
      60,
      7 * 86_400,
    ),
  };
  const oauth: Config['oauth'] = {};
  for (const [key, prefix] of [
    ['microsoft', 'RELAYDESK_MICROSOFT'],
    ['google', 'RELAYDESK_GOOGLE'],
  ] as const) {
    const clientId = env[`${prefix}_CLIENT_ID`]?.trim();
    const clientSecret = env[`${prefix}_CLIENT_SECRET`]?.trim();
    if (clientId && clientSecret) oauth[key] = { clientId, clientSecret };
    else if (clientId || clientSecret)
      problems.push(`${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET are set together or not at all`);
  }

  const smtpRaw = overrides.smtpPort ?? env['RELAYDESK_SMTP_PORT'];
  const smtpPort =
    smtpRaw === undefined || smtpRaw === ''
      ? undefined
      : parseInteger(source('smtpPort', 'RELAYDESK_SMTP_PORT'), smtpRaw, 2525, 0, 65_535, problems);
  const certFile = env['RELAYDESK_SMTP_TLS_CERT']?.trim() || undefined;
  const keyFile = env['RELAYDESK_SMTP_TLS_KEY']?.trim() || undefined;
  if (Boolean(certFile) !== Boolean(keyFile))
    problems.push('RELAYDESK_SMTP_TLS_CERT and RELAYDESK_SMTP_TLS_KEY are set together or not at all');
  const smtpTls = certFile && keyFile ? { certFile, keyFile } : undefined;

  const privateHooksRaw = (env['RELAYDESK_ALLOW_PRIVATE_WEBHOOKS'] ?? '').trim().toLowerCase();
  let allowPrivateWebhooks = false;
  if (['1', 'true', 'on'].includes(privateHooksRaw)) allowPrivateWebhooks = true;
  else if (!['', '0', 'false', 'off'].includes(privateHooksRaw))
    problems.push(`RELAYDESK_ALLOW_PRIVATE_WEBHOOKS must be 1 or 0, got "${privateHooksRaw}"`);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    databaseUrl,
    databaseMigrationUrl,
    databaseDirectUrl,
    dataDir,
    host,
    port,
    secretKey,
    logLevel,
    logFormat,
    role,
    bodyLimit,
    poolSize,
    jobLeaseSeconds,
    deliveryRetentionDays,
    faultKillAt,
    dbWaitSeconds,
    metricsToken,
    providerOrigins,
    docs,
    publicUrl,
    upkeep,
    oauth,
    smtpPort,
    smtpTls,
    allowPrivateWebhooks,
  };
}
