// What a test file opened (servers, pools, browsers, its database) is closed when the file ends.
//
// Vitest ignores an `afterAll` registered while hooks run (inside a `beforeAll`), which is where the
// helpers are called, so they register here instead; test/setup-file.ts, run before every file,
// drains this list in one `afterAll` of its own. Last opened, first closed: a file's app closes
// before the pool it uses ends and before its database is dropped.
const closers: (() => unknown)[] = [];

/** Runs `close` when the current test file ends. */
export function atFileEnd(close: () => unknown): void {
  closers.push(close);
}

/** Closes everything registered, newest first; every closer runs even when one fails. */
export async function closeFileResources(): Promise<void> {
  const failures: unknown[] = [];
  while (closers.length > 0) {
    try {
      await closers.pop()!();
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, 'closing the test file’s resources failed');
}
