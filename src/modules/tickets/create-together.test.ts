// Creations of one tenant written together: every creation gets its own answer (its ticket, its
// refusal, or undefined for an unknown address), numbers stay unique and without gaps, and under
// concurrency creations really do share transactions.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createPerson } from '../people/service.ts';
import { createTenant } from '../tenants/service.ts';
import {
  type CreateTicketInput,
  createTicketForKnownRequester,
  createTicketsForKnownRequesters,
  prepareTicket,
} from './create.ts';
import { createTicketTogether } from './create-together.ts';
import { sanitizeBodyHtml } from './model.ts';

let t: TestApp;

beforeAll(async () => {
  t = await useTestApp();
});

describe('createTicketTogether', () => {
  it('answers each creation on its own and numbers them without gaps', async () => {
    const tenantId = t.a.tenant.id;
    const actorId = t.a.adminPersonId;
    // A known address (the admin's own person is known by id; an address becomes known with a contact).
    const first = await createTicketTogether(t.db.pool, tenantId, {
      subject: 'first',
      requester: { personId: actorId },
      actorId,
    });
    expect(first?.number).toBe('T-1');
    const attempts = Array.from({ length: 60 }, (_, i) =>
      createTicketTogether(t.db.pool, tenantId, {
        subject: `s${i}`,
        requester: i % 15 === 7 ? { email: `unknown${i}@example.com` } : { personId: actorId },
        ...(i % 20 === 3 ? { assigneeId: '00000000-0000-7000-8000-000000000000' } : {}),
        message: { text: `body ${i}` },
        actorId,
      }).then(
        (ticket) => ({ i, ticket }),
        (err: unknown) => ({ i, err }),
      ),
    );
    const results = await Promise.all(attempts);
    const refused = results.filter((r) => 'err' in r);
    expect(refused.map((r) => r.i)).toEqual([3, 23, 43]);
    for (const r of refused) expect((r as { err: { code: string } }).err.code).toBe('validation_failed');
    const unknown = results.filter((r) => 'ticket' in r && r.ticket === undefined).map((r) => r.i);
    expect(unknown).toEqual([7, 22, 37, 52]);
    const made = results.flatMap((r) => ('ticket' in r && r.ticket ? [r.ticket] : []));
    expect(made).toHaveLength(53);
    const numbers = made.map((ticket) => Number(ticket.number.slice(2))).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 53 }, (_, i) => i + 2));

    const { rows } = await t.db.admin.query(
      `SELECT count(*)::int AS tickets, count(DISTINCT created_at)::int AS transactions,
              (SELECT count(*)::int FROM ticket_messages m WHERE m.tenant_id = $1) AS messages,
              (SELECT count(*)::int FROM ticket_wakeups w WHERE w.tenant_id = $1) AS wakeups
         FROM tickets WHERE tenant_id = $1`,
      [tenantId],
    );
    expect(rows[0]).toMatchObject({ tickets: 54, messages: 53, wakeups: 54 });
    // Arriving together, they were written in fewer transactions than tickets (now() is per transaction).
    expect(rows[0].transactions).toBeLessThan(54);
  });
});

