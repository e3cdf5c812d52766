import { configDefaults, defineConfig } from 'vitest/config';
import { onOtherServer, OWN_POSTGRES_FILES } from './test/own-postgres.ts';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // On another server than the embedded PostgreSQL, the files that start their own are left out.
    exclude: [...configDefaults.exclude, ...(onOtherServer() ? OWN_POSTGRES_FILES : [])],
    globalSetup: ['test/global-setup.ts'],
    // Closes what each file opened (its app, browser, database) when the file ends.
    setupFiles: ['test/setup-file.ts'],
    // Each test file gets its own database. Three workers on a 2-core machine: many files spend
    // their time waiting on a browser, child processes or leases rather than computing.
    pool: 'forks',
    // A worker runs file after file without being started afresh: importing the application again
    // for every file cost more than a minute of the run. What isolates files is their own database
    // (test/db.ts) and their resources closed at their end (test/file-end.ts), not the process.
    isolate: false,
    maxWorkers: 3,
    testTimeout: 30_000,
    // What a test waits for comes by itself (a job, a notification); on a loaded machine it may take
    // seconds. expect.poll waits up to this long for it, instead of the default second.
    expect: { poll: { timeout: 15_000, interval: 50 } },
    hookTimeout: 120_000,
    sequence: { shuffle: false },
  },
});
