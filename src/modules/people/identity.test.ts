import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { createPool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { resolveOrAutoLink } from './identities.ts';
import { expireUnmapped, recordUnmapped } from './unmapped.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

const events = async (personId: string) =>
  (
    await t.db.admin.query(
      'SELECT event_type, actor, before, after FROM identity_events WHERE person_id = $1 ORDER BY created_at, id',
      [personId],
    )
  ).rows;

/** Runs `fn` and returns the identity events it wrote for `personId`. */
async function newEvents(personId: string, fn: () => Promise<unknown>) {
  const before = (await events(personId)).length;
  await fn();
  return (await events(personId)).slice(before);
}

describe('person profile', () => {
  it('creates a person with status, time zone, channel and metadata, and records it', async () => {
    const res = await t.call(tokenA, 'POST', '/api/v1/people', {
      displayName: 'Frank',
      kind: 'contact',
      status: 'invited',
      emails: ['frank@example.com', 'f.alias@example.com'],
      timeZone: 'Europe/Berlin',
      preferredChannel: 'teams',
      metadata: { department: 'IT', seat: 12 },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      status: 'invited',
      timeZone: 'Europe/Berlin',
      preferredChannel: 'teams',
      metadata: { department: 'IT', seat: 12 },
      identities: [],
    });
    const log = await events(res.body.id);
    expect(log.map((e) => e.event_type)).toEqual(['profile_changed', 'email_added', 'email_added']);
    expect(log[0]!.actor).toBe(`person:${t.a.adminPersonId}`);
    expect(log[0]!.before).toBeNull();
  });

  it.each([
    ['a bad time zone', { timeZone: 'Mars/Olympus' }],
    ['a bad channel', { preferredChannel: 'pager' }],
    ['a bad status', { status: 'gone' }],
    ['metadata that is not an object', { metadata: [1, 2] }],
    ['metadata over the size limit', { metadata: { blob: 'x'.repeat(17 * 1024) } }],
  ])('refuses %s and writes nothing', async (_name, extra) => {
    const before = (await t.db.admin.query('SELECT count(*)::int AS n FROM people')).rows[0].n;
    const res = await t.call(tokenA, 'POST', '/api/v1/people', {
      displayName: 'Bad',
      kind: 'contact',
      ...extra,
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM people')).rows[0].n).toBe(before);
  });

  it('records one profile_changed for a profile PATCH and one status_changed for a status change', async () => {
    const person = await makePerson(t, tokenA);
    const profile = await newEvents(person.id, () =>
      t.call(tokenA, 'PATCH', `/api/v1/people/${person.id}`, { timeZone: 'America/New_York' }),
    );
    expect(profile).toEqual([
      expect.objectContaining({
        event_type: 'profile_changed',
        before: { timeZone: null },
        after: { timeZone: 'America/New_York' },
      }),
    ]);
    const status = await newEvents(person.id, () =>
      t.call(tokenA, 'PATCH', `/api/v1/people/${person.id}`, { status: 'suspended' }),
    );
    expect(status).toEqual([
      expect.objectContaining({
        event_type: 'status_changed',
        before: { status: 'active' },
        after: { status: 'suspended' },
      }),
    ]);
    const none = await newEvents(person.id, () =>
      t.call(tokenA, 'PATCH', `/api/v1/people/${person.id}`, { status: 'suspended' }),
    );
    expect(none).toEqual([]);
    const listed = await t.call(tokenA, 'GET', '/api/v1/people?status=suspended');
    expect(listed.body.items.map((p: any) => p.id)).toContain(person.id);
  });

  it('replaces the set of addresses with PATCH emails, one event per change', async () => {
    const person = await makePerson(t, tokenA, { email: 'one@example.com' });
    const log = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'PATCH', `/api/v1/people/${person.id}`, {
        emails: ['two@example.com', 'One@example.com'],
      });
      expect(res.body.emails).toEqual([
        { address: 'two@example.com', primary: true },
        { address: 'one@example.com', primary: false },
      ]);
    });
    expect(log.map((e) => e.event_type)).toEqual(['email_added']);
  });

  it('deletes a person without tickets, with its identities, and keeps its history', async () => {
    const person = await makePerson(t, tokenA);
    await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/identities`, {
      kind: 'slack',
      externalId: 'U-DEL',
    });
    const res = await t.call(tokenA, 'DELETE', `/api/v1/people/${person.id}`);
    expect(res.status).toBe(204);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${person.id}`)).status).toBe(404);
    expect(
      (await t.db.admin.query("SELECT 1 FROM person_identities WHERE external_id = 'U-DEL'")).rowCount,
    ).toBe(0);
    const log = await events(person.id);
    expect(log.map((e) => e.event_type)).toContain('identity_removed');
    expect(log.at(-1)).toMatchObject({ event_type: 'profile_changed', after: null });
  });

  it('refuses to delete a person who has tickets (409; merge instead)', async () => {
    const ticket = await makeTicket(t, tokenA);
    const res = await t.call(tokenA, 'DELETE', `/api/v1/people/${ticket.requesterId}`);
    expect(res.status).toBe(409);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${ticket.requesterId}`)).status).toBe(200);
  });
});

describe('email addresses', () => {
  it('adds an alias and a new primary, removes one, each with exactly one event', async () => {
    const person = await makePerson(t, tokenA, { email: 'main@example.com' });
    const added = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/emails`, {
        address: 'Alias+Tag@Example.com',
      });
      expect(res.status).toBe(201);
      expect(res.body.emails).toContainEqual({ address: 'Alias+Tag@Example.com', primary: false });
    });
    expect(added).toEqual([
      expect.objectContaining({
        event_type: 'email_added',
        after: { address: 'Alias+Tag@Example.com', primary: false },
      }),
    ]);
    // +tag is significant: a different address.
    const other = await t.call(
      tokenA,
      'GET',
      `/api/v1/people/resolve?email=${encodeURIComponent('alias@example.com')}`,
    );
    expect(other.status).toBe(404);
    const resolved = await t.call(
      tokenA,
      'GET',
      `/api/v1/people/resolve?email=${encodeURIComponent(' alias+TAG@example.COM')}`,
    );
    expect(resolved.body.id).toBe(person.id);

    const primary = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/emails`, {
      address: 'new-main@example.com',
      primary: true,
    });
    expect(primary.body.email).toBe('new-main@example.com');
    expect(primary.body.emails.filter((e: any) => e.primary)).toHaveLength(1);

    const removed = await newEvents(person.id, async () => {
      const res = await t.call(
        tokenA,
        'DELETE',
        `/api/v1/people/${person.id}/emails/${encodeURIComponent('NEW-MAIN@example.com')}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.email).toBe('main@example.com'); // the oldest remaining address becomes primary
    });
    expect(removed).toEqual([expect.objectContaining({ event_type: 'email_removed' })]);
    expect(
      (await t.call(tokenA, 'DELETE', `/api/v1/people/${person.id}/emails/nobody%40example.com`)).status,
    ).toBe(404);
  });

  it('changes nothing when the person already has the address', async () => {
    const person = await makePerson(t, tokenA, { email: 'same@example.com' });
    const log = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/emails`, {
        address: 'SAME@example.com',
      });
      expect(res.status).toBe(201);
      expect(res.body.emails).toEqual([{ address: 'same@example.com', primary: true }]);
    });
    expect(log).toEqual([]);
  });

  it('answers 409 with the conflicting field for an address of another person', async () => {
    const a = await makePerson(t, tokenA, { email: 'mine@example.com' });
    const b = await makePerson(t, tokenA);
    const log = await newEvents(b.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/people/${b.id}/emails`, {
        address: 'MINE@example.com',
      });
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({ code: 'conflict', field: 'email' });
    });
    expect(log).toEqual([]);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${a.id}`)).body.email).toBe('mine@example.com');
  });
});

describe('external identities and resolution', () => {
  it('links, resolves and unlinks identities, one event each', async () => {
    const person = await makePerson(t, tokenA, { email: 'gina@example.com' });
    const added = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/identities`, {
        kind: 'github',
        externalId: 'gina-dev',
      });
      expect(res.status).toBe(201);
      expect(res.body.identities).toEqual([{ kind: 'github', externalId: 'gina-dev' }]);
    });
    expect(added).toEqual([
      expect.objectContaining({
        event_type: 'identity_added',
        after: { kind: 'github', externalId: 'gina-dev' },
      }),
    ]);
    const resolved = await t.call(tokenA, 'GET', '/api/v1/people/resolve?kind=github&externalId=gina-dev');
    expect(resolved.body.id).toBe(person.id);
    const removed = await newEvents(person.id, async () => {
      expect(
        (await t.call(tokenA, 'DELETE', `/api/v1/people/${person.id}/identities/github/gina-dev`)).status,
      ).toBe(200);
    });
    expect(removed).toEqual([expect.objectContaining({ event_type: 'identity_removed' })]);
    const gone = await t.call(tokenA, 'GET', '/api/v1/people/resolve?kind=github&externalId=gina-dev');
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('not_found');
  });

  it('answers 409 identity_taken when another person has the identity', async () => {
    const a = await makePerson(t, tokenA);
    const b = await makePerson(t, tokenA);
    await t.call(tokenA, 'POST', `/api/v1/people/${a.id}/identities`, { kind: 'slack', externalId: 'U123' });
    const res = await t.call(tokenA, 'POST', `/api/v1/people/${b.id}/identities`, {
      kind: 'slack',
      externalId: 'U123',
    });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('identity_taken');
    const again = await t.call(tokenA, 'POST', `/api/v1/people/${a.id}/identities`, {
      kind: 'slack',
      externalId: 'U123',
    });
    expect(again.status).toBe(201); // idempotent for the owner
  });

  it.each([
    ['an upper-case kind', { kind: 'Slack', externalId: 'x' }],
    ['a one-letter kind', { kind: 's', externalId: 'x' }],
    ['an empty external id', { kind: 'slack', externalId: '' }],
  ])('refuses %s', async (_name, body) => {
    const person = await makePerson(t, tokenA);
    expect((await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/identities`, body)).status).toBe(400);
  });

  it('prefers the external identity to the email, never matches names, and reports suspension', async () => {
    const byEmail = await makePerson(t, tokenA, { email: 'hank@example.com', displayName: 'Hank' });
    const byIdentity = await makePerson(t, tokenA, { displayName: 'Hank' });
    await t.call(tokenA, 'POST', `/api/v1/people/${byIdentity.id}/identities`, {
      kind: 'entra',
      externalId: 'oid-hank',
    });
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      const { resolvePerson } = await import('./identities.ts');
      expect((await resolvePerson(tx, { kind: 'entra', externalId: 'oid-hank' }))?.id).toBe(byIdentity.id);
      expect((await resolvePerson(tx, { email: 'HANK@example.com' }))?.id).toBe(byEmail.id);
      expect(await resolvePerson(tx, { kind: 'entra', externalId: 'Hank' })).toBeUndefined();
    });
    await t.call(tokenA, 'PATCH', `/api/v1/people/${byEmail.id}`, { status: 'suspended' });
    const suspended = await t.call(tokenA, 'GET', '/api/v1/people/resolve?email=hank%40example.com');
    expect(suspended.body).toMatchObject({ id: byEmail.id, status: 'suspended' });
  });

  it('validates resolve queries', async () => {
    expect((await t.call(tokenA, 'GET', '/api/v1/people/resolve')).status).toBe(400);
    expect((await t.call(tokenA, 'GET', '/api/v1/people/resolve?kind=slack')).status).toBe(400);
    expect(
      (await t.call(tokenA, 'GET', '/api/v1/people/resolve?kind=slack&externalId=U1&email=a%40b.co')).status,
    ).toBe(400);
  });

  it('auto-links a verified email as auto_merge by system:<channel>, and leaves unknown identities unlinked', async () => {
    const person = await makePerson(t, tokenA, { email: 'ivy@example.com' });
    const log = await newEvents(person.id, () =>
      withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
        const linked = await resolveOrAutoLink(tx, {
          kind: 'teams',
          externalId: '29:ivy',
          verifiedEmail: 'IVY@example.com',
          channel: 'teams',
        });
        expect(linked?.identities).toEqual([{ kind: 'teams', externalId: '29:ivy' }]);
        const stranger = await resolveOrAutoLink(tx, {
          kind: 'teams',
          externalId: '29:nobody',
          verifiedEmail: 'nobody@example.com',
          channel: 'teams',
        });
        expect(stranger).toBeUndefined();
      }),
    );
    expect(log).toEqual([
      expect.objectContaining({
        event_type: 'auto_merge',
        actor: 'system:teams',
        after: { kind: 'teams', externalId: '29:ivy' },
      }),
    ]);
  });
});

describe('merge', () => {
  it('moves emails, identities, tokens, tickets and messages to the target and removes the source', async () => {
    const target = await makePerson(t, tokenA, { kind: 'agent', email: 'jo@example.com' });
    const source = await makePerson(t, tokenA, { kind: 'agent', email: 'jo.old@example.com' });
    await t.call(tokenA, 'POST', `/api/v1/people/${source.id}/identities`, {
      kind: 'slack',
      externalId: 'U-JO',
    });
    const sourceToken = (
      await t.call(tokenA, 'POST', `/api/v1/people/${source.id}/tokens`, { label: 'cli', role: 'agent' })
    ).body.token;
    const asRequester = await makeTicket(t, tokenA, { requester: { personId: source.id } });
    const asAssignee = await makeTicket(t, tokenA, { assigneeId: source.id });
    await t.call(sourceToken, 'POST', `/api/v1/tickets/${asAssignee.id}/messages`, {
      text: 'on it',
      visibility: 'public',
    });

    const res = await t.call(tokenA, 'POST', `/api/v1/people/${target.id}/merge`, { sourceId: source.id });
    expect(res.status).toBe(200);
    expect(res.body.email).toBe('jo@example.com');
    expect(res.body.emails).toContainEqual({ address: 'jo.old@example.com', primary: false });
    expect(res.body.identities).toEqual([{ kind: 'slack', externalId: 'U-JO' }]);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${asRequester.id}`)).body.requesterId).toBe(
      target.id,
    );
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${asAssignee.id}`)).body.assigneeId).toBe(target.id);
    expect((await t.call(sourceToken, 'GET', '/api/v1/me')).body.person.id).toBe(target.id);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${source.id}`)).status).toBe(404);

    for (const [table, column] of [
      ['person_emails', 'person_id'],
      ['person_identities', 'person_id'],
      ['api_tokens', 'person_id'],
      ['tickets', 'requester_id'],
      ['tickets', 'assignee_id'],
      ['ticket_messages', 'author_id'],
      ['ticket_status_history', 'changed_by'],
    ]) {
      const { rowCount } = await t.db.admin.query(`SELECT 1 FROM ${table} WHERE ${column} = $1`, [source.id]);
      expect(rowCount, `${table}.${column} still points at the source`).toBe(0);
    }
    const log = await events(target.id);
    expect(log.at(-1)).toMatchObject({
      event_type: 'manual_merge',
      after: expect.objectContaining({ sourceId: source.id }),
    });
  });

  it('refuses a merge into itself, from a missing person and across tenants', async () => {
    const person = await makePerson(t, tokenA);
    const self = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/merge`, { sourceId: person.id });
    expect(self.status).toBe(400);
    const missing = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/merge`, {
      sourceId: '01a20430-e963-7a16-98d1-c69cf56067c7',
    });
    expect(missing.status).toBe(404);
    const other = await makePerson(t, tokenB);
    const cross = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/merge`, { sourceId: other.id });
    expect(cross.status).toBe(404);
    const crossB = await t.call(tokenB, 'POST', `/api/v1/people/${other.id}/merge`, { sourceId: person.id });
    expect(crossB.status).toBe(404);
    expect((await t.call(tokenB, 'GET', `/api/v1/people/${other.id}`)).status).toBe(200);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${person.id}`)).status).toBe(200);
  });
});