describe('the statement for several creations', () => {
  it('writes what the one-ticket statement writes, ticket by ticket', async () => {
    const script = async (tenantId: string) =>
      withTenant(t.db.pool, tenantId, async (tx) => {
        const actor = 'system:test' as const;
        const agent = await createPerson(tx, {
          displayName: 'Agent',
          kind: 'agent',
          emails: ['ag@x.test'],
          actor,
        });
        const ann = await createPerson(tx, {
          displayName: 'Ann',
          kind: 'contact',
          emails: ['ann@x.test'],
          actor,
        });
        const inputs: CreateTicketInput[] = [
          { subject: 'by id', requester: { personId: ann.id }, actorId: agent.id },
          { subject: 'by address', requester: { email: 'ANN@x.test' }, priority: 'high', actorId: agent.id },
          { subject: 'unknown', requester: { email: 'nobody@x.test' }, actorId: agent.id },
          { subject: 'assigned', requester: { personId: ann.id }, assigneeId: agent.id, actorId: agent.id },
          { subject: 'bad assignee', requester: { personId: ann.id }, assigneeId: ann.id, actorId: agent.id },
          {
            subject: 'with html',
            requester: { personId: ann.id },
            message: { text: 'hi', html: sanitizeBodyHtml('<p>hi</p>') },
            actorId: agent.id,
          },
          {
            subject: 'with a rich message',
            requester: { personId: ann.id },
            message: { text: 'mail', rfcMessageId: 'x@y.test', participants: ['ann@x.test'] },
            actorId: agent.id,
          },
        ];
        return {
          inputs,
          names: new Map([
            [agent.id, 'agent'],
            [ann.id, 'ann'],
          ]),
        };
      });
    const [a, b] = [
      (await createTenant(t.db.pool, { name: 'many' })).tenant.id,
      (await createTenant(t.db.pool, { name: 'single' })).tenant.id,
    ];
    const sa = await script(a);
    const sb = await script(b);
    const many = await withTenant(t.db.pool, a, (tx) =>
      createTicketsForKnownRequesters(tx, sa.inputs.map(prepareTicket)),
    );
    const single = [];
    for (const input of sb.inputs)
      single.push(
        await withTenant(t.db.pool, b, (tx) => createTicketForKnownRequester(tx, input)).then(
          (ticket) => ({ ticket }),
          (error: unknown) => ({ error }),
        ),
      );
    const shape = (r: { ticket?: unknown; error?: unknown }) =>
      'error' in r ? `refused: ${(r.error as Error).message}` : r.ticket ? 'created' : 'unknown requester';
    expect(many.map(shape)).toEqual(single.map(shape));
    const rows = async (tenantId: string, names: Map<string, string>) => {
      const q = async (sql: string) => (await t.db.admin.query(sql, [tenantId])).rows;
      const name = (id: string | null) => (id === null ? null : (names.get(id) ?? 'id'));
      const tickets = await q(
        `SELECT t.id, t.number, t.subject, t.status, t.priority, t.requester_id, t.assignee_id,
                (SELECT json_agg(json_build_object('from', h.from_status, 'to', h.to_status, 'by', h.changed_by) ORDER BY h.seq)
                   FROM ticket_status_history h WHERE h.tenant_id = t.tenant_id AND h.ticket_id = t.id) AS history,
                (SELECT json_agg(json_build_object('author', m.author_id, 'direction', m.direction, 'text', m.body_text,
                                                   'html', m.body_html, 'rfc', m.rfc_message_id) ORDER BY m.created_at)
                   FROM ticket_messages m WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id) AS messages,
                (SELECT array_agg(p.address_normalized) FROM ticket_participants p
                  WHERE p.tenant_id = t.tenant_id AND p.ticket_id = t.id) AS participants,
                EXISTS (SELECT 1 FROM ticket_wakeups w WHERE w.tenant_id = t.tenant_id AND w.ticket_id = t.id) AS woken
           FROM tickets t WHERE t.tenant_id = $1 ORDER BY t.number`,
      );
      return tickets.map(({ id: _, ...r }) => ({
        ...r,
        requester_id: name(r.requester_id),
        assignee_id: name(r.assignee_id),
        history: r.history.map((h: any) => ({ ...h, by: name(h.by) })),
        messages: r.messages?.map((m: any) => ({ ...m, author: name(m.author) })) ?? null,
      }));
    };
    const [ra, rb] = [await rows(a, sa.names), await rows(b, sb.names)];
    expect(ra.length).toBe(5);
    expect(ra).toEqual(rb);
  });
});

describe('createTicketTogether with the database out of reach', () => {
  it('fails a waiting group at once instead of trying each of its creations again', async () => {
    let connects = 0;
    // A pool whose every connection attempt is refused, as when PostgreSQL is down.
    const down = {
      connect: async () => {
        connects++;
        await new Promise((r) => setTimeout(r, 5));
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      },
    } as unknown as Parameters<typeof createTicketTogether>[0];
    const tenantId = t.a.tenant.id;
    const attempts = Array.from({ length: 8 }, (_, i) =>
      createTicketTogether(down, tenantId, {
        subject: `down ${i}`,
        requester: { personId: t.a.adminPersonId },
        actorId: t.a.adminPersonId,
      }).catch((err: { code?: string }) => err.code),
    );
    expect(await Promise.all(attempts)).toEqual(Array(8).fill('ECONNREFUSED'));
    // The first went alone (nothing was in flight), the seven that waited for it went as one group.
    expect(connects).toBe(2);
  });
});
