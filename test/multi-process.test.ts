// The scale-out layout on one database, as docs/scale-out.md describes it: 2 `api`, 2 `worker` and
// 1 `scheduler` processes (`relaydesk start --role …`), every one of them through a real PgBouncer in
// transaction pooling mode, with LISTEN on a direct connection (DATABASE_DIRECT_URL). Each capability
// works across processes: mail taken in by one API process is processed by a worker and read through
// the other; a token revoked on one is refused by the other; a change made on one reaches a live
// stream on the other; SLA thresholds fire once; every notification is delivered once.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../simulators/webhook-receiver.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { Cluster, type ClusterProcess } from './cluster.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';
import { type PgBouncer, startPgBouncer } from './pgbouncer.ts';

let db: TestDatabase;
let bouncer: PgBouncer;
let cluster: Cluster;
let receiver: WebhookReceiver;
let token: string;
let api1: ClusterProcess;
let api2: ClusterProcess;

beforeAll(async () => {
  db = await useTestDatabase();
  bouncer = await startPgBouncer({
    serverUrl: db.url,
    users: [{ name: APP_ROLE, password: inject('appRolePassword') }],
    poolSize: 8,
  });
  receiver = await startWebhookReceiver();
  token = (await createTenant(db.pool, { name: 'Scaled out' })).adminToken.token;
  cluster = await Cluster.create({
    databaseUrl: bouncer.through(db.url),
    directDatabaseUrl: db.url,
    secretKey: randomBytes(32).toString('base64'),
    env: { RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: '1', RELAYDESK_POOL_SIZE: '4', LOG_LEVEL: 'error' },
  });
  await cluster.startLayout({ api: 2, worker: 2, scheduler: 1 });
  [api1, api2] = cluster.processes('api') as [ClusterProcess, ClusterProcess];
}, 180_000);

afterAll(async () => {
  await cluster?.stopAll({ remove: true });
  await receiver?.close();
  await bouncer?.stop();
});

async function call(proc: ClusterProcess, method: string, url: string, body?: unknown, bearer = token) {
  const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
  let payload: string | undefined;
  if (typeof body === 'string') {
    headers['content-type'] = 'message/rfc822';
    payload = body;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${proc.url}/api/v1${url}`, { method, headers, body: payload });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as any) : undefined };
}

const mail = (id: string, subject: string) =>
  [
    'From: Dana Customer <dana@customer.test>',
    'To: help@scaled.test',
    `Subject: ${subject}`,
    `Message-ID: <${id}@customer.test>`,
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'The printer is on fire.',
    '',
  ].join('\r\n');

describe('2 api, 2 worker and 1 scheduler processes through PgBouncer', { timeout: 120_000 }, () => {
  it('takes mail in on one API process, processes it on a worker, and reads it through the other', async () => {
    const mailbox = await call(api1, 'POST', '/mailboxes', { kind: 'mime', address: 'help@scaled.test' });
    expect(mailbox.status).toBe(201);
    const accepted = await call(
      api2,
      'POST',
      `/mailboxes/${mailbox.body.id}/messages`,
      mail('m1', 'On fire'),
    );
    expect(accepted.status).toBe(202);
    await expect
      .poll(async () => (await call(api1, 'GET', `/inbound/${accepted.body.inboundId}`)).body.status)
      .toBe('created');
    // The same message again, through the other process: recognised, not a second ticket.
    const again = await call(api1, 'POST', `/mailboxes/${mailbox.body.id}/messages`, mail('m1', 'On fire'));
    expect(again.status).toBe(202);
    await expect
      .poll(async () => (await call(api2, 'GET', `/inbound/${again.body.inboundId}`)).body.status)
      .toBe('duplicate');
    const tickets = await call(api2, 'GET', '/tickets?q=fire');
    expect(tickets.body.items.map((t: any) => t.subject)).toEqual(['On fire']);
  });

  it('refuses on one API process a token revoked on the other', async () => {
    const minted = await call(api1, 'POST', '/tokens', { role: 'viewer', label: 'short-lived' });
    expect(minted.status).toBe(201);
    expect((await call(api2, 'GET', '/me', undefined, minted.body.token)).status).toBe(200);
    expect((await call(api1, 'DELETE', `/tokens/${minted.body.id}`)).status).toBeLessThan(300);
    await expect
      .poll(async () => (await call(api2, 'GET', '/me', undefined, minted.body.token)).status)
      .toBe(401);
  });

  it('streams to a client of one API process the change made through the other', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${api2.url}/api/v1/stream`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    try {
      // Connected first (its LISTEN is in place), then the change.
      while (!text.includes(': connected')) text += decoder.decode((await reader.read()).value);
      const created = await call(api1, 'POST', '/tickets', {
        subject: 'Seen live elsewhere',
        requester: { email: 'live@customer.test' },
      });
      expect(created.status).toBe(201);
      while (!text.includes(created.body.id)) text += decoder.decode((await reader.read()).value);
      expect(text).toContain(created.body.id);
    } finally {
      controller.abort();
    }
  });

  it('fires SLA thresholds once and delivers every notification once', async () => {
    const endpoint = await call(api1, 'POST', '/webhook-endpoints', {
      url: `${receiver.url}/hooks`,
      events: ['ticket.created', 'sla.breached'],
    });
    expect(endpoint.status).toBe(201);
    receiver.setSecrets([endpoint.body.secret]);
    // Calendar time: half of the 3-second first response after 1.5 s, the breach after 3 s.
    const policy = await call(api2, 'POST', '/sla-policies', {
      name: 'Seconds',
      position: 1,
      calendarId: null,
      targets: { normal: { firstResponse: 3 } },
      thresholds: [50, 100],
    });
    expect(policy.status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await call(i % 2 ? api1 : api2, 'POST', '/tickets', {
        subject: `Breaching ${i}`,
        requester: { email: `breach${i}@customer.test` },
      });
      expect(created.status).toBe(201);
      ids.push(created.body.id);
    }
    const fired = async () =>
      (
        await db.admin.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM sla_threshold_fires WHERE ticket_id = ANY($1::uuid[])',
          [ids],
        )
      ).rows[0]!.n;
    await expect.poll(fired, { timeout: 60_000 }).toBe(ids.length * 2);
    // The policy also applies to the open tickets made before it (the two of the tests above).
    const accepted = () => receiver.requests().filter((r) => r.verified && r.status < 300);
    const notified = (type: string) =>
      accepted()
        .map((r) => JSON.parse(r.body) as { type: string; data: { ticket: { id: string } } })
        .filter((n) => n.type === type)
        .map((n) => n.data.ticket.id);
    await expect
      .poll(() => ids.every((id) => notified('sla.breached').includes(id)), { timeout: 60_000 })
      .toBe(true);
    // Each event under one webhook-id, delivered once: no ticket twice for the same event.
    for (const type of ['ticket.created', 'sla.breached']) {
      const tickets = notified(type);
      expect(new Set(tickets).size, type).toBe(tickets.length);
    }
    // (An event of the tests above may be fanned out after the endpoint was made, and reach it too.)
    expect(
      notified('ticket.created')
        .filter((id) => ids.includes(id))
        .sort(),
    ).toEqual([...ids].sort());
    expect(receiver.duplicates()).toEqual([]);
    const events = await db.admin.query<{ type: string; n: number }>(
      `SELECT type, count(*)::int AS n FROM sla_events WHERE ticket_id = ANY($1::uuid[]) GROUP BY type ORDER BY type`,
      [ids],
    );
    expect(events.rows.every((r) => r.n === ids.length)).toBe(true);
  });
});
