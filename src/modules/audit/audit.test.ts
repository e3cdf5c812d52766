import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { ROUTES } from '../../app.ts';
import { type App, buildServer, type RouteModule } from '../../platform/http/server.ts';
import { createTenant, deleteTenant } from '../tenants/service.ts';
import { tokenAuthenticator } from '../tokens/service.ts';
import { payloadHash } from './audit.ts';
import { actionName, auditRecordingsSettled, outcomeOf } from './request-audit.ts';
import { auditRoutes } from './routes.ts';

let t: TestApp;
const adminA = () => t.a.adminToken.token;
const adminB = () => t.b.adminToken.token;
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

beforeAll(async () => {
  t = await useTestApp();
});

/** The tenant's events as the API lists them, all pages, once every recording has ended. */
async function events(token: string, query = ''): Promise<any[]> {
  await auditRecordingsSettled();
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const sep: string = query === '' ? '?' : `?${query}&`;
    const res = await t.call(
      token,
      'GET',
      `/api/v1/audit-events${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

/** The one event of a request with this action and target (fails unless there is exactly one). */
async function onlyEvent(action: string, targetId: string): Promise<any> {
  const found = await events(adminA(), `action=${action}&targetId=${encodeURIComponent(targetId)}`);
  expect(found, `${action} ${targetId}`).toHaveLength(1);
  return found[0];
}

async function viewerToken(): Promise<{ token: string; personId: string }> {
  const person = await makePerson(t, adminA());
  const res = await t.call(adminA(), 'POST', '/api/v1/tokens', { role: 'viewer', personId: person.id });
  expect(res.status).toBe(201);
  return { token: res.body.token, personId: person.id };
}

describe('action names', () => {
  it('follow the documented rule', () => {
    expect(actionName('PATCH', '/tickets/:id')).toBe('tickets.update');
    expect(actionName('PUT', '/sla-policies/:id')).toBe('sla_policies.update');
    expect(actionName('POST', '/tickets/:id/messages')).toBe('tickets.messages.create');
    expect(actionName('DELETE', '/people/:id')).toBe('people.delete');
    expect(actionName('DELETE', '/people/:id/identities/:kind/:externalId')).toBe('people.identities.delete');
    expect(actionName('POST', '/people/:id/merge')).toBe('people.merge');
    expect(actionName('POST', '/tokens')).toBe('tokens.create');
    expect(actionName('POST', '/queue/dlq/redrive')).toBe('queue.dlq.redrive');
    expect(actionName('POST', '/unmapped-identities/:id/link')).toBe('unmapped_identities.link');
    expect(actionName('POST', '/webhook-endpoints/:id/rotate-secret')).toBe(
      'webhook_endpoints.rotate_secret',
    );
    expect(actionName('POST', '/webhook-endpoints/:id/replay')).toBe('webhook_endpoints.replay');
    expect(actionName('POST', '/webhook-endpoints/:id/deliveries/:deliveryId/replay')).toBe(
      'webhook_endpoints.deliveries.replay',
    );
    expect(actionName('POST', '/canned-replies/:id/render')).toBe('canned_replies.render');
  });

  it('maps statuses to outcomes', () => {
    expect([200, 201, 204, 302].map(outcomeOf)).toEqual(['success', 'success', 'success', 'success']);
    expect([401, 403].map(outcomeOf)).toEqual(['unauthorised', 'unauthorised']);
    expect([429, 503].map(outcomeOf)).toEqual(['unavailable', 'unavailable']);
    expect([400, 404, 409, 413, 500].map(outcomeOf)).toEqual(Array(5).fill('failed'));
  });
});

describe('payloadHash', () => {
  it('is the SHA-256 of the RFC 8785 canonical JSON (the examples of RFC 8785 §3.2.2 and §3.2.3)', () => {
    const numbersAndStrings = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        ' "literals": [null, true, false]}',
    );
    expect(payloadHash(numbersAndStrings)).toBe(
      sha256(
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
          '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
      ),
    );
    const sorting = JSON.parse(
      '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",' +
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control\\u007f",' +
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}',
    );
    expect(payloadHash(sorting)).toBe(
      sha256(
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control\u007f",' +
          '"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face",' +
          '"\ufb33":"Hebrew Letter Dalet With Dagesh"}',
      ),
    );
    expect(payloadHash(undefined)).toBe(sha256('null'));
  });
});

describe('recording API writes', () => {
  it('records a ticket update: action, actor, target, outcome, request id and the hash, never the payload', async () => {
    const ticket = await makeTicket(t, adminA());
    // Keys out of order, text beyond ASCII: the hash is of the canonical form.
    const raw = '{"subject":"Caf\\u00e9 \u2615 \ud834\udd1e printer","priority":"high"}';
    const res = await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, raw, {
      'content-type': 'application/json',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const event = await onlyEvent('tickets.update', ticket.id);
    expect(event).toMatchObject({
      actorId: t.a.adminPersonId,
      actorVia: 'token',
      action: 'tickets.update',
      targetType: 'tickets',
      targetId: ticket.id,
      outcome: 'success',
      errorCode: null,
    });
    expect(event.requestId).toMatch(/\S/);
    expect(event.payloadHash).toBe(sha256('{"priority":"high","subject":"Café ☕ 𝄞 printer"}'));
    const { rows } = await t.db.admin.query(
      'SELECT row_to_json(e)::text AS row FROM audit_events e WHERE id = $1',
      [event.id],
    );
    expect(rows[0].row).toContain(event.payloadHash);
    expect(rows[0].row).not.toMatch(/printer|Caf|high/);
  });

  it('records a ticket created through the API with the new ticket as its target', async () => {
    const ticket = await makeTicket(t, adminA());
    expect(await onlyEvent('tickets.create', ticket.id)).toMatchObject({
      targetType: 'tickets',
      outcome: 'success',
    });
  });

  it('records a people merge on the target person', async () => {
    const target = await makePerson(t, adminA());
    const source = await makePerson(t, adminA());
    const res = await t.call(adminA(), 'POST', `/api/v1/people/${target.id}/merge`, { sourceId: source.id });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const event = await onlyEvent('people.merge', target.id);
    expect(event).toMatchObject({ targetType: 'people', outcome: 'success', actorId: t.a.adminPersonId });
    expect(event.payloadHash).toBe(sha256(`{"sourceId":"${source.id}"}`));
  });

  it('records a token mint with the new token as target, and never the token', async () => {
    const res = await t.call(adminA(), 'POST', '/api/v1/tokens', { role: 'agent', label: 'audited bot' });
    expect(res.status).toBe(201);
    const event = await onlyEvent('tokens.create', res.body.id);
    expect(event).toMatchObject({ targetType: 'tokens', outcome: 'success' });
    expect(event.payloadHash).toBe(sha256('{"label":"audited bot","role":"agent"}'));
    const { rows } = await t.db.admin.query('SELECT row_to_json(e)::text AS row FROM audit_events e');
    expect(JSON.stringify(rows)).not.toContain(res.body.token);
  });

  it('records mailbox changes, with the credentials redacted before hashing', async () => {
    const created = await t.call(adminA(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'audited@support.example',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id;
    expect(await onlyEvent('mailboxes.create', id)).toMatchObject({ outcome: 'success' });
    const changed = await t.call(adminA(), 'PATCH', `/api/v1/mailboxes/${id}`, {
      displayName: 'Audited',
      credentials: { smtpPassword: 'hunter2-audit' },
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    const event = await onlyEvent('mailboxes.update', id);
    expect(event).toMatchObject({ targetType: 'mailboxes', outcome: 'success' });
    expect(event.payloadHash).toBe(
      sha256('{"credentials":{"smtpPassword":"[redacted]"},"displayName":"Audited"}'),
    );
    const { rows } = await t.db.admin.query('SELECT row_to_json(e)::text AS row FROM audit_events e');
    expect(JSON.stringify(rows)).not.toContain('hunter2');
    const removed = await t.call(adminA(), 'DELETE', `/api/v1/mailboxes/${id}`);
    expect(removed.status).toBeLessThan(300);
    expect(await onlyEvent('mailboxes.delete', id)).toMatchObject({ outcome: 'success' });
  });

  it('records a write a viewer may not make as unauthorised, with its actor', async () => {
    const viewer = await viewerToken();
    const ticket = await makeTicket(t, adminA());
    const res = await t.call(viewer.token, 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority: 'low' });
    expect(res.status).toBe(403);
    const event = await onlyEvent('tickets.update', ticket.id);
    expect(event).toMatchObject({
      actorId: viewer.personId,
      outcome: 'unauthorised',
      errorCode: 'forbidden',
      targetId: ticket.id,
    });
    // Refused before its body was read: nothing of it to hash.
    expect(event.payloadHash).toBe(sha256('null'));
  });

  it('records a refused body as failed with validation_failed and the hash of what was sent', async () => {
    const ticket = await makeTicket(t, adminA());
    const raw =
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
      ' "literals": [null, true, false]}';
    const res = await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, raw, {
      'content-type': 'application/json',
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    const event = await onlyEvent('tickets.update', ticket.id);
    expect(event).toMatchObject({ outcome: 'failed', errorCode: 'validation_failed' });
    expect(event.payloadHash).toBe(
      sha256('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'),
    );
  });

  it('records a write refused for an unpaired surrogate, hashing a marker for the payload', async () => {
    const ticket = await makeTicket(t, adminA());
    const res = await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, '{"subject":"\\ud800"}', {
      'content-type': 'application/json',
    });
    expect(res.status).toBe(400);
    const event = await onlyEvent('tickets.update', ticket.id);
    expect(event).toMatchObject({ outcome: 'failed', errorCode: 'validation_failed' });
    expect(event.payloadHash).toBe(sha256('{"notCanonicalJson":true}'));
  });

  it('records a missing target as failed with not_found', async () => {
    const missing = '01890000-0000-7000-8000-000000000000';
    const res = await t.call(adminA(), 'DELETE', `/api/v1/people/${missing}`);
    expect(res.status).toBe(404);
    expect(await onlyEvent('people.delete', missing)).toMatchObject({
      outcome: 'failed',
      errorCode: 'not_found',
    });
  });

  it('hashes a multipart message as its fields and its files by name and size, never their content', async () => {
    const ticket = await makeTicket(t, adminA());
    const boundary = 'audit-boundary';
    const body = Buffer.from(
      [
        `--${boundary}`,
        'Content-Disposition: form-data; name="visibility"',
        '',
        'internal',
        `--${boundary}`,
        'Content-Disposition: form-data; name="text"',
        '',
        'See the log.',
        `--${boundary}`,
        'Content-Disposition: form-data; name="attachments"; filename="log.txt"',
        'Content-Type: text/plain',
        '',
        'SECRET-FILE-BYTES',
        `--${boundary}--`,
        '',
      ].join('\r\n'),
    );
    const res = await t.call(adminA(), 'POST', `/api/v1/tickets/${ticket.id}/messages`, body, {
      'content-type': `multipart/form-data; boundary=${boundary}`,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const event = await onlyEvent('tickets.messages.create', ticket.id);
    expect(event.outcome).toBe('success');
    expect(event.payloadHash).toBe(
      sha256(
        '{"fields":{"text":"See the log.","visibility":"internal"},' +
          '"files":[{"field":"attachments","filename":"log.txt","size":17}]}',
      ),
    );
  });

  it('hashes a raw message as its type, size and SHA-256', async () => {
    await t.queue.boss.createQueue('inbound.process');
    const mailbox = await t.call(adminA(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'raw-audit@support.example',
    });
    const raw = 'From: a@example.com\r\nTo: raw-audit@support.example\r\nSubject: hi\r\n\r\nhello\r\n';
    const res = await t.call(adminA(), 'POST', `/api/v1/mailboxes/${mailbox.body.id}/messages`, raw, {
      'content-type': 'message/rfc822',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const event = await onlyEvent('mailboxes.messages.create', mailbox.body.id);
    expect(event.payloadHash).toBe(
      sha256(`{"bytes":${raw.length},"contentType":"message/rfc822","sha256":"${sha256(raw)}"}`),
    );
  });

  it('does not record reads', async () => {
    const ticket = await makeTicket(t, adminA());
    const before = await events(adminA());
    for (const url of [
      '/api/v1/tickets',
      `/api/v1/tickets/${ticket.id}`,
      '/api/v1/audit-events',
      '/api/v1/me',
    ])
      expect((await t.call(adminA(), 'GET', url)).status).toBe(200);
    expect(await events(adminA())).toEqual(before);
  });

  it('does not record a request without a valid token (no tenant to record it in)', async () => {
    const { rows: before } = await t.db.admin.query('SELECT count(*)::int AS n FROM audit_events');
    const res = await t.call('rd_not_a_real_token_at_all_000000000000000000', 'POST', '/api/v1/tokens', {
      role: 'agent',
    });
    expect(res.status).toBe(401);
    await auditRecordingsSettled();
    const { rows: after } = await t.db.admin.query('SELECT count(*)::int AS n FROM audit_events');
    expect(after[0].n).toBe(before[0].n);
  });
});

/** A server of its own over the test database, with these routes and a logger of its own. */
async function ownServer(routes: RouteModule[], logger = pino({ level: 'silent' })): Promise<App> {
  return buildServer(
    {
      config: { bodyLimit: 1024 * 1024, docs: false },
      pool: t.db.pool,
      logger,
      queue: t.queue,
      secretKey: t.secretKey,
      clock: t.clock,
      authenticate: tokenAuthenticator({ pool: t.db.pool, clock: t.clock }),
    },
    routes,
  );
}

describe('a route of its own', () => {
  it('may name its writes, or keep a POST that changes nothing out of the trail', async () => {
    const thing = '01890000-0000-7000-8000-00000000abcd';
    const app = await ownServer([
      auditRoutes,
      (api) => {
        api.post('/things/:id/frobnicate', { config: { audit: 'things.frob' } }, async () => ({}));
        api.post('/things/:id/preview', { config: { audit: false } }, async () => ({}));
      },
    ]);
    try {
      for (const url of [`/api/v1/things/${thing}/frobnicate`, `/api/v1/things/${thing}/preview`]) {
        const res = await app.inject({
          method: 'POST',
          url,
          headers: { authorization: `Bearer ${adminA()}` },
        });
        expect(res.statusCode, res.body).toBe(200);
      }
      expect((await events(adminA(), `targetId=${thing}`)).map((e) => [e.action, e.targetType])).toEqual([
        ['things.frob', 'things'],
      ]);
    } finally {
      await app.close();
    }
  });
});

describe('recording', () => {
  it('happens after the answer: a write is answered while its event cannot yet be written', async () => {
    const ticket = await makeTicket(t, adminA());
    await auditRecordingsSettled();
    const holder = await t.db.admin.connect();
    await t.db.admin.query(`
      CREATE FUNCTION hold_audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$;
      CREATE TRIGGER hold_audit BEFORE INSERT ON audit_events FOR EACH ROW
        WHEN (NEW.target_id = '${ticket.id}') EXECUTE FUNCTION hold_audit();`);
    try {
      await holder.query('SELECT pg_advisory_lock(4242)');
      const res = await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority: 'high' });
      expect(res.status).toBe(200);
      // Answered, and its event is still waiting for the lock (had the answer waited for the event,
      // the request would never have come back).
      await vi.waitFor(async () => {
        const waiting = await t.db.admin.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted",
        );
        expect(waiting.rows[0].n).toBe(1);
      });
      expect(
        await t.db.admin.query('SELECT 1 FROM audit_events WHERE target_id = $1 AND action = $2', [
          ticket.id,
          'tickets.update',
        ]),
      ).toMatchObject({ rowCount: 0 });
      await holder.query('SELECT pg_advisory_unlock(4242)');
      expect(await onlyEvent('tickets.update', ticket.id)).toMatchObject({ outcome: 'success' });
    } finally {
      await holder.query('SELECT pg_advisory_unlock_all()');
      holder.release();
      await t.db.admin.query('DROP TRIGGER hold_audit ON audit_events; DROP FUNCTION hold_audit()');
    }
  });
});

describe('a failure to record', () => {
  it('is logged and fails nothing', async () => {
    const lines: any[] = [];
    const logger = pino(
      { level: 'error' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    );
    const app = await ownServer(ROUTES, logger);
    const ticket = await makeTicket(t, adminA());
    await t.db.admin.query(`
      CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'audit store refuses'; END $$;
      CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW
        WHEN (NEW.target_id = '${ticket.id}') EXECUTE FUNCTION refuse_audit();`);
    try {
      const res = await app.inject({
        method: 'PATCH',
        url: `/api/v1/tickets/${ticket.id}`,
        headers: { authorization: `Bearer ${adminA()}` },
        payload: { priority: 'urgent' },
      });
      expect(res.statusCode, res.body).toBe(200);
      await auditRecordingsSettled();
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: 'audit event not recorded', action: 'tickets.update' }),
      );
    } finally {
      await t.db.admin.query('DROP TRIGGER refuse_audit ON audit_events; DROP FUNCTION refuse_audit()');
      await app.close();
    }
    const after = await t.call(adminA(), 'GET', `/api/v1/tickets/${ticket.id}`);
    expect(after.body.priority).toBe('urgent');
    expect(await events(adminA(), `targetId=${ticket.id}&action=tickets.update`)).toEqual([]);
  });
});

describe('GET /api/v1/audit-events', () => {
  it('filters by action, actor, target, outcome and time, and pages newest first', async () => {
    const viewer = await viewerToken();
    const ticket = await makeTicket(t, adminA());
    for (const priority of ['low', 'normal', 'high', 'urgent'])
      await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority });
    // Recorded after each answer: the last update's event is in before the refused delete's, so
    // that newest first is the order the requests were made in.
    await auditRecordingsSettled();
    await t.call(viewer.token, 'DELETE', `/api/v1/tickets/${ticket.id}`);
    const all = await events(adminA(), `targetId=${ticket.id}`);
    expect(all.map((e) => [e.action, e.outcome])).toEqual([
      ['tickets.delete', 'unauthorised'],
      ['tickets.update', 'success'],
      ['tickets.update', 'success'],
      ['tickets.update', 'success'],
      ['tickets.update', 'success'],
      ['tickets.create', 'success'],
    ]);
    const times = all.map((e) => e.at);
    expect([...times].sort().reverse()).toEqual(times);

    // Pages of two, following the cursor, give the same events once each.
    const paged: any[] = [];
    let cursor: string | null = null;
    do {
      const res: any = await t.call(
        adminA(),
        'GET',
        `/api/v1/audit-events?targetId=${ticket.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      paged.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(paged).toEqual(all);

    expect(await events(adminA(), `targetId=${ticket.id}&outcome=unauthorised`)).toEqual([all[0]]);
    expect(await events(adminA(), `targetId=${ticket.id}&actorId=${viewer.personId}`)).toEqual([all[0]]);
    expect(await events(adminA(), `targetId=${ticket.id}&action=tickets.create`)).toEqual([all[5]]);
    // from inclusive, to exclusive.
    const from = encodeURIComponent(all[4].at);
    const to = encodeURIComponent(all[1].at);
    expect(await events(adminA(), `targetId=${ticket.id}&from=${from}&to=${to}`)).toEqual(all.slice(2, 5));
    expect(await events(adminA(), `targetId=${ticket.id}&from=${to}`)).toEqual(all.slice(0, 2));
  });

  it('refuses a malformed cursor, a limit over 200, from after to and unknown filters', async () => {
    const bad = await t.call(adminA(), 'GET', '/api/v1/audit-events?cursor=not-a-cursor');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid_cursor');
    expect((await t.call(adminA(), 'GET', '/api/v1/audit-events?limit=201')).body.code).toBe(
      'validation_failed',
    );
    const reversed = await t.call(
      adminA(),
      'GET',
      '/api/v1/audit-events?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z',
    );
    expect(reversed.body.code).toBe('validation_failed');
    expect((await t.call(adminA(), 'GET', '/api/v1/audit-events?outcome=maybe')).status).toBe(400);
    expect((await t.call(adminA(), 'GET', '/api/v1/audit-events?payload=x')).status).toBe(400);
  });

  it('defaults to 50 items a page', async () => {
    for (let i = 0; i < 51; i++)
      await t.call(adminA(), 'POST', '/api/v1/tokens', { role: 'viewer', label: `n${i}` });
    await auditRecordingsSettled();
    const res = await t.call(adminA(), 'GET', '/api/v1/audit-events');
    expect(res.body.items).toHaveLength(50);
    expect(res.body.nextCursor).not.toBeNull();
  });

  it('needs audit:read, which only admins have', async () => {
    const viewer = await viewerToken();
    const agent = (await t.call(adminA(), 'POST', '/api/v1/tokens', { role: 'agent' })).body.token;
    for (const token of [viewer.token, agent]) {
      const res = await t.call(token, 'GET', '/api/v1/audit-events');
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
    }
    expect((await t.call(undefined, 'GET', '/api/v1/audit-events')).status).toBe(401);
  });

  it("shows a tenant none of another tenant's events, whatever it filters by", async () => {
    const ticket = await makeTicket(t, adminA());
    await t.call(adminA(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority: 'high' });
    const ofA = await events(adminA(), `targetId=${ticket.id}`);
    expect(ofA.length).toBeGreaterThan(0);
    // Tenant b's own write is recorded in b.
    const own = await t.call(adminB(), 'POST', '/api/v1/tokens', { role: 'viewer' });
    const ofB = await events(adminB());
    expect(ofB.map((e) => e.targetId)).toContain(own.body.id);
    const idsOfA = new Set((await events(adminA())).map((e) => e.id));
    expect(ofB.filter((e) => idsOfA.has(e.id))).toEqual([]);
    expect(ofB.filter((e) => e.actorId === t.a.adminPersonId)).toEqual([]);
    expect(await events(adminB(), `targetId=${ticket.id}`)).toEqual([]);
    expect(await events(adminB(), `actorId=${t.a.adminPersonId}`)).toEqual([]);
    // A's cursor in b's hands pages b's events only.
    const pageA = await t.call(adminA(), 'GET', '/api/v1/audit-events?limit=1');
    const viaCursor = await t.call(adminB(), 'GET', `/api/v1/audit-events?cursor=${pageA.body.nextCursor}`);
    expect(viaCursor.status).toBe(200);
    expect(viaCursor.body.items.filter((e: any) => idsOfA.has(e.id))).toEqual([]);
  });
});

describe('tenant deletion', () => {
  it("removes the tenant's audit events", async () => {
    const c = await createTenant(t.db.pool, { name: 'Tenant C (audit)' });
    const res = await t.call(c.adminToken.token, 'POST', '/api/v1/tokens', { role: 'viewer' });
    expect(res.status).toBe(201);
    await auditRecordingsSettled();
    const count = async (tenantId: string) =>
      (await t.db.admin.query('SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1', [tenantId]))
        .rows[0].n;
    expect(await count(c.tenant.id)).toBe(1);
    const ofA = await count(t.a.tenant.id);
    await deleteTenant(t.db.pool, c.tenant.id);
    expect(await count(c.tenant.id)).toBe(0);
    expect(await count(t.a.tenant.id)).toBe(ofA);
  });
});
