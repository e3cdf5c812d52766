// The check on the oldest supported PostgreSQL (test/older-postgres.ts) that every run on the
// embedded server ends with: it must refuse a statement only a newer server knows, and check the
// statements pg_stat_statements recorded with their constants normalised away where it can.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase, type TestDatabase } from './db.ts';
import { atFileEnd } from './file-end.ts';
import {
  OLDEST_POSTGRES,
  type OlderServer,
  replay,
  reportReplay,
  restoreTypedLiterals,
  startOlderServer,
} from './older-postgres.ts';

let db: TestDatabase;
let older: OlderServer;

beforeAll(async () => {
  db = await useTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-oldest-'));
  older = await startOlderServer(OLDEST_POSTGRES, dir);
  atFileEnd(async () => {
    await older.stop();
    await rm(dir, { recursive: true, force: true });
  });
}, 180_000);

describe(`the check on PostgreSQL ${OLDEST_POSTGRES}`, () => {
  it('runs on the oldest supported major, migrated as production is', async () => {
    const result = await replay(
      [
        'SELECT current_setting($1)::int / $2 AS major',
        'SELECT count(*) FROM tickets WHERE tenant_id = $1',
        'SELECT count(*) FROM pgboss.job WHERE name = $1',
      ],
      db.url,
      older.appUrl,
    );
    expect(result).toEqual({ statements: 3, prepared: 3, normalised: 0, refused: [] });
  });

  it('refuses what only a newer server has, and says which statement and why', async ({ skip }) => {
    // On a suite's server of 15 itself (RELAYDESK_TEST_POSTGRES=15), nothing is newer there.
    const { rows } = await db.pool.query<{ v: number }>(
      "SELECT current_setting('server_version_num')::int AS v",
    );
    if (rows[0]!.v < 160000) skip('the suite runs on a PostgreSQL older than 16');
    // any_value() and json_array() came with PostgreSQL 16; the embedded server is 18.
    const newer = [
      'SELECT any_value(status) FROM tickets WHERE tenant_id = $1',
      'SELECT json_array(1, 2) AS list',
    ];
    const result = await replay(['SELECT 1', ...newer, 'BEGIN'], db.url, older.appUrl);
    expect(result.statements).toBe(3);
    expect(result.prepared).toBe(1);
    expect(result.refused.map((r) => r.sql)).toEqual(newer);
    expect(result.refused[0]!.error).toMatch(/^42883 function any_value\(.*\) does not exist/);
    expect(() => reportReplay(result, OLDEST_POSTGRES)).toThrow(
      /2 are refused by PostgreSQL 15 alone[\s\S]*any_value/,
    );
  });

  it('puts back what normalisation took from the grammar, and counts what cannot be prepared as recorded', async () => {
    expect(restoreTypedLiterals('now() - interval $3 AND d > date $4 AND t < timestamptz $5')).toBe(
      'now() - $3::interval AND d > $4::date AND t < $5::timestamptz',
    );
    expect(restoreTypedLiterals('SELECT extract($3 FROM now() - updated_at)')).toBe(
      'SELECT extract(epoch FROM now() - updated_at)',
    );
    const result = await replay(
      [
        'UPDATE api_tokens SET last_used_at = now() WHERE tenant_id = $1 AND last_used_at < now() - interval $2',
        'SELECT extract($2 FROM now() - created_at) FROM tickets WHERE tenant_id = $1',
        // An untyped literal, normalised to a parameter whose type nothing decides: text, as before.
        'SELECT jsonb_build_object($1, $2::int) AS o, $3 IS NULL AS n',
        // A trigger's statement naming its row: not preparable outside it, on either server.
        'DELETE FROM console_sessions WHERE tenant_id = NEW.tenant_id AND person_id = NEW.id',
      ],
      db.url,
      older.appUrl,
    );
    expect(result).toEqual({ statements: 4, prepared: 3, normalised: 1, refused: [] });
  });
});
