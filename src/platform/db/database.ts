// Opening the database a process runs on (DATABASE_URL, or the embedded PostgreSQL of the data
// directory), bringing its schema up to date, and the credential-encryption key. Shared by `start`
// (src/app.ts) and the CLI's commands, which need nothing else of the server.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Config, ConfigError, parseSecretKey } from '../config.ts';
import type { Logger } from '../logging.ts';
import { installQueueSchema } from '../queue/queue.ts';
import { type EmbeddedDatabase, type OwnerPurpose, openEmbedded } from './embedded.ts';
import { migrate, migrationStatus } from './migrate.ts';
import { createPool, type Pool } from './pool.ts';
import { APP_ROLE, withSystemTx } from './tx.ts';
import { waitForDatabase } from './wait.ts';

export interface Database {
  /** As the application role: everything the process does but migrate runs through this. */
  url: string;
  pool: Pool;
  /**
   * For connections that keep a session (LISTEN, session-level advisory locks): DATABASE_DIRECT_URL
   * when DATABASE_URL goes through a transaction pooler, else the same as `url`.
   */
  directUrl: string;
  /** DATABASE_URL goes through a transaction pooler (DATABASE_DIRECT_URL is set). */
  pooled: boolean;
  /**
   * As the role that owns the schema, for migrations only: the embedded cluster's superuser, or
   * DATABASE_MIGRATION_URL. Undefined when the process was given DATABASE_URL alone.
   */
  ownerUrl: string | undefined;
  embedded: EmbeddedDatabase | undefined;
  close(): Promise<void>;
}

/** How long a server waits for DATABASE_URL to answer, and a one-off CLI command (unless configured). */
export const SERVER_DB_WAIT_SECONDS = 30;
export const CLI_DB_WAIT_SECONDS = 5;

/**
 * Connects to DATABASE_URL (waiting up to config.dbWaitSeconds for it, or the purpose's default),
 * or starts/joins the embedded PostgreSQL of the data directory.
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { purpose: OwnerPurpose; exclusive?: boolean; poolSize?: number },
): Promise<Database> {
  const embedded = config.databaseUrl
    ? undefined
    : await openEmbedded({
        dataDir: config.dataDir,
        logger,
        purpose: options.purpose,
        exclusive: options.exclusive ?? false,
      });
  const url = config.databaseUrl ?? embedded!.appUrl;
  const ownerUrl = config.databaseUrl ? config.databaseMigrationUrl : embedded!.url;
  const pooled = config.databaseUrl !== undefined && config.databaseDirectUrl !== undefined;
  const pool = createPool({
    connectionString: url,
    max: options.poolSize ?? config.poolSize,
    transactionPooler: pooled,
    // While closing, idle connections the server drops on its way down are expected, not news.
    onError: (err) => {
      if (!closing) logger.warn({ err }, 'database connection lost');
    },
  });
  let closing = false;
  if (config.databaseUrl) {
    const waitSeconds =
      config.dbWaitSeconds ?? (options.purpose === 'server' ? SERVER_DB_WAIT_SECONDS : CLI_DB_WAIT_SECONDS);
    try {
      await waitForDatabase({ db: pool, url, waitSeconds, logger });
      if (pooled) await requireUtcSessions(pool);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }
  return {
    url,
    pool,
    directUrl: (pooled ? config.databaseDirectUrl : undefined) ?? url,
    pooled,
    ownerUrl,
    embedded,
    async close() {
      closing = true;
      await pool.end().catch(() => undefined);
      await embedded?.stop();
    },
  };
}

const UTC_NAMES = [
  'UTC',
  'Etc/UTC',
  'GMT',
  'Etc/GMT',
  'UCT',
  'Etc/UCT',
  'Universal',
  'Etc/Universal',
  'Zulu',
];

/**
 * Timestamps are read as UTC text (pool.ts). Directly, every connection asks for UTC when it starts;
 * a transaction pooler refuses that startup option and hands out its own server connections, whose
 * time zone must then be UTC already.
 */
async function requireUtcSessions(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ tz: string }>("SELECT current_setting('TimeZone') AS tz");
  const tz = rows[0]!.tz;
  if (UTC_NAMES.includes(tz)) return;
  throw new ConfigError([
    `the connections of DATABASE_URL run in the time zone "${tz}", and behind a transaction pooler ` +
      'Relaydesk cannot choose it: give the pooled database timezone=UTC (PgBouncer: in its [databases] ' +
      `entry) or run ALTER ROLE ${APP_ROLE} SET TimeZone = 'UTC' (docs/scale-out.md)`,
  ]);
}

