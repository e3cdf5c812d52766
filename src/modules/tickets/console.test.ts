// What the console asks of the tickets: views, the mailbox filter, full-text search, the requester,
// assignee and SLA with each ticket, bulk changes, presence and the "someone answered meanwhile" check.
import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { type TenantTx, withTenantRead } from '../../platform/db/tx.ts';
import { auditRecordingsSettled } from '../audit/request-audit.ts';
import { type ListTicketsInput, listTickets } from './queries.ts';
import { expirePresence } from './presence.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;
/** A second agent of tenant a, with a token of its own. */
let agent: { id: string; token: string };

const list = async (query: string, token = tokenA) => {
  const res = await t.call(token, 'GET', `/api/v1/tickets?${query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items as any[];
};
const ids = (items: any[]) => items.map((i) => i.id).sort();

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
  const person = await makePerson(t, tokenA, { displayName: 'Agnes Agent', email: 'agnes@agents.test' });
  const minted = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/tokens`, {
    label: 'agnes',
    role: 'agent',
  });
  expect(minted.status).toBe(201);
  agent = { id: person.id, token: minted.body.token };
});

describe('GET /tickets: what comes with each ticket', () => {
  it('names the requester, the assignee and the SLA summary, in the list and in GET', async () => {
    const ticket = await makeTicket(t, tokenA, {
      requester: { email: 'Rita@Customer.test', name: 'Rita Requester' },
      assigneeId: agent.id,
    });
    const [item] = (await list(`requesterId=${ticket.requesterId}`)) as any[];
    expect(item).toMatchObject({
      id: ticket.id,
      requester: { id: ticket.requesterId, displayName: 'Rita Requester', email: 'Rita@Customer.test' },
      assignee: { id: agent.id, displayName: 'Agnes Agent' },
      sla: null,
    });
    await t.db.admin.query(
      `INSERT INTO sla_ticket_state (tenant_id, ticket_id, state, next_due_at) VALUES ($1, $2, 'at_risk', '2030-01-01T10:00:00Z')`,
      [t.a.tenant.id, ticket.id],
    );
    const got = await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}`);
    expect(got.body).toMatchObject({
      requester: { displayName: 'Rita Requester' },
      assignee: { displayName: 'Agnes Agent' },
      sla: { state: 'at_risk', dueAt: '2030-01-01T10:00:00Z' },
    });
    const unassigned = await makeTicket(t, tokenA);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${unassigned.id}`)).body.assignee).toBeNull();
  });
});

describe('GET /tickets?view=', () => {
  it('keeps open tickets only, mine for the caller, unassigned, at risk and breached by SLA state', async () => {
    const mine = await makeTicket(t, tokenA, { assigneeId: agent.id, subject: 'view mine' });
    const mineSolved = await makeTicket(t, tokenA, { assigneeId: agent.id });
    await t.call(tokenA, 'PATCH', `/api/v1/tickets/${mineSolved.id}`, { status: 'solved' });
    const loose = await makeTicket(t, tokenA);
    const breached = await makeTicket(t, tokenA, { assigneeId: agent.id });
    await t.db.admin.query(
      `INSERT INTO sla_ticket_state (tenant_id, ticket_id, state, next_due_at) VALUES ($1, $2, 'breached', now())`,
      [t.a.tenant.id, breached.id],
    );
    const agentMine = ids(await list('view=mine&limit=200', agent.token));
    expect(agentMine).toContain(mine.id);
    expect(agentMine).toContain(breached.id);
    expect(agentMine).not.toContain(mineSolved.id);
    expect(agentMine).not.toContain(loose.id);
    // The admin's "mine" is the admin's own: none of these.
    expect(ids(await list('view=mine&limit=200'))).not.toContain(mine.id);

    const unassigned = ids(await list('view=unassigned&limit=200'));
    expect(unassigned).toContain(loose.id);
    expect(unassigned).not.toContain(mine.id);

    const open = ids(await list('view=open&limit=200'));
    expect(open).toEqual(expect.arrayContaining([mine.id, loose.id, breached.id]));
    expect(open).not.toContain(mineSolved.id);

    expect(ids(await list('view=breached'))).toEqual([breached.id]);
    // Views combine with the other filters.
    expect(await list(`view=breached&assigneeId=${t.a.adminPersonId}`)).toEqual([]);
    expect(ids(await list('view=mine&sla=breached', agent.token))).toEqual([breached.id]);
    // Another tenant's views see none of tenant a's tickets.
    expect(ids(await list('view=open&limit=200', tokenB))).not.toContain(loose.id);
    expect(await list('view=breached', tokenB)).toEqual([]);
  });

  it('refuses a view it does not know', async () => {
    const res = await t.call(tokenA, 'GET', '/api/v1/tickets?view=everything');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });
});

