// GET /stream read the way a browser reads it: over a real socket, as server-sent events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { buildServer } from '../../platform/http/server.ts';
import { createLogger } from '../../platform/logging.ts';
import { tokenAuthenticator } from '../tokens/service.ts';
import { streamRoutesWith } from './routes.ts';

let t: TestApp;
let base: string;
const streams: Stream[] = [];

interface Received {
  event: string;
  data: any;
}

/** An open stream: what arrived so far, and a way to wait for what is expected. */
interface Stream {
  status: number;
  headers: Headers;
  events: Received[];
  comments: string[];
  ended: Promise<void>;
  next(match: (e: Received) => boolean, what: string): Promise<Received>;
  close(): void;
}

async function openStream(url: string, token: string): Promise<Stream> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  const events: Received[] = [];
  const comments: string[] = [];
  const waiters: { match: (e: Received) => boolean; resolve: (e: Received) => void }[] = [];
  const offer = (e: Received) => {
    events.push(e);
    for (const w of [...waiters])
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
  };
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') offer({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  const stream: Stream = {
    status: res.status,
    headers: res.headers,
    events,
    comments,
    ended,
    next(match, what) {
      const found = events.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        // A guard against a test hanging, not a timing assertion.
        const timer = setTimeout(() => reject(new Error(`no ${what} on the stream`)), 10_000);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    close: () => controller.abort(),
  };
  streams.push(stream);
  return stream;
}

beforeAll(async () => {
  t = await useTestApp();
  base = await t.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(() => {
  for (const s of streams) s.close();
});

describe('GET /stream', () => {
  it('tells a tenant of its ticket changes, and nothing of another tenant', async () => {
    const a = await openStream(`${base}/api/v1/stream`, t.a.adminToken.token);
    const b = await openStream(`${base}/api/v1/stream`, t.b.adminToken.token);
    expect(a.status).toBe(200);
    expect(a.headers.get('content-type')).toMatch(/^text\/event-stream/);

    const ticketA = await makeTicket(t, t.a.adminToken.token);
    const created = await a.next((e) => e.data.ticketId === ticketA.id, 'creation');
    expect(created).toEqual({
      event: 'ticket',
      data: { ticketId: ticketA.id, number: ticketA.number, change: 'created' },
    });
    await t.call(t.a.adminToken.token, 'POST', `/api/v1/tickets/${ticketA.id}/messages`, {
      text: 'A note',
      visibility: 'internal',
    });
    await a.next((e) => e.data.ticketId === ticketA.id && e.data.change === 'message', 'message');
    await t.call(t.a.adminToken.token, 'PATCH', `/api/v1/tickets/${ticketA.id}`, { priority: 'high' });
    await a.next((e) => e.data.ticketId === ticketA.id && e.data.change === 'updated', 'update');
    await t.call(t.a.adminToken.token, 'DELETE', `/api/v1/tickets/${ticketA.id}`);
    await a.next((e) => e.data.ticketId === ticketA.id && e.data.change === 'deleted', 'deletion');

    // Everything goes through one connection in commit order: once b has heard of its own later
    // ticket, it would have heard of a's before it.
    const ticketB = await makeTicket(t, t.b.adminToken.token);
    await b.next((e) => e.data.ticketId === ticketB.id, "b's own ticket");
    expect(b.events.map((e) => e.data.ticketId)).not.toContain(ticketA.id);
    expect(b.events.every((e) => e.data.ticketId === ticketB.id)).toBe(true);
    expect(a.events.map((e) => e.data.ticketId)).not.toContain(ticketB.id);
  }, 30_000);

  it('tells of presence: who arrives, changes state and leaves, not every heartbeat', async () => {
    const agent = await makePerson(t, t.a.adminToken.token, { displayName: 'Pia Presence' });
    const token = (
      await t.call(t.a.adminToken.token, 'POST', `/api/v1/people/${agent.id}/tokens`, {
        label: 'p',
        role: 'agent',
      })
    ).body.token as string;
    const ticket = await makeTicket(t, t.a.adminToken.token);
    const a = await openStream(`${base}/api/v1/stream`, t.a.adminToken.token);
    const b = await openStream(`${base}/api/v1/stream`, t.b.adminToken.token);
    const url = `/api/v1/tickets/${ticket.id}/presence`;
    const presence = (state: string | undefined) => (e: Received) =>
      e.event === 'presence' &&
      e.data.ticketId === ticket.id &&
      (state === undefined ? e.data.people.length === 0 : e.data.people[0]?.state === state);

    await t.call(token, 'PUT', url, { state: 'viewing' });
    expect((await a.next(presence('viewing'), 'arrival')).data.people).toEqual([
      { id: agent.id, displayName: 'Pia Presence', state: 'viewing' },
    ]);
    await t.call(token, 'PUT', url, { state: 'viewing' });
    await t.call(token, 'PUT', url, { state: 'replying' });
    await a.next(presence('replying'), 'replying');
    await t.call(token, 'DELETE', url);
    await a.next(presence(undefined), 'departure');
    // Three changes, three events: the repeated heartbeat said nothing.
    expect(a.events.filter((e) => e.event === 'presence' && e.data.ticketId === ticket.id)).toHaveLength(3);
    const ticketB = await makeTicket(t, t.b.adminToken.token);
    await b.next((e) => e.data.ticketId === ticketB.id, "b's ticket");
    expect(b.events.some((e) => e.event === 'presence')).toBe(false);
  }, 30_000);

  it('tells of mailbox health changes, in the mailbox tenant only', async () => {
    const mailbox = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'stream@desk-a.test',
    });
    const a = await openStream(`${base}/api/v1/stream`, t.a.adminToken.token);
    const b = await openStream(`${base}/api/v1/stream`, t.b.adminToken.token);
    // What the inbound module records when a mailbox's health changes.
    await t.db.admin.query(
      `INSERT INTO mailbox_health_events (tenant_id, id, mailbox_id, from_status, to_status, reason)
       VALUES ($1, gen_random_uuid(), $2, 'healthy', 'needs_reauth', 'invalid_grant')`,
      [t.a.tenant.id, mailbox.body.id],
    );
    expect(await a.next((e) => e.event === 'mailbox', 'health change')).toEqual({
      event: 'mailbox',
      data: { mailboxId: mailbox.body.id, status: 'needs_reauth', previousStatus: 'healthy' },
    });
    const ticketB = await makeTicket(t, t.b.adminToken.token);
    await b.next((e) => e.data.ticketId === ticketB.id, "b's ticket");
    expect(b.events.some((e) => e.event === 'mailbox')).toBe(false);
  }, 30_000);

  it('says "reload" to the tenants concerned when one statement changes many tickets', async () => {
    for (let i = 0; i < 41; i++) await makeTicket(t, t.a.adminToken.token);
    const a = await openStream(`${base}/api/v1/stream`, t.a.adminToken.token);
    const b = await openStream(`${base}/api/v1/stream`, t.b.adminToken.token);
    await t.db.admin.query('UPDATE tickets SET updated_at = now() WHERE tenant_id = $1', [t.a.tenant.id]);
    expect(await a.next((e) => e.data.change === 'reload', 'reload')).toEqual({
      event: 'ticket',
      data: { ticketId: null, number: null, change: 'reload' },
    });
    const ticketB = await makeTicket(t, t.b.adminToken.token);
    await b.next((e) => e.data.ticketId === ticketB.id, "b's ticket");
    expect(b.events.some((e) => e.data.change === 'reload')).toBe(false);
  }, 60_000);

  it('needs a valid token, like every route of the API', async () => {
    const none = await fetch(`${base}/api/v1/stream`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { code: string }).code).toBe('unauthorized');
    const bad = await fetch(`${base}/api/v1/stream`, { headers: { authorization: 'Bearer rd_nope' } });
    expect(bad.status).toBe(401);
    const viewer = await t.call(t.a.adminToken.token, 'POST', '/api/v1/tokens', {
      label: 'v',
      role: 'viewer',
    });
    const s = await openStream(`${base}/api/v1/stream`, viewer.body.token);
    expect(s.status).toBe(200);
    s.close();
  });

  it('answers HEAD at once with the headers of a stream, and no stream', async () => {
    // The signal is a guard against the test hanging (it did: a HEAD got no answer), not a timing.
    const head = await fetch(`${base}/api/v1/stream`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${t.a.adminToken.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await head.text()).toBe('');
    const none = await fetch(`${base}/api/v1/stream`, {
      method: 'HEAD',
      signal: AbortSignal.timeout(10_000),
    });
    expect(none.status).toBe(401);
  });
});

