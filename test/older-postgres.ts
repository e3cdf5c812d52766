// The oldest supported PostgreSQL, checked on every run of the suite on the embedded server: at the
// end, every statement the application role ran (pg_stat_statements) is prepared on
// Debian's PostgreSQL 15 as well, in a database migrated there by the same migrations. The whole suite
// on PostgreSQL 15 (RELAYDESK_TEST_POSTGRES=15) takes longer than CI has; this catches, on every
// run, what the SQL written for the newest server asks of the oldest (syntax, functions, types,
// columns of the catalog), since a statement the newest server runs must prepare on the oldest too.
//
// PREPARE parses and analyses a statement without running it. pg_stat_statements records statements
// with their constants replaced by $n. What that takes from the grammar is put back first (interval
// $1 is prepared as $1::interval; a parameter whose type nothing decides, once an untyped literal, is
// given text), and each statement is prepared on the suite's own server too: only a statement that
// prepares there and fails on the older server counts against it. What prepares on neither (a
// trigger's statement naming its row or transition table) is counted and left out.
import path from 'node:path';
import pg from 'pg';
import { type EmbeddedDatabase, openEmbedded } from '../src/platform/db/embedded.ts';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import { migrateAsProduction } from './migrated.ts';
import { debianPostgresInBackground } from './debian-postgres.ts';
import { withDatabase } from './urls.ts';

/** The oldest PostgreSQL major Relaydesk supports (README: 15 to 18). */
export const OLDEST_POSTGRES = '15';

export interface OlderServer {
  major: string;
  /** The migrated database on it, as the application role. */
  appUrl: string;
  stop(): Promise<void>;
}

/** The database the check prepares in, made afresh each time (as the suite's template is). */
const CHECK_DATABASE = 'relaydesk_oldest_check';

/**
 * Installs (apt-get, when missing) and starts Debian's PostgreSQL `major` in `dir`, and migrates a
 * fresh database there as production does: the migrations as the owner, the queue's schema as the
 * application role. Fresh, so that a migration changed since an earlier run is what is checked.
 */
export async function startOlderServer(major: string, dir: string): Promise<OlderServer> {
  const logger = createLogger('warn');
  const server: EmbeddedDatabase = await openEmbedded({
    dataDir: path.resolve(dir),
    logger,
    purpose: 'test',
    binaries: await debianPostgresInBackground(major),
  });
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${CHECK_DATABASE} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${CHECK_DATABASE}`);
    } finally {
      await admin.end();
    }
    const appUrl = await migrateAsProduction(withDatabase(server.url, CHECK_DATABASE), server.appPassword);
    return { major, appUrl, stop: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

export interface ReplayResult {
  statements: number;
  /** Prepared on both servers. */
  prepared: number;
  /** Not preparable as recorded, on the suite's server either (constants normalised away). */
  normalised: number;
  /** Prepared on the suite's server and refused by the older one: the incompatibilities. */
  refused: { sql: string; error: string }[];
}

/** Statements PREPARE takes; the others (BEGIN, SET, LISTEN, ...) need nothing of the grammar's newer parts. */
const PREPARABLE = /^\s*(?:WITH|SELECT|INSERT|UPDATE|DELETE|MERGE|VALUES|TABLE)\b/i;

/**
 * Puts back what pg_stat_statements' normalisation took out of the grammar: `interval $3` (from
 * `interval '1 minute'`) as `$3::interval`, and the like; `extract($2 FROM ...)` with a field.
 */
export const restoreTypedLiterals = (sql: string): string =>
  sql
    .replace(/\b(interval|date|time|timestamp|timestamptz)\s+(\$\d+)/gi, '$2::$1')
    .replace(/\bextract\(\s*\$\d+\s+FROM\b/gi, 'extract(epoch FROM');

/**
 * Whether `sql` prepares on the server of `client`: undefined when it does, else the error's text.
 * Its parameters' types are left to the server (`unknown`); one whose type nothing decides was an
 * untyped literal before normalisation (jsonb_build_object('key', ...)), and is given text, the
 * type PostgreSQL gives such a literal.
 */
async function prepares(client: pg.Client, sql: string): Promise<string | undefined> {
  const count = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  const types: string[] = Array.from({ length: count }, () => 'unknown');
  for (;;) {
    try {
      await client.query(`PREPARE relaydesk_replay${count ? `(${types.join(', ')})` : ''} AS ${sql}`);
      await client.query('DEALLOCATE relaydesk_replay');
      return undefined;
    } catch (err) {
      const e = err as Error & { code?: string };
      const undecided = e.code === '42P18' ? /parameter \$(\d+)/.exec(e.message) : null;
      const index = undecided ? Number(undecided[1]) - 1 : -1;
      if (types[index] === 'unknown') {
        types[index] = 'text';
        continue;
      }
      return `${e.code ?? ''} ${e.message}`.trim();
    }
  }
}

/** Prepares each statement on the suite's server (`ownUrl`) and on the older one (`olderUrl`). */
export async function replay(statements: string[], ownUrl: string, olderUrl: string): Promise<ReplayResult> {
  const own = new pg.Client({ connectionString: ownUrl });
  const older = new pg.Client({ connectionString: olderUrl });
  await own.connect();
  try {
    await older.connect();
    try {
      const result: ReplayResult = { statements: 0, prepared: 0, normalised: 0, refused: [] };
      for (const sql of statements) {
        if (!PREPARABLE.test(sql)) continue;
        result.statements++;
        const text = restoreTypedLiterals(sql);
        if ((await prepares(own, text)) !== undefined) {
          result.normalised++;
          continue;
        }
        const error = await prepares(older, text);
        if (error === undefined) result.prepared++;
        else result.refused.push({ sql, error });
      }
      return result;
    } finally {
      await older.end();
    }
  } finally {
    await own.end();
  }
}

/** Prints the result and throws when the older server refused a statement. */
export function reportReplay(result: ReplayResult, major: string): void {
  const summary =
    `PostgreSQL ${major} check: of ${result.statements} distinct statements of ${APP_ROLE}, ` +
    `${result.prepared} prepare on both servers, ${result.refused.length} are refused by PostgreSQL ${major} ` +
    `alone, ${result.normalised} cannot be prepared as recorded (on neither)`;
  console.log(summary);
  if (result.refused.length > 0)
    throw new Error(
      `${summary}\n${result.refused
        .slice(0, 10)
        .map((r) => `  ${r.error}: ${r.sql.replace(/\s+/g, ' ').trim().slice(0, 300)}`)
        .join('\n')}`,
    );
}
