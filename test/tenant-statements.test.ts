// The statement checker of the tenant rule (test/tenant-statements.ts) on statements it must accept
// and statements it must reject.
import { beforeAll, describe, expect, it } from 'vitest';
import { ALLOWED } from './tenant-statements.allow.ts';
import { checkStatement, loadParser } from './tenant-statements.ts';

const TENANT_TABLES = new Set([
  'public.tickets',
  'public.people',
  'public.ticket_messages',
  'public.sla_clocks',
]);
const rules = (sql: string) => checkStatement(sql, TENANT_TABLES).map((v) => v.rule);

beforeAll(loadParser);

describe('accepts', () => {
  it.each([
    ['a filter on a parameter', 'SELECT id FROM tickets WHERE tenant_id = $1 AND id = $2'],
    ['the filter the other way round, with a cast', 'SELECT 1 FROM tickets t WHERE $1::uuid = t.tenant_id'],
    ['a constant', "SELECT count(*) FROM people WHERE tenant_id = '6f1c0e8a-0000-4000-8000-000000000000'"],
    ['the scope setting', "SELECT id FROM tickets WHERE tenant_id = current_setting('app.tenant_id')::uuid"],
    ['a one-element IN list', 'SELECT id FROM tickets WHERE tenant_id IN ($1) AND id = $2'],
    ['a row comparison', 'SELECT id FROM tickets WHERE (tenant_id, id) = ($1, $2)'],
    [
      'a join equating tenants, one pinned',
      'SELECT t.id FROM tickets t JOIN people p ON p.tenant_id = t.tenant_id AND p.id = t.requester_id WHERE t.tenant_id = $1',
    ],
    [
      'two tables pinned to the same parameter',
      'SELECT t.id FROM tickets t, people p WHERE t.tenant_id = $1 AND p.tenant_id = $1 AND p.id = t.requester_id',
    ],
    [
      'a left join on tenant and a USING join',
      'SELECT 1 FROM tickets t LEFT JOIN people p ON p.tenant_id = t.tenant_id JOIN ticket_messages m USING (tenant_id) WHERE t.tenant_id = $1',
    ],
    [
      'a correlated subquery',
      'SELECT t.id FROM tickets t WHERE t.tenant_id = $1 AND EXISTS (SELECT 1 FROM ticket_messages m WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id)',
    ],
    [
      'an UPDATE ... FROM a CTE whose own body is scoped',
      'WITH due AS (SELECT tenant_id, id FROM sla_clocks WHERE tenant_id = $1 AND next_wake_at <= now()) UPDATE sla_clocks c SET fired = true FROM due WHERE c.tenant_id = due.tenant_id AND c.id = due.id',
    ],
    ['a DELETE', 'DELETE FROM people WHERE tenant_id = $1 AND id = $2 RETURNING id'],
    [
      'an INSERT naming tenant_id, with ON CONFLICT',
      'INSERT INTO people (tenant_id, id, name) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name',
    ],
    [
      'an INSERT ... SELECT scoped',
      'INSERT INTO ticket_messages (tenant_id, ticket_id) SELECT tenant_id, id FROM tickets WHERE tenant_id = $1',
    ],
    ['tables without tenants', 'SELECT id FROM tenants WHERE id = $1'],
    ['the queue', 'SELECT * FROM pgboss.job WHERE name = $1 FOR UPDATE SKIP LOCKED'],
    ['a CTE named like a tenant table', 'WITH tickets AS (SELECT 1 AS id) SELECT id FROM tickets'],
    ['utility statements', "BEGIN; SELECT set_config('app.tenant_id', $1, true); COMMIT"],
    ['a savepoint named by a parameter (pg_stat_statements on PostgreSQL 18)', 'RELEASE SAVEPOINT $1'],
    [
      'an expression of a PL/pgSQL trigger',
      'EXISTS (SELECT 1 FROM recorded r JOIN tickets t ON t.tenant_id = r.tenant_id AND t.id = r.ticket_id WHERE t.tenant_id = $1)',
    ],
    [
      'arrays of rows within one pinned tenant',
      'UPDATE tickets t SET status = x.status FROM unnest($2::uuid[], $3::text[]) AS x(id, status) WHERE t.tenant_id = $1 AND t.id = x.id',
    ],
    [
      'MERGE on tenant',
      'MERGE INTO people p USING (SELECT $1::uuid AS tenant_id, $2 AS id) s ON p.tenant_id = s.tenant_id AND p.id = s.id WHEN NOT MATCHED THEN INSERT (tenant_id, id) VALUES (s.tenant_id, s.id)',
    ],
  ])('%s', (_, sql) => {
    expect(checkStatement(sql, TENANT_TABLES)).toEqual([]);
  });
});