describe('person tokens', () => {
  it("mints (plaintext once), lists and revokes a person's tokens with events", async () => {
    const person = await makePerson(t, tokenA, { kind: 'agent' });
    let minted: any;
    const mintLog = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/tokens`, {
        label: 'laptop',
        role: 'agent',
      });
      expect(res.status).toBe(201);
      expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'id', 'label', 'preview', 'role', 'token']);
      minted = res.body;
    });
    expect(mintLog).toEqual([expect.objectContaining({ event_type: 'token_minted' })]);
    expect(JSON.stringify(mintLog)).not.toContain(minted.token);
    const list = await t.call(tokenA, 'GET', `/api/v1/people/${person.id}/tokens`);
    expect(list.body.items.map((i: any) => i.id)).toEqual([minted.id]);
    const revokeLog = await newEvents(person.id, async () => {
      expect((await t.call(tokenA, 'DELETE', `/api/v1/people/${person.id}/tokens/${minted.id}`)).status).toBe(
        200,
      );
      expect((await t.call(tokenA, 'DELETE', `/api/v1/people/${person.id}/tokens/${minted.id}`)).status).toBe(
        200,
      );
    });
    expect(revokeLog.map((e) => e.event_type)).toEqual(['token_revoked']);
    expect((await t.call(minted.token, 'GET', '/api/v1/me')).status).toBe(401);
  });

  it('never lets a token grant more than its role', async () => {
    const agentPerson = await makePerson(t, tokenA, { kind: 'agent' });
    const agentToken = (
      await t.call(tokenA, 'POST', `/api/v1/people/${agentPerson.id}/tokens`, { label: 'x', role: 'agent' })
    ).body.token;
    expect(
      (
        await t.call(agentToken, 'POST', `/api/v1/people/${agentPerson.id}/tokens`, {
          label: 'y',
          role: 'admin',
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await t.call(agentToken, 'POST', `/api/v1/people/${agentPerson.id}/tokens`, {
          label: 'y',
          role: 'viewer',
        })
      ).status,
    ).toBe(201);
    const other = await makePerson(t, tokenA, { kind: 'agent' });
    expect(
      (await t.call(agentToken, 'POST', `/api/v1/people/${other.id}/tokens`, { label: 'z', role: 'viewer' }))
        .status,
    ).toBe(403);
    expect((await t.call(agentToken, 'GET', `/api/v1/people/${other.id}/tokens`)).status).toBe(403);
  });

  it('keeps tenants apart', async () => {
    const person = await makePerson(t, tokenA, { kind: 'agent' });
    const minted = (
      await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/tokens`, { label: 'a', role: 'viewer' })
    ).body;
    expect((await t.call(tokenB, 'GET', `/api/v1/people/${person.id}/tokens`)).status).toBe(404);
    expect(
      (await t.call(tokenB, 'POST', `/api/v1/people/${person.id}/tokens`, { label: 'b', role: 'viewer' }))
        .status,
    ).toBe(404);
    expect((await t.call(tokenB, 'DELETE', `/api/v1/people/${person.id}/tokens/${minted.id}`)).status).toBe(
      404,
    );
    expect((await t.call(minted.token, 'GET', '/api/v1/me')).status).toBe(200);
    expect((await t.call(tokenB, 'GET', `/api/v1/people/${person.id}/events`)).status).toBe(404);
  });
});

