import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Each test file gets its own database; two workers suit this 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    // What a test waits for comes by itself (a job, a notification); on a loaded machine it may take
    // seconds. expect.poll waits up to this long for it, instead of the default second.
    expect: { poll: { timeout: 15_000, interval: 50 } },
    hookTimeout: 120_000,
    sequence: { shuffle: false },
  },
});