describe('rejects', () => {
  it.each([
    ['no filter at all', 'SELECT count(*) FROM tickets', ['no-tenant-filter']],
    ['a filter on another column', 'SELECT id FROM tickets WHERE id = $1', ['no-tenant-filter']],
    ['a filter under OR', 'SELECT id FROM tickets WHERE tenant_id = $1 OR id = $2', ['no-tenant-filter']],
    ['a list of tenants', 'SELECT id FROM tickets WHERE tenant_id = ANY($1)', ['no-tenant-filter']],
    ['a range of tenants', 'SELECT id FROM tickets WHERE tenant_id > $1', ['no-tenant-filter']],
    ['an inequality', 'SELECT id FROM tickets WHERE tenant_id <> $1', ['no-tenant-filter']],
    [
      'a join without tenants equated',
      'SELECT t.id FROM tickets t JOIN people p ON p.id = t.requester_id WHERE t.tenant_id = $1',
      ['no-tenant-filter', 'tenants-not-equated'],
    ],
    [
      'a join of two tenants pinned to different parameters',
      'SELECT 1 FROM tickets t JOIN people p ON p.id = t.requester_id WHERE t.tenant_id = $1 AND p.tenant_id = $2',
      ['tenants-not-equated'],
    ],
    [
      'a join equating tenants but pinning none',
      'SELECT count(*) FROM tickets t JOIN people p ON p.tenant_id = t.tenant_id',
      ['no-tenant-filter', 'no-tenant-filter'],
    ],
    [
      'an unscoped subquery',
      'SELECT id FROM tickets WHERE tenant_id = $1 AND requester_id IN (SELECT id FROM people WHERE email = $2)',
      ['no-tenant-filter'],
    ],
    [
      'an unscoped CTE',
      'WITH due AS (SELECT tenant_id, id FROM sla_clocks WHERE next_wake_at <= now() LIMIT 50) UPDATE sla_clocks c SET fired = true FROM due WHERE c.tenant_id = due.tenant_id AND c.id = due.id',
      ['no-tenant-filter'],
    ],
    ['an unscoped UPDATE', 'UPDATE people SET name = $1 WHERE id = $2', ['no-tenant-filter']],
    ['an unscoped DELETE', 'DELETE FROM ticket_messages WHERE created_at < $1', ['no-tenant-filter']],
    ['a schema-qualified table', 'SELECT 1 FROM public.tickets WHERE id = $1', ['no-tenant-filter']],
    [
      'an INSERT without tenant_id',
      'INSERT INTO people (id, name) VALUES ($1, $2)',
      ['insert-without-tenant'],
    ],
    ['an INSERT without columns', 'INSERT INTO people VALUES ($1, $2, $3)', ['insert-without-tenant']],
    [
      'an INSERT ... SELECT across tenants',
      'INSERT INTO ticket_messages (tenant_id, ticket_id) SELECT tenant_id, id FROM tickets',
      ['no-tenant-filter'],
    ],
    [
      'a tenant taken from an unscoped scalar subquery',
      'SELECT id FROM tickets WHERE tenant_id = (SELECT tenant_id FROM people WHERE id = $1)',
      ['no-tenant-filter'],
    ],
    [
      'one side of a UNION',
      'SELECT id FROM tickets WHERE tenant_id = $1 UNION ALL SELECT id FROM people',
      ['no-tenant-filter'],
    ],
    [
      'a join with arrays of tenants',
      'SELECT t.id FROM tickets t JOIN unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, id) ON t.tenant_id = x.tenant_id AND t.id = x.id',
      ['no-tenant-filter'],
    ],
    [
      'an UPDATE from arrays of tenants',
      'UPDATE tickets t SET status = x.status FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS x(tenant_id, id, status) WHERE t.tenant_id = x.tenant_id AND t.id = x.id',
      ['no-tenant-filter'],
    ],
    [
      'a subquery over arrays of tenants',
      'SELECT t.id FROM tickets t JOIN (SELECT * FROM unnest($1::uuid[])) AS x(tenant_id) USING (tenant_id)',
      ['no-tenant-filter'],
    ],
    [
      'a VALUES list of tenants',
      'SELECT t.id FROM tickets t JOIN (VALUES ($1::uuid, $2::uuid), ($3, $4)) AS x(tenant_id, id) ON t.tenant_id = x.tenant_id AND t.id = x.id',
      ['no-tenant-filter'],
    ],
    ['what PostgreSQL cannot parse', 'SELECT id FROM tickets WHERE (', ['unparsed']],
    ['an unscoped expression of a PL/pgSQL trigger', 'EXISTS (SELECT 1 FROM tickets)', ['no-tenant-filter']],
    ['a parameter read as a name', 'SELECT 1 FROM tickets WHERE tenant_id = $1 +', ['unparsed']],
  ])('%s', (_, sql, expected) => {
    expect(rules(sql)).toEqual(expected);
  });

  it('names the table and its alias', () => {
    const [v] = checkStatement('SELECT 1 FROM tickets t WHERE t.id = $1', TENANT_TABLES);
    expect(v).toMatchObject({ rule: 'no-tenant-filter', table: 'public.tickets' });
    expect(v!.message).toContain('(as t)');
  });
});

describe('the allowlist', () => {
  it('names each statement once, by a fingerprint, with a reason', () => {
    const fingerprints = ALLOWED.flatMap((a) => Object.keys(a.statements));
    expect(fingerprints.filter((f) => !/^[0-9a-f]{16}$/.test(f))).toEqual([]);
    expect(new Set(fingerprints).size).toBe(fingerprints.length);
    expect(ALLOWED.filter((a) => a.reason.trim().length < 20)).toEqual([]);
  });
});
