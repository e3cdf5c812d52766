import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Each test file gets its own database. Three workers on a 2-core machine: many files spend
    // their time waiting on a browser, child processes or leases rather than computing.
    pool: 'forks',
    maxWorkers: 3,
    testTimeout: 30_000,
    // What a test waits for comes by itself (a job, a notification); on a loaded machine it may take
    // seconds. expect.poll waits up to this long for it, instead of the default second.
    expect: { poll: { timeout: 15_000, interval: 50 } },
    hookTimeout: 120_000,
    sequence: { shuffle: false },
  },
});