describe('GET /tickets?mailboxId=', () => {
  it('keeps the tickets whose mail came in through the mailbox, in its tenant only', async () => {
    const mailbox = async (address: string) => {
      const res = await t.call(tokenA, 'POST', '/api/v1/mailboxes', { kind: 'mime', address });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.id as string;
    };
    const support = await mailbox('support@desk-a.test');
    const billing = await mailbox('billing@desk-a.test');
    // What inbound records of mail that opened a ticket (its own tests cover how it gets there).
    const ingest = async (mailboxId: string, subject: string) => {
      const ticket = await makeTicket(t, tokenA, { subject });
      await t.db.admin.query(
        `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer, status, ticket_id)
         VALUES ($1, gen_random_uuid(), $2, 'mime', '{}', 'created', $3)`,
        [t.a.tenant.id, mailboxId, ticket.id],
      );
      return ticket.id as string;
    };
    const viaSupport = await ingest(support, 'Printer jam');
    const viaBilling = await ingest(billing, 'Invoice question');
    const byApi = await makeTicket(t, tokenA);
    expect(ids(await list(`mailboxId=${support}`))).toEqual([viaSupport]);
    expect(ids(await list(`mailboxId=${billing}`))).toEqual([viaBilling]);
    expect(ids(await list(`mailboxId=${support}&limit=200`))).not.toContain(byApi.id);
    // Tenant b, asking with tenant a's mailbox, finds nothing (and learns nothing).
    expect(await list(`mailboxId=${support}`, tokenB)).toEqual([]);
  });
});

