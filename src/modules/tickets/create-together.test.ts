// Creations of one tenant written together: every creation gets its own answer (its ticket, its
// refusal, or undefined for an unknown address), numbers stay unique and without gaps, and under
// concurrency creations really do share transactions.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { createTicketTogether } from './create-together.ts';

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

    const { rows } = await t.db.pool.query(
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
