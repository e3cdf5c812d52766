// Test files that start Relaydesk on its own embedded PostgreSQL, as a new user does (`relaydesk
// start`, `relaydesk demo` on a fresh data directory): that start is what they test, so they never
// use the suite's server. A run on another server (RELAYDESK_TEST_POSTGRES=15, or DATABASE_URL)
// leaves them out: they would only repeat, on the embedded PostgreSQL, what the main run did.
// test/own-postgres.test.ts checks that none of them uses the suite's server.
export const OWN_POSTGRES_FILES = [
  'test/demo.test.ts',
  'test/port-in-use.test.ts',
  'test/root-data-dir.test.ts',
  'test/server-process.test.ts',
  'test/sla-restart.test.ts',
  'test/smtp-process.test.ts',
];

/** Whether this run's server is another one than the embedded PostgreSQL (test/global-setup.ts). */
export const onOtherServer = (env: NodeJS.ProcessEnv = process.env): boolean =>
  Boolean(env['RELAYDESK_TEST_POSTGRES'] || env['DATABASE_URL']);