describe('GET /tickets?search=', () => {
  let subjectHit: any;
  let bodyHit: any;
  let noteHit: any;
  beforeAll(async () => {
    subjectHit = await makeTicket(t, tokenA, { subject: 'Drucker im dritten Stock streikt' });
    bodyHit = await makeTicket(t, tokenA, {
      subject: 'Something else',
      message: { text: 'The quarterly reconciliation spreadsheet refuses to open. Сервер недоступен.' },
    });
    noteHit = await makeTicket(t, tokenA, { subject: 'Quiet one' });
    const note = await t.call(tokenA, 'POST', `/api/v1/tickets/${noteHit.id}/messages`, {
      text: 'Internal: escalated to vendor ticket ZX-4411, contact ops@vendor.example',
      visibility: 'internal',
    });
    expect(note.status).toBe(201);
  });

  it('finds words of the subject and of any message, in any language, case-insensitively', async () => {
    expect(ids(await list('search=drucker'))).toEqual([subjectHit.id]);
    expect(ids(await list('search=STOCK%20streikt'))).toEqual([subjectHit.id]);
    expect(ids(await list('search=spreadsheet'))).toEqual([bodyHit.id]);
    expect(ids(await list(`search=${encodeURIComponent('сервер')}`))).toEqual([bodyHit.id]);
    expect(ids(await list('search=vendor'))).toEqual([noteHit.id]);
    expect(ids(await list(`search=${encodeURIComponent('ops@vendor.example')}`))).toEqual([noteHit.id]);
  });

  it('needs every word, and takes the last one as a prefix from three characters', async () => {
    expect(await list('search=drucker%20spreadsheet')).toEqual([]);
    expect(ids(await list('search=quarterly%20reconcil'))).toEqual([bodyHit.id]);
    expect(ids(await list('search=recon'))).toEqual([bodyHit.id]);
    // Two characters are not a prefix search (it would match half the index).
    expect(await list('search=re')).toEqual([]);
    // No stemming: a longer word is not found by a shorter complete one in the middle of a search.
    expect(await list('search=reconcil%20quarterly')).toEqual([]);
  });

  it('takes anything typed without error, and combines with the other filters', async () => {
    for (const odd of ["'", '&|!():*', '""', '\\', '   ', 'a & b | !c', "o'neil <-> x"]) {
      const res = await t.call(tokenA, 'GET', `/api/v1/tickets?search=${encodeURIComponent(odd)}`);
      expect(res.status, odd).toBe(200);
    }
    expect(await list('search=drucker&status=solved')).toEqual([]);
    expect(ids(await list('search=drucker&status=new'))).toEqual([subjectHit.id]);
    const long = await t.call(tokenA, 'GET', `/api/v1/tickets?search=${'x'.repeat(201)}`);
    expect(long.status).toBe(400);
  });

  it("pages like any list, and never finds another tenant's tickets nor deleted ones", async () => {
    const many = [];
    for (let i = 0; i < 3; i++) many.push(await makeTicket(t, tokenA, { subject: `pagingword ${i}` }));
    const first = await t.call(tokenA, 'GET', '/api/v1/tickets?search=pagingword&limit=2');
    expect(first.body.items.map((x: any) => x.id)).toEqual([many[2].id, many[1].id]);
    const second = await t.call(
      tokenA,
      'GET',
      `/api/v1/tickets?search=pagingword&limit=2&cursor=${first.body.nextCursor}`,
    );
    expect(second.body.items.map((x: any) => x.id)).toEqual([many[0].id]);

    expect(await list('search=drucker', tokenB)).toEqual([]);
    await makeTicket(t, tokenB, { subject: 'Drucker in tenant b' });
    expect(ids(await list('search=drucker'))).toEqual([subjectHit.id]);
    await t.call(tokenA, 'DELETE', `/api/v1/tickets/${many[0].id}`);
    expect(ids(await list('search=pagingword'))).toEqual(ids([many[1], many[2]]));
  });

  it('finds the same page by testing the newest tickets as through the index, whichever it takes', async () => {
    // Eight tickets with a common word, in the subject of the odd ones and a message of the even
    // ones; two of the even ones also have a rarer word.
    const made: string[] = [];
    for (let i = 0; i < 8; i++) {
      const ticket = await makeTicket(
        t,
        tokenA,
        i % 2
          ? { subject: `walkword ${i}` }
          : {
              subject: `Other ${i}`,
              message: { text: `Text with walkword ${i}${i % 4 ? '' : ' and walkrare'}` },
            },
      );
      made.push(ticket.id);
    }
    const newestFirst = [...made].reverse();
    /** The list as the route reads it, with the statements it sent. */
    const read = async (input: ListTicketsInput) => {
      const sent: string[] = [];
      const page = await withTenantRead(t.db.pool, t.a.tenant.id, (tx) => {
        const watched: TenantTx = {
          tenantId: tx.tenantId,
          query: ((sql: string, values?: unknown[]) => {
            sent.push(sql);
            return tx.query(sql, values);
          }) as TenantTx['query'],
        };
        return listTickets(watched, input);
      });
      return {
        ids: page.items.map((i) => i.id),
        next: page.nextCursor,
        index: sent.some((s) => s.includes('ticket_search_hits')),
      };
    };
    // What the index finds is right.
    expect(await read({ search: 'walkword', searchWalk: 0 })).toEqual({
      ids: newestFirst,
      next: null,
      index: true,
    });
    expect((await read({ search: 'walkrare', searchWalk: 0 })).ids).toEqual([made[4], made[0]]);
    // The walk settles a page when it finds the page's matches, or has seen every ticket of the list;
    // otherwise the index answers. Either way, the same page.
    expect((await read({ search: 'walkword', limit: 3, searchWalk: 4 })).index).toBe(false);
    expect((await read({ search: 'walkrare', limit: 3, searchWalk: 4 })).index).toBe(true);
    expect((await read({ search: 'walkrare', limit: 3, searchWalk: 10_000 })).index).toBe(false);
    for (const search of ['walkword', 'walkrare', 'walkword walkrare', 'walkw', 'Other walkw', 'nowhere']) {
      for (const sort of ['created', 'due'] as const) {
        for (const limit of [2, 3, 50]) {
          const viaIndex = await read({ search, sort, limit, searchWalk: 0 });
          for (const walk of [1, 3, 4, 9, 500]) {
            const label = `${search}, ${sort}, limit ${limit}, walk ${walk}`;
            const walked = await read({ search, sort, limit, searchWalk: walk });
            expect({ ...walked, index: true }, label).toEqual(viaIndex);
            if (!viaIndex.next) continue;
            const after = { search, sort, limit, cursor: viaIndex.next };
            expect((await read({ ...after, searchWalk: walk })).ids, label).toEqual(
              (await read({ ...after, searchWalk: 0 })).ids,
            );
          }
        }
      }
    }
    // With the other filters, which the walk applies first.
    const solved = made[6]!;
    expect((await t.call(tokenA, 'PATCH', `/api/v1/tickets/${solved}`, { status: 'solved' })).status).toBe(
      200,
    );
    for (const walk of [0, 2, 500])
      expect((await read({ search: 'walkword', view: 'open', limit: 3, searchWalk: walk })).ids).toEqual([
        made[7],
        made[5],
        made[4],
      ]);
  });

  it('keeps q as the subject substring it was', async () => {
    expect(ids(await list('q=ritten%20Sto'))).toEqual([subjectHit.id]);
  });

  it('uses the text indexes, tenant first, once a tenant has mail to search', async () => {
    // Two thousand messages of ordinary words on one ticket, so that the tables have statistics and
    // the application's statement has mail to plan for.
    await t.db.admin.query(
      `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text)
       SELECT $1, gen_random_uuid(), $2, $3, 'public', 'inbound',
              'Message ' || g || ' about the printer, the network and word' || (g % 97)
         FROM generate_series(1, 2000) g`,
      [t.a.tenant.id, bodyHit.id, bodyHit.requesterId],
    );
    await t.db.admin.query('ANALYZE ticket_messages');
    await t.db.admin.query('ANALYZE tickets');
    const explain = async (sql: string, values: unknown[]) => {
      const client = await t.db.pool.connect();
      try {
        // As the application runs it: its role, row-level security on, the tenant's scope.
        await client.query('BEGIN');
        await client.query("SELECT set_config('app.tenant_id', $1, true)", [t.a.tenant.id]);
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${sql}`, values);
        await client.query('ROLLBACK');
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      } finally {
        client.release();
      }
    };
    // The function's statement: tenant first, its conditions those the text indexes serve. Which of
    // the tenant's index and the text indexes the planner prefers depends on the table's size, and is
    // the benchmark's to show (bench/console-search.ts prints the plan at 100,000 messages: the text
    // index); here, without the tenant's, only the text indexes can serve the conditions.
    const { rows: source } = await t.db.admin.query<{ def: string }>(
      "SELECT pg_get_functiondef('ticket_search_hits(text)'::regprocedure) AS def",
    );
    expect(source[0]!.def).toContain('WHERE m.tenant_id = $1 AND m.search_vector @@ $2');
    expect(source[0]!.def).toContain(
      "WHERE t.tenant_id = $1 AND to_tsvector(''simple''::regconfig, t.subject) @@ $2",
    );
    const admin = await t.db.admin.connect();
    let plan: string;
    try {
      await admin.query('BEGIN');
      await admin.query('SET LOCAL enable_seqscan = off');
      const inner = await admin.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (COSTS OFF) SELECT m.ticket_id FROM ticket_messages m WHERE m.search_vector @@ ticket_search_query($1)
         UNION SELECT h.id FROM tickets h WHERE to_tsvector('simple'::regconfig, h.subject) @@ ticket_search_query($1)`,
        ['spreadsheet'],
      );
      plan = inner.rows.map((r) => r['QUERY PLAN']).join('\n');
    } finally {
      await admin.query('ROLLBACK');
      admin.release();
    }
    expect(plan, plan).toContain('ticket_messages_search_idx');
    expect(plan, plan).toContain('tickets_subject_search_idx');
    const { rows: owner } = await t.db.admin.query(
      `SELECT pg_get_userbyid(proowner) AS owner, prosecdef FROM pg_proc WHERE proname = 'ticket_search_hits'`,
    );
    expect(owner).toEqual([{ owner: 'relaydesk_search', prosecdef: true }]);
    // The application's statement calls it, tenant first.
    const outer = await explain(
      `SELECT t.id FROM tickets t WHERE t.tenant_id = $1 AND t.deleted_at IS NULL
          AND t.id IN (SELECT h.ticket_id FROM ticket_search_hits($2) h) ORDER BY t.created_at DESC LIMIT 51`,
      [t.a.tenant.id, 'spreadsheet'],
    );
    expect(outer, outer).toContain('ticket_search_hits');
  });

  it("finds nothing without a tenant scope, and only the scoped tenant's tickets", async () => {
    const client = await t.db.pool.connect();
    try {
      const { rows: none } = await client.query("SELECT * FROM ticket_search_hits('drucker')");
      expect(none).toEqual([]);
      await client.query('BEGIN');
      await client.query("SELECT set_config('app.tenant_id', $1, true)", [t.b.tenant.id]);
      const { rows: b } = await client.query<{ ticket_id: string }>(
        "SELECT ticket_id FROM ticket_search_hits('drucker')",
      );
      await client.query('ROLLBACK');
      expect(b.map((r) => r.ticket_id)).not.toContain(subjectHit.id);
    } finally {
      client.release();
    }
  });
});

