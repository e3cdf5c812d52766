// The statement check of the suite: every statement the application role ran during the run, as
// pg_stat_statements recorded it on the test server, must keep the tenant rule
// (test/tenant-statements.ts) or be listed, with its reason, in test/tenant-statements.allow.ts.
// test/global-setup.ts starts the collection before the first test file and checks at the end; a
// violation fails the run (the global teardown throws, and vitest exits non-zero).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fingerprintSync } from 'libpg-query';
import pg from 'pg';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { ALLOWED } from './tenant-statements.allow.ts';
import { checkStatement, loadParser, type Violation } from './tenant-statements.ts';

/** Server settings for the collection: every statement kept (the suite runs some 100 databases). */
export const STATEMENT_SETTINGS = [
  'shared_preload_libraries=pg_stat_statements',
  'pg_stat_statements.max=100000',
  // Statements inside functions and triggers too: a trigger's SQL runs as the role that fired it.
  'pg_stat_statements.track=all',
];

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Empties the server's statement statistics, so that what the check reads is this run's. Returns
 * why the check cannot run when the server does not load pg_stat_statements (a DATABASE_URL of
 * another server), undefined when it can.
 */
export async function startCollecting(adminUrl: string): Promise<string | undefined> {
  return withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ libs: string }>(
      "SELECT current_setting('shared_preload_libraries') AS libs",
    );
    if (!rows[0]!.libs.split(',').some((l) => l.trim() === 'pg_stat_statements'))
      return 'the test server does not load pg_stat_statements (shared_preload_libraries)';
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await c.query('SELECT pg_stat_statements_reset()');
    return undefined;
  });
}

export interface CheckResult {
  statements: number;
  violations: { sql: string; fingerprint: string; violations: Violation[] }[];
  allowed: number;
  unusedAllowances: string[];
}

/** The tables that hold a tenant_id column (schema.name), from the catalog of the migrated template. */
async function tenantTables(templateUrl: string): Promise<Set<string>> {
  const { rows } = await withClient(templateUrl, (c) =>
    c.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    ),
  );
  return new Set(rows.map((r) => r.name));
}

/**
 * Every distinct statement of the application role recorded since startCollecting, at any level
 * (inside functions and triggers too).
 */
export async function readCollected(adminUrl: string): Promise<string[]> {
  const { statements, evicted } = await withClient(adminUrl, async (c) => {
    const info = await c.query<{ dealloc: string }>('SELECT dealloc FROM pg_stat_statements_info');
    const { rows } = await c.query<{ query: string }>(
      `SELECT DISTINCT s.query
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = $1`,
      [APP_ROLE],
    );
    return { statements: rows.map((r) => r.query), evicted: Number(info.rows[0]!.dealloc) };
  });
  if (evicted > 0)
    throw new Error(
      `statement check: pg_stat_statements dropped statements ${evicted} times during the run; raise pg_stat_statements.max in test/statement-check.ts`,
    );
  return statements;
}

/** Checks every statement of the application role recorded since startCollecting. */
export async function checkCollected(statements: string[], templateUrl: string): Promise<CheckResult> {
  const tables = await tenantTables(templateUrl);
  await loadParser();
  const allowances = new Map(ALLOWED.flatMap((a) => Object.keys(a.statements).map((f) => [f, a.reason])));
  const used = new Set<string>();
  const violations: CheckResult['violations'] = [];
  let allowed = 0;
  for (const sql of statements) {
    const found = checkStatement(sql, tables);
    if (found.length === 0) continue;
    let fingerprint = '';
    try {
      fingerprint = fingerprintSync(sql);
    } catch {
      // unparsed: reported as such, with no fingerprint to allow it by
    }
    if (allowances.has(fingerprint)) {
      used.add(fingerprint);
      allowed++;
      continue;
    }
    violations.push({ sql, fingerprint, violations: found });
  }
  return {
    statements: statements.length,
    violations,
    allowed,
    unusedAllowances: [...allowances.keys()].filter((f) => !used.has(f)),
  };
}

/** Writes the result beside the test server's files and throws when a statement breaks the rule. */
export async function reportCheck(result: CheckResult, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'tenant-statements.txt');
  const text = result.violations
    .map(
      (v) =>
        `fingerprint ${v.fingerprint || '(none)'}\n${v.violations.map((x) => `  - ${x.rule}: ${x.message}`).join('\n')}\n  ${v.sql.replace(/\s+/g, ' ').trim()}\n`,
    )
    .join('\n');
  const unused = result.unusedAllowances.length
    ? `\nAllowed but not run (stale after a whole run, or not run by a partial one): ${result.unusedAllowances.join(', ')}\n`
    : '';
  await writeFile(file, text + unused);
  const summary = `tenant statement check: ${result.statements} distinct statements of ${APP_ROLE} parsed, ${result.violations.length} break the tenant rule, ${result.allowed} allowed by test/tenant-statements.allow.ts (${result.unusedAllowances.length} allowances not run)`;
  console.log(summary);
  if (result.violations.length > 0) {
    const shown = result.violations
      .slice(0, 10)
      .map((v) => `  ${v.violations[0]!.message}: ${v.sql.replace(/\s+/g, ' ').trim().slice(0, 300)}`)
      .join('\n');
    throw new Error(`${summary}\n${shown}\nAll of them, with their fingerprints: ${file}`);
  }
}