describe('identity events', () => {
  it('lists newest first, with cursor pagination, and cannot be changed by the application role', async () => {
    const person = await makePerson(t, tokenA, { email: 'kim@example.com' });
    await t.call(tokenA, 'POST', `/api/v1/people/${person.id}/identities`, {
      kind: 'github',
      externalId: 'kim',
    });
    const page = await t.call(tokenA, 'GET', `/api/v1/people/${person.id}/events?limit=2`);
    expect(page.body.items.map((e: any) => e.type)).toEqual(['identity_added', 'email_added']);
    const next = await t.call(
      tokenA,
      'GET',
      `/api/v1/people/${person.id}/events?cursor=${page.body.nextCursor}`,
    );
    expect(next.body.items.map((e: any) => e.type)).toEqual(['profile_changed']);
    await expect(
      withTenant(t.db.pool, t.a.tenant.id, (tx) =>
        tx.query('UPDATE identity_events SET actor = $1', ['system:evil']),
      ),
    ).rejects.toThrow();
    await expect(
      withTenant(t.db.pool, t.a.tenant.id, (tx) => tx.query('DELETE FROM identity_events')),
    ).rejects.toThrow();
  });
});

describe('unmapped identities', () => {
  it('counts concurrent sightings from many connections into one row', async () => {
    // Eight pools as eight processes would have, made as the application makes its own.
    const pools = Array.from({ length: 8 }, () => createPool({ connectionString: t.db.url, max: 2 }));
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          recordUnmapped(pools[i % pools.length]!, t.a.tenant.id, {
            kind: 'slack',
            externalId: 'U-CROWD',
            eventType: 'message',
            context: `hello ${'x'.repeat(200)}`,
          }),
        ),
      );
      expect(results.every(Boolean)).toBe(true);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const { rows } = await t.db.admin.query(
      "SELECT sightings, length(sample_context) AS len FROM unmapped_identities WHERE external_id = 'U-CROWD'",
    );
    expect(rows).toEqual([{ sightings: 200, len: 100 }]);
  });

  it('never fails its caller', async () => {
    expect(await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'NOT VALID', externalId: 'x' })).toBe(
      false,
    );
    expect(await recordUnmapped(t.db.pool, 'not-a-tenant-uuid', { kind: 'slack', externalId: 'x' })).toBe(
      false,
    );
  });

  it('lists with name suggestions, links (identity_added, row removed) and dismisses', async () => {
    const person = await makePerson(t, tokenA, { displayName: 'Lena Triage' });
    await recordUnmapped(t.db.pool, t.a.tenant.id, {
      kind: 'teams',
      externalId: '29:lena',
      eventType: 'message',
      displayName: 'lena triage',
    });
    await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'slack', externalId: 'U-SPAM' });
    const list = await t.call(tokenA, 'GET', '/api/v1/unmapped-identities?kind=teams');
    const row = list.body.items.find((i: any) => i.externalId === '29:lena');
    expect(row).toMatchObject({
      kind: 'teams',
      sightings: 1,
      sampleEventType: 'message',
      suggestions: [{ personId: person.id, displayName: 'Lena Triage' }],
    });
    // Suggestion only: nothing was linked.
    expect(
      (await t.call(tokenA, 'GET', '/api/v1/people/resolve?kind=teams&externalId=29%3Alena')).status,
    ).toBe(404);
    expect((await t.call(tokenB, 'GET', '/api/v1/unmapped-identities')).body.items).toEqual([]);
    expect(
      (await t.call(tokenB, 'POST', `/api/v1/unmapped-identities/${row.id}/link`, { personId: person.id }))
        .status,
    ).toBe(404);

    const log = await newEvents(person.id, async () => {
      const res = await t.call(tokenA, 'POST', `/api/v1/unmapped-identities/${row.id}/link`, {
        personId: person.id,
      });
      expect(res.status).toBe(200);
      expect(res.body.identities).toEqual([{ kind: 'teams', externalId: '29:lena' }]);
    });
    expect(log).toEqual([expect.objectContaining({ event_type: 'identity_added' })]);
    expect(
      (await t.call(tokenA, 'GET', '/api/v1/unmapped-identities?kind=teams')).body.items.map(
        (i: any) => i.id,
      ),
    ).not.toContain(row.id);
    // A known identity is not recorded as unmapped again.
    await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'teams', externalId: '29:lena' });
    expect(
      (await t.db.admin.query("SELECT 1 FROM unmapped_identities WHERE external_id = '29:lena'")).rowCount,
    ).toBe(0);

    const spam = (await t.call(tokenA, 'GET', '/api/v1/unmapped-identities?kind=slack')).body.items.find(
      (i: any) => i.externalId === 'U-SPAM',
    );
    expect((await t.call(tokenA, 'DELETE', `/api/v1/unmapped-identities/${spam.id}`)).status).toBe(204);
    expect((await t.call(tokenA, 'DELETE', `/api/v1/unmapped-identities/${spam.id}`)).status).toBe(404);
  });

  it('expires rows silent for 30 days', async () => {
    await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'github', externalId: 'old-ghost' });
    await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'github', externalId: 'recent' });
    await t.db.admin.query(
      "UPDATE unmapped_identities SET last_seen_at = now() - interval '31 days' WHERE external_id = 'old-ghost'",
    );
    const listed = await t.call(tokenA, 'GET', '/api/v1/unmapped-identities?kind=github');
    expect(listed.body.items.map((i: any) => i.externalId)).toEqual(['recent']);
    expect(await expireUnmapped(t.db.pool)).toBe(1);
    expect(
      (await t.db.admin.query("SELECT 1 FROM unmapped_identities WHERE external_id = 'old-ghost'")).rowCount,
    ).toBe(0);
  });
});