describe('POST /tickets/bulk', () => {
  it('changes each ticket as PATCH would, and says per ticket what happened', async () => {
    const one = await makeTicket(t, tokenA);
    const two = await makeTicket(t, tokenA);
    const deleted = await makeTicket(t, tokenA);
    await t.call(tokenA, 'DELETE', `/api/v1/tickets/${deleted.id}`);
    const foreign = await makeTicket(t, tokenB);
    const res = await t.call(tokenA, 'POST', '/api/v1/tickets/bulk', {
      ticketIds: [one.id, foreign.id, two.id, deleted.id],
      changes: { status: 'pending', assigneeId: agent.id, priority: 'high' },
    });
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { ticketId: one.id, ok: true },
      { ticketId: foreign.id, ok: false, code: 'not_found' },
      { ticketId: two.id, ok: true },
      { ticketId: deleted.id, ok: false, code: 'not_found' },
    ]);
    for (const id of [one.id, two.id]) {
      const got = await t.call(tokenA, 'GET', `/api/v1/tickets/${id}`);
      expect(got.body).toMatchObject({ status: 'pending', priority: 'high', assigneeId: agent.id });
    }
    const { rows: history } = await t.db.admin.query(
      'SELECT to_status, changed_by FROM ticket_status_history WHERE ticket_id = $1 ORDER BY seq',
      [one.id],
    );
    expect(history.at(-1)).toEqual({ to_status: 'pending', changed_by: t.a.adminPersonId });
    // Tenant b's ticket is untouched.
    expect((await t.call(tokenB, 'GET', `/api/v1/tickets/${foreign.id}`)).body.status).toBe('new');

    await auditRecordingsSettled();
    const { rows: audit } = await t.db.admin.query(
      `SELECT tenant_id, target_id, outcome, error_code FROM audit_events WHERE action = 'tickets.bulk_update'
        ORDER BY target_id`,
    );
    expect(audit).toEqual(
      [
        { tenant_id: t.a.tenant.id, target_id: one.id, outcome: 'success', error_code: null },
        { tenant_id: t.a.tenant.id, target_id: two.id, outcome: 'success', error_code: null },
        { tenant_id: t.a.tenant.id, target_id: foreign.id, outcome: 'failed', error_code: 'not_found' },
        { tenant_id: t.a.tenant.id, target_id: deleted.id, outcome: 'failed', error_code: 'not_found' },
      ].sort((x, y) => x.target_id.localeCompare(y.target_id)),
    );
  });

  it('refuses a wrong assignee as a whole, and bad input clearly', async () => {
    const one = await makeTicket(t, tokenA);
    const contact = await makePerson(t, tokenA, { kind: 'contact' });
    const wrong = await t.call(tokenA, 'POST', '/api/v1/tickets/bulk', {
      ticketIds: [one.id],
      changes: { assigneeId: contact.id },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors[0].path).toBe('/changes/assigneeId');
    const otherTenantAgent = await t.call(tokenA, 'POST', '/api/v1/tickets/bulk', {
      ticketIds: [one.id],
      changes: { assigneeId: t.b.adminPersonId },
    });
    expect(otherTenantAgent.status).toBe(400);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${one.id}`)).body.assigneeId).toBeNull();
    for (const body of [
      { ticketIds: [], changes: { status: 'open' } },
      { ticketIds: [one.id], changes: {} },
      { ticketIds: [one.id, one.id], changes: { status: 'open' } },
      { ticketIds: Array.from({ length: 201 }, () => one.id), changes: { status: 'open' } },
      { ticketIds: [one.id], changes: { subject: 'no' } },
    ]) {
      const res = await t.call(tokenA, 'POST', '/api/v1/tickets/bulk', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const viewer = await t.call(tokenA, 'POST', '/api/v1/tokens', { label: 'v', role: 'viewer' });
    const forbidden = await t.call(viewer.body.token, 'POST', '/api/v1/tickets/bulk', {
      ticketIds: [one.id],
      changes: { status: 'open' },
    });
    expect(forbidden.status).toBe(403);
  });
});

describe('presence', () => {
  it('shows who else has the ticket open, expires after 30 s, and stays in its tenant', async () => {
    const ticket = await makeTicket(t, tokenA);
    const url = `/api/v1/tickets/${ticket.id}/presence`;
    t.clock.freeze('2030-05-01T10:00:00Z');
    try {
      expect((await t.call(agent.token, 'PUT', url, { state: 'replying' })).status).toBe(204);
      expect((await t.call(tokenA, 'PUT', url, { state: 'viewing' })).status).toBe(204);
      const seenByAdmin = await t.call(tokenA, 'GET', url);
      expect(seenByAdmin.body.people).toEqual([
        { id: agent.id, displayName: 'Agnes Agent', state: 'replying', since: '2030-05-01T10:00:00Z' },
      ]);
      const seenByAgent = await t.call(agent.token, 'GET', url);
      expect(seenByAgent.body.people.map((p: any) => p.id)).toEqual([t.a.adminPersonId]);

      // Tenant b cannot see, join or leave tenant a's ticket.
      for (const [method, body] of [
        ['GET', undefined],
        ['PUT', { state: 'viewing' }],
        ['DELETE', undefined],
      ] as const) {
        const res = await t.call(tokenB, method, url, body);
        expect(res.status, method).toBe(404);
      }

      t.clock.advance(29_000);
      expect((await t.call(tokenA, 'GET', url)).body.people).toHaveLength(1);
      t.clock.advance(1_000);
      expect((await t.call(tokenA, 'GET', url)).body.people).toEqual([]);
      // The next heartbeat on the ticket removes the expired row.
      await t.call(tokenA, 'PUT', url, { state: 'viewing' });
      const { rows } = await t.db.admin.query('SELECT person_id FROM ticket_presence WHERE ticket_id = $1', [
        ticket.id,
      ]);
      expect(rows).toEqual([{ person_id: t.a.adminPersonId }]);

      await t.call(agent.token, 'PUT', url, { state: 'viewing' });
      expect((await t.call(agent.token, 'DELETE', url)).status).toBe(204);
      expect((await t.call(agent.token, 'DELETE', url)).status).toBe(204);
      expect((await t.call(tokenA, 'GET', url)).body.people).toEqual([]);
    } finally {
      t.clock.unfreeze();
    }
  });

  it("takes a page's requests in the order it sent them: a heartbeat overtaken by the leave is ignored", async () => {
    const ticket = await makeTicket(t, tokenA);
    const url = `/api/v1/tickets/${ticket.id}/presence`;
    const seenByAdmin = async () => (await t.call(tokenA, 'GET', url)).body.people;
    // The page's 'viewing' (3) is overtaken by its 'replying' (4), then by its leave (5).
    expect((await t.call(agent.token, 'PUT', url, { state: 'replying', page: 'tab-1', seq: 4 })).status).toBe(
      204,
    );
    expect((await t.call(agent.token, 'PUT', url, { state: 'viewing', page: 'tab-1', seq: 3 })).status).toBe(
      204,
    );
    expect((await seenByAdmin()).map((p: any) => p.state)).toEqual(['replying']);
    expect((await t.call(agent.token, 'DELETE', `${url}?page=tab-1&seq=5`)).status).toBe(204);
    expect(await seenByAdmin()).toEqual([]);
    expect((await t.call(agent.token, 'PUT', url, { state: 'viewing', page: 'tab-1', seq: 3 })).status).toBe(
      204,
    );
    expect(await seenByAdmin()).toEqual([]);
    const { rows } = await t.db.admin.query(
      'SELECT state, page, seq::int AS seq FROM ticket_presence WHERE ticket_id = $1 AND person_id = $2',
      [ticket.id, agent.id],
    );
    expect(rows).toEqual([{ state: 'left', page: 'tab-1', seq: 5 }]);

    // The same page coming back, another page of the person's, and a request without order all count.
    await t.call(agent.token, 'PUT', url, { state: 'viewing', page: 'tab-1', seq: 6 });
    expect((await seenByAdmin()).map((p: any) => p.id)).toEqual([agent.id]);
    await t.call(agent.token, 'DELETE', `${url}?page=tab-1&seq=7`);
    await t.call(agent.token, 'PUT', url, { state: 'replying', page: 'tab-2', seq: 1 });
    expect((await seenByAdmin()).map((p: any) => p.state)).toEqual(['replying']);
    await t.call(agent.token, 'DELETE', `${url}?page=tab-2&seq=2`);
    await t.call(agent.token, 'PUT', url, { state: 'viewing' });
    expect((await seenByAdmin()).map((p: any) => p.state)).toEqual(['viewing']);
    // A leave without order takes the row away, as before.
    await t.call(agent.token, 'DELETE', url);
    expect(
      (await t.db.admin.query('SELECT 1 FROM ticket_presence WHERE ticket_id = $1', [ticket.id])).rows,
    ).toEqual([]);

    // page and seq go together; each must be well formed.
    for (const [method, target, body] of [
      ['PUT', url, { state: 'viewing', page: 'tab-3' }],
      ['PUT', url, { state: 'viewing', seq: 1 }],
      ['PUT', url, { state: 'viewing', page: 'tab 3', seq: 1 }],
      ['PUT', url, { state: 'viewing', page: 'tab-3', seq: 0 }],
      ['DELETE', `${url}?page=tab-3`, undefined],
      ['DELETE', `${url}?seq=1`, undefined],
      ['DELETE', `${url}?page=tab-3&seq=1.5`, undefined],
    ] as const) {
      const res = await t.call(agent.token, method, target, body);
      expect(res.status, `${method} ${target} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    // Another tenant's leave with order cannot touch the ticket either.
    expect((await t.call(tokenB, 'DELETE', `${url}?page=tab-1&seq=99`)).status).toBe(404);
  });

  it("deletes every tenant's expired rows in the scheduler's sweep, and nothing that still counts", async () => {
    const mine = await makeTicket(t, tokenA);
    const theirs = await makeTicket(t, tokenB);
    t.clock.freeze('2030-06-01T10:00:00Z');
    try {
      await t.call(tokenA, 'PUT', `/api/v1/tickets/${mine.id}/presence`, { state: 'viewing' });
      await t.call(agent.token, 'DELETE', `/api/v1/tickets/${mine.id}/presence?page=tab-9&seq=1`);
      await t.call(tokenB, 'PUT', `/api/v1/tickets/${theirs.id}/presence`, { state: 'replying' });
      t.clock.advance(20_000);
      const fresh = await makeTicket(t, tokenA);
      await t.call(tokenA, 'PUT', `/api/v1/tickets/${fresh.id}/presence`, { state: 'viewing' });
      t.clock.advance(10_000);
      expect(await expirePresence(t.db.pool, t.clock.now())).toBeGreaterThanOrEqual(3);
      const { rows } = await t.db.admin.query(
        'SELECT ticket_id FROM ticket_presence WHERE ticket_id = ANY($1::uuid[])',
        [[mine.id, theirs.id, fresh.id]],
      );
      expect(rows).toEqual([{ ticket_id: fresh.id }]);
    } finally {
      t.clock.unfreeze();
    }
  });

  it('refuses a state it does not know, and is not in the audit trail', async () => {
    const ticket = await makeTicket(t, tokenA);
    const url = `/api/v1/tickets/${ticket.id}/presence`;
    expect((await t.call(tokenA, 'PUT', url, { state: 'typing' })).status).toBe(400);
    expect((await t.call(tokenA, 'PUT', url, {})).status).toBe(400);
    await t.call(tokenA, 'PUT', url, { state: 'viewing' });
    await auditRecordingsSettled();
    const { rows } = await t.db.admin.query('SELECT action FROM audit_events WHERE target_id = $1', [
      ticket.id,
    ]);
    expect(rows.map((r) => r.action)).not.toContain('tickets.presence.update');
    expect(rows).toHaveLength(1); // its creation
  });
});

