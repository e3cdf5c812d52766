// Starts one PostgreSQL for the whole test run (the embedded one in .relaydesk-test/, Debian's
// PostgreSQL N in .relaydesk-test-pgN/ with RELAYDESK_TEST_POSTGRES=N, or the server of DATABASE_URL)
// and prepares a template database with every migration and the queue schema applied. Each test file
// then clones its own database from the template (test/db.ts), so files are isolated and can run in
// parallel. At the end, every statement the application role ran must keep the tenant rule
// (test/statement-check.ts), and on the embedded server also prepare on the oldest supported
// PostgreSQL (test/older-postgres.ts, started in the background meanwhile), or the run fails.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { type EmbeddedDatabase, openEmbedded } from '../src/platform/db/embedded.ts';
import { createLogger } from '../src/platform/logging.ts';
import { migrateAsProduction } from './migrated.ts';
import { debianPostgres } from './debian-postgres.ts';
import {
  OLDEST_POSTGRES,
  type OlderServer,
  replay,
  reportReplay,
  startOlderServer,
} from './older-postgres.ts';
import {
  checkCollected,
  readCollected,
  reportCheck,
  startCollecting,
  STATEMENT_SETTINGS,
} from './statement-check.ts';
import { appDatabaseUrl, withDatabase } from './urls.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a database on the test server with rights to create databases. */
    adminDatabaseUrl: string;
    /** The application role's password on the test server (its URLs are adminDatabaseUrl's with it). */
    appRolePassword: string;
    templateDatabase: string;
  }
}

export const TEMPLATE = 'relaydesk_test_template';

let embedded: EmbeddedDatabase | undefined;
let checked: { adminUrl: string; dir: string; appRolePassword: string } | undefined;
/** The oldest supported PostgreSQL, starting while the tests run (on the embedded server only). */
let older: Promise<OlderServer> | undefined;

export async function setup(project: TestProject): Promise<void> {
  const logger = createLogger('warn');
  let adminUrl = process.env['DATABASE_URL'];
  const major = process.env['RELAYDESK_TEST_POSTGRES'];
  if (adminUrl && major) throw new Error('set DATABASE_URL or RELAYDESK_TEST_POSTGRES, not both');
  const dir = path.resolve(major ? `.relaydesk-test-pg${major}` : '.relaydesk-test');
  if (!adminUrl) {
    if (!major) {
      older = startOlderServer(OLDEST_POSTGRES, '.relaydesk-test-oldest');
      // Awaited at the end; until then a failure must not count as unhandled.
      older.catch(() => undefined);
    }
    embedded = await openEmbedded({
      dataDir: dir,
      logger,
      purpose: 'test',
      ...(major ? { binaries: debianPostgres(major) } : {}),
      settings: STATEMENT_SETTINGS,
    });
    adminUrl = embedded.url;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Drop the template and databases left over by an earlier, interrupted run.
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE 'relaydesk\\_test\\_f\\_%'",
      [TEMPLATE],
    );
    for (const r of rows) await admin.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE}`);
  } finally {
    await admin.end();
  }
  const templateUrl = withDatabase(adminUrl, TEMPLATE);
  // The statements of this run are collected from here on (the migrations run as the owner, the
  // queue's schema is installed as the application role, whose statements are checked).
  const skipped = await startCollecting(adminUrl);
  if (skipped) console.log(`tenant statement check skipped: ${skipped}`);
  // As in production; the application role logs in with a password of this run.
  const appRolePassword = randomBytes(18).toString('base64url');
  await migrateAsProduction(templateUrl, appRolePassword);
  if (!skipped) checked = { adminUrl, dir, appRolePassword };
  project.provide('adminDatabaseUrl', adminUrl);
  project.provide('appRolePassword', appRolePassword);
  project.provide('templateDatabase', TEMPLATE);
}

export async function teardown(): Promise<void> {
  try {
    if (checked) {
      const templateUrl = withDatabase(checked.adminUrl, TEMPLATE);
      const collected = await readCollected(checked.adminUrl);
      await reportCheck(await checkCollected(collected, templateUrl), checked.dir);
      if (older) {
        const server = await older;
        const ownUrl = appDatabaseUrl(templateUrl, checked.appRolePassword);
        reportReplay(await replay(collected, ownUrl, server.appUrl), server.major);
      }
    }
  } finally {
    await older?.then((server) => server.stop()).catch(() => undefined);
    await embedded?.stop();
  }
}
