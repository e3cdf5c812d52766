// The files a run on another PostgreSQL leaves out (test/own-postgres.ts) are only those that never
// touch the suite's server: leaving one out that does would skip what that run is for.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OWN_POSTGRES_FILES } from './own-postgres.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
// What using the suite's server looks like in a test file: its per-file database or app, the
// multi-process cluster on it, or the server's URL itself.
const USES_SUITE_SERVER = [/from '(\.\.?\/)+(test\/)?(db|app|cluster|hostile|server)\.ts'/, /\binject\(/];

describe('the files a run on another PostgreSQL leaves out', () => {
  it.each(OWN_POSTGRES_FILES)('%s exists and never uses the suite’s server', (file) => {
    const full = path.join(ROOT, file);
    expect(existsSync(full)).toBe(true);
    const source = readFileSync(full, 'utf8');
    for (const pattern of USES_SUITE_SERVER) expect(source).not.toMatch(pattern);
  });
});