describe('POST /tickets/:id/messages with seenMessageId', () => {
  it('refuses with ticket_changed when someone else wrote since, and writes nothing', async () => {
    const ticket = await makeTicket(t, tokenA);
    const first = (await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}/messages`)).body.items[0];
    // Nothing new: it goes through.
    const mine = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'A note of mine',
      visibility: 'internal',
      seenMessageId: first.id,
    });
    expect(mine.status).toBe(201);
    // My own newer note is no surprise to me.
    const again = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Another note',
      visibility: 'internal',
      seenMessageId: first.id,
    });
    expect(again.status).toBe(201);
    const theirs = await t.call(agent.token, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Agnes was quicker',
      visibility: 'internal',
    });
    const refused = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Too late',
      visibility: 'public',
      seenMessageId: first.id,
    });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      code: 'ticket_changed',
      newMessages: 1,
      latestMessageId: theirs.body.id,
    });
    const all = (await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}/messages`)).body.items;
    expect(all.map((m: any) => m.text)).not.toContain('Too late');
    // Having seen the newest, or sent without the check, it goes through.
    const ok = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Now',
      visibility: 'internal',
      seenMessageId: theirs.body.id,
    });
    expect(ok.status).toBe(201);
  });

  it("refuses a seenMessageId that is not the ticket's, another tenant's included", async () => {
    const ticket = await makeTicket(t, tokenA);
    const other = await makeTicket(t, tokenA);
    const otherMessage = (await t.call(tokenA, 'GET', `/api/v1/tickets/${other.id}/messages`)).body.items[0];
    const foreign = await makeTicket(t, tokenB);
    const foreignMessage = (await t.call(tokenB, 'GET', `/api/v1/tickets/${foreign.id}/messages`)).body
      .items[0];
    for (const seen of [otherMessage.id, foreignMessage.id]) {
      const res = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
        text: 'x',
        visibility: 'internal',
        seenMessageId: seen,
      });
      expect(res.status).toBe(400);
      expect(res.body.errors[0].path).toBe('/seenMessageId');
    }
  });
});