describe('a server with streams', () => {
  it('sends heartbeats, and closes without waiting for its open streams', async () => {
    const app = await buildServer(
      {
        config: { bodyLimit: 1024 * 1024 },
        pool: t.db.pool,
        logger: createLogger('silent'),
        clock: t.clock,
        databaseUrl: t.db.url,
        authenticate: tokenAuthenticator({ pool: t.db.pool, clock: t.clock }),
      },
      [streamRoutesWith({ heartbeatMs: 20 })],
    );
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const s = await openStream(`${url}/api/v1/stream`, t.a.adminToken.token);
    const s2 = await openStream(`${url}/api/v1/stream`, t.b.adminToken.token);
    expect(s.status).toBe(200);
    const ticket = await makeTicket(t, t.a.adminToken.token);
    await s.next((e) => e.data.ticketId === ticket.id, 'creation');
    // Heartbeats keep coming: wait for the third.
    for (;;) {
      if (s.comments.filter((c) => c === 'heartbeat').length >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(s.comments[0]).toBe('connected');
    await app.close();
    await s.ended;
    await s2.ended;
  }, 30_000);

  it('ends a stream after its lifetime (the client reconnects and authenticates again)', async () => {
    const app = await buildServer(
      {
        config: { bodyLimit: 1024 * 1024 },
        pool: t.db.pool,
        logger: createLogger('silent'),
        clock: t.clock,
        databaseUrl: t.db.url,
        authenticate: tokenAuthenticator({ pool: t.db.pool, clock: t.clock }),
      },
      [streamRoutesWith({ maxLifetimeMs: 50 })],
    );
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const s = await openStream(`${url}/api/v1/stream`, t.a.adminToken.token);
    await s.ended;
    expect(s.comments).toEqual(['connected']);
    await app.close();
  });
});