/**
 * Brings the database up to date and checks the role the process runs as. With the owner's URL
 * (embedded, or DATABASE_MIGRATION_URL) it applies pending migrations as the owner; without it, a
 * schema behind this version is refused with what to run. The queue's schema is installed as the
 * application role, which owns it. Then the role is checked (checkApplicationRole). Safe to run from
 * several processes at once.
 */
export async function migrateAll(db: Database): Promise<number[]> {
  let applied: number[] = [];
  if (db.ownerUrl) {
    const owner = createPool({ connectionString: db.ownerUrl, max: 1, applicationName: 'relaydesk-migrate' });
    try {
      applied = await migrate(owner);
      if (db.embedded) await setApplicationPassword(owner, db.embedded.appPassword);
    } finally {
      await owner.end().catch(() => undefined);
    }
  } else {
    const status = await migrationStatus(db.pool);
    if (status.applied < status.expected) {
      throw new ConfigError([
        `the database is at migration ${status.applied} and this Relaydesk needs ${status.expected}: ` +
          'run `relaydesk migrate` with DATABASE_MIGRATION_URL set to the role that owns the schema ' +
          '(README, "An external PostgreSQL"), or set it for this process too',
      ]);
    }
  }
  await installQueueSchema(db.url);
  await checkApplicationRole(db.pool);
  return applied;
}

/**
 * The embedded cluster's application role logs in with the password kept in the data directory.
 * The password travels as a parameter and is quoted by the server (format %L), never spliced here.
 */
async function setApplicationPassword(owner: Pool, password: string): Promise<void> {
  await withSystemTx(owner, async (tx) => {
    await tx.query("SELECT set_config('relaydesk.app_password', $1, true)", [password]);
    await tx.query(
      `DO $$ BEGIN
         EXECUTE format('ALTER ROLE ${APP_ROLE} LOGIN PASSWORD %L', current_setting('relaydesk.app_password'));
       END $$`,
    );
  });
}

/** Why a role would make row-level security moot; empty when it is fit to run Relaydesk. */
export async function applicationRoleProblems(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{
    role: string;
    superuser: boolean;
    bypassrls: boolean;
    via: string | null;
    owns: string | null;
  }>(
    `SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
            (SELECT string_agg(m.rolname, ', ' ORDER BY m.rolname) FROM pg_roles m
              WHERE m.oid <> r.oid AND (m.rolsuper OR m.rolbypassrls)
                AND pg_has_role(r.oid, m.oid, 'MEMBER')) AS via,
            (SELECT string_agg(DISTINCT o.rolname, ', ') FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                AND pg_has_role(r.oid, c.relowner, 'MEMBER')) AS owns
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const r = rows[0]!;
  const problems: string[] = [];
  if (r.superuser) problems.push('is a superuser');
  if (r.bypassrls) problems.push('has BYPASSRLS');
  if (r.via) problems.push(`is a member of ${r.via}, which is a superuser or has BYPASSRLS`);
  if (r.owns) problems.push(`owns Relaydesk's tables (or is a member of their owner ${r.owns})`);
  return problems.map((p) => `the role "${r.role}" ${p}`);
}

/**
 * Refuses to run as a role that row-level security does not bind: tenant isolation would rest on
 * every query being right instead of on the database.
 */
async function checkApplicationRole(pool: Pool): Promise<void> {
  const problems = await applicationRoleProblems(pool);
  if (problems.length === 0) return;
  throw new ConfigError([
    `${problems.join('; ')}: with it, row-level security would not keep tenants apart. ` +
      `Log in as the role ${APP_ROLE} (DATABASE_URL), which is none of these, and run migrations as the ` +
      `schema's owner (DATABASE_MIGRATION_URL); README, "An external PostgreSQL", shows the SQL`,
  ]);
}

/**
 * The credential-encryption key: configured, or generated once into the data directory. With
 * DATABASE_URL it must be configured: processes on several machines share one database, and a key
 * generated by each would leave each unable to open what the others sealed.
 */
export async function resolveSecretKey(config: Config): Promise<Buffer> {
  if (config.secretKey) return config.secretKey;
  if (config.databaseUrl) {
    throw new ConfigError([
      'RELAYDESK_SECRET_KEY is required with DATABASE_URL: it encrypts provider credentials, and every ' +
        'process must use the same one. Make one with: openssl rand -base64 32 (and keep it safe: ' +
        'stored credentials cannot be read without it)',
    ]);
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o755 });
  const file = path.join(config.dataDir, 'secret-key');
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing !== undefined) {
    const problems: string[] = [];
    const key = parseSecretKey(existing, file, problems);
    if (!key) throw new Error(problems.join('; '));
    return key;
  }
  const key = randomBytes(32);
  await writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
  return resolveSecretKey(config);
}
