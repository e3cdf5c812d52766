// Webhook endpoints over HTTP: the secret shown once, the URL rules (and their override), the
// deliveries of an endpoint, replays (one, and every failed one since a time) with their jobs, the
// permission, tenant isolation of every route, and tenant deletion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { notifyDeliverJob } from '../notify/job-refs.ts';
import { deliveryRow, queueDelivery, recordOutcome } from '../outbound/ledger.ts';
import { createTenant, deleteTenant } from '../tenants/service.ts';

let t: TestApp;
const admin = () => t.a.adminToken.token;
const base = '/api/v1/webhook-endpoints';
const URL_A = 'http://127.0.0.1:9/hooks/a';

async function create(body: Record<string, unknown> = {}, token = admin()) {
  const res = await t.call(token, 'POST', base, { url: URL_A, events: ['ticket.created'], ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; secret: string } & Record<string, unknown>;
}

/** A ledger row for a webhook notification to `destination`, ended as `outcome` (or left queued). */
async function delivery(destination: string, outcome?: 'failed' | 'sent', tenantId = t.a.tenant.id) {
  return withTenant(t.db.pool, tenantId, async (tx) => {
    const id = await queueDelivery(tx, {
      channel: 'webhook',
      purpose: 'notification',
      destination,
      ticketId: null,
      // One chain per notification.
      ticketMessageId: uuidv7(),
      mailboxId: null,
      rfcMessageId: null,
      payload: { notificationId: uuidv7() },
    });
    const row = (await deliveryRow(tx, id))!;
    if (outcome === 'failed')
      await recordOutcome(tx, row, {
        status: 'failed',
        errorCode: 'permanent',
        errorMessage: 'HTTP 400',
        retryable: false,
      });
    if (outcome === 'sent')
      await recordOutcome(tx, row, {
        status: 'sent',
        providerMessageId: null,
        providerResponse: 'HTTP 200',
        requestId: null,
      });
    return id;
  });
}

const jobsFor = async (deliveryIds: string[]) =>
  (
    await t.db.admin.query<{ data: { tenantId: string; deliveryId: string } }>(
      'SELECT data FROM pgboss.job WHERE name = $1 AND data->>$2 = ANY($3::text[])',
      [notifyDeliverJob.name, 'deliveryId', deliveryIds],
    )
  ).rows.map((r) => r.data);

const dbNow = async () =>
  (await t.db.admin.query<{ now: string }>('SELECT clock_timestamp() AS now')).rows[0]!.now;

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue(notifyDeliverJob.name);
});
afterAll(() => {
  t.config.allowPrivateWebhooks = true;
});

describe('webhook endpoints', () => {
  it('shows the secret once, when created, and never again', async () => {
    const res = await t.call(admin(), 'POST', base, {
      url: URL_A,
      events: ['ticket.created', 'sla.breached'],
      description: 'Ops',
    });
    expect(res.status).toBe(201);
    expect(res.headers['location']).toBe(`${base}/${res.body.id}`);
    expect(res.body).toMatchObject({
      url: URL_A,
      description: 'Ops',
      events: ['ticket.created', 'sla.breached'],
      enabled: true,
      disabledReason: null,
      failingSince: null,
      previousSecretExpiresAt: null,
    });
    const secret: string = res.body.secret;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    const answers = [
      await t.call(admin(), 'GET', `${base}/${res.body.id}`),
      await t.call(admin(), 'GET', base),
      await t.call(admin(), 'PATCH', `${base}/${res.body.id}`, { description: 'Ops team' }),
      await t.call(admin(), 'GET', `${base}/${res.body.id}/deliveries`),
    ];
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(JSON.stringify(a.body)).not.toContain(secret.slice(6));
      expect(JSON.stringify(a.body)).not.toContain('"secret"');
    }
    expect(answers[0]!.body.description).toBe('Ops');
    expect(answers[1]!.body.items.map((e: { id: string }) => e.id)).toContain(res.body.id);
    // Stored sealed.
    const { rows } = await t.db.admin.query<{ secret: Buffer }>(
      'SELECT secret FROM webhook_endpoints WHERE id = $1',
      [res.body.id],
    );
    expect(rows[0]!.secret.toString('latin1')).not.toContain(secret.slice(6, 20));
    expect(rows[0]!.secret.toString('base64')).not.toContain(secret.slice(6, 20));

    // Rotating answers the new one once, and GET shows only when the old one stops signing.
    const rotated = await t.call(admin(), 'POST', `${base}/${res.body.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    const after = await t.call(admin(), 'GET', `${base}/${res.body.id}`);
    expect(after.body.previousSecretExpiresAt).toBe(rotated.body.previousSecretExpiresAt);
    expect(JSON.stringify(after.body)).not.toContain(rotated.body.secret.slice(6));
  });

  it('validates the body', async () => {
    const bad = [
      { url: URL_A, events: [] },
      { url: URL_A, events: ['ticket.exploded'] },
      { url: URL_A, events: ['ticket.created', 'ticket.created'] },
      { url: URL_A, events: ['notification.test'] },
      { url: 'ftp://example.com/', events: ['ticket.created'] },
      { url: 'https://u:p@example.com/', events: ['ticket.created'] },
      { url: URL_A },
      { url: URL_A, events: ['ticket.created'], secret: 'whsec_mine' },
    ];
    for (const body of bad) {
      const res = await t.call(admin(), 'POST', base, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const ep = await create();
    expect((await t.call(admin(), 'PATCH', `${base}/${ep.id}`, {})).status).toBe(400);
    expect((await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { enabled: 'yes' })).status).toBe(400);
    // A long array is refused by its length, before the validator would list its repeats (the
    // validator's report of 20,000 equal items took 10 s of CPU).
    const long = await t.call(admin(), 'POST', base, {
      url: URL_A,
      events: Array.from({ length: 20_000 }, () => 'ticket.created'),
    });
    expect(long.status).toBe(400);
    expect(long.body.errors).toEqual([
      expect.objectContaining({
        path: '/events',
        message: expect.stringMatching(/at most \d+ items \(it has 20000\)/),
      }),
    ]);
  });

  it('refuses loopback, private and link-local URLs without RELAYDESK_ALLOW_PRIVATE_WEBHOOKS', async () => {
    const ep = await create();
    t.config.allowPrivateWebhooks = false;
    try {
      for (const url of [
        'http://127.0.0.1/',
        'http://localhost:8080/',
        'http://10.1.2.3/',
        'http://169.254.169.254/latest/meta-data',
        'http://100.64.0.1/',
        'http://0.0.0.0/',
        'http://[::1]/',
        'http://[::]/',
        'http://[::ffff:127.0.0.1]/',
        'http://[fd00::1]/',
        'http://[fe80::1]/',
      ]) {
        const res = await t.call(admin(), 'POST', base, { url, events: ['ticket.created'] });
        expect(res.status, url).toBe(400);
        expect(res.body.errors[0]).toMatchObject({ path: '/url' });
        const patched = await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { url });
        expect(patched.status, url).toBe(400);
      }
      // Turning an endpoint back on checks its URL again.
      await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { enabled: false });
      expect((await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { enabled: true })).status).toBe(400);
      expect((await t.call(admin(), 'GET', `${base}/${ep.id}`)).body).toMatchObject({
        url: URL_A,
        enabled: false,
      });
      // A public literal passes (nothing is resolved or contacted for it).
      const ok = await t.call(admin(), 'POST', base, {
        url: 'https://93.184.216.34/hook',
        events: ['ticket.created'],
      });
      expect(ok.status).toBe(201);
    } finally {
      t.config.allowPrivateWebhooks = true;
    }
    expect((await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { enabled: true })).status).toBe(200);
  });

  it('needs webhooks:manage (admin)', async () => {
    const ep = await create();
    const agent = await t.call(admin(), 'POST', '/api/v1/tokens', { role: 'agent', label: 'agent' });
    expect(agent.status, JSON.stringify(agent.body)).toBe(201);
    const token = agent.body.token as string;
    for (const [method, url] of [
      ['GET', base],
      ['POST', base],
      ['GET', `${base}/${ep.id}`],
      ['POST', `${base}/${ep.id}/rotate-secret`],
      ['GET', `${base}/${ep.id}/deliveries`],
    ] as const) {
      const res = await t.call(
        token,
        method,
        url,
        method === 'POST' && url === base ? { url: URL_A, events: ['ticket.created'] } : undefined,
      );
      expect(res.status, `${method} ${url}`).toBe(403);
    }
  });

  it('lists, changes, disables and deletes', async () => {
    const ep = await create();
    const patched = await t.call(admin(), 'PATCH', `${base}/${ep.id}`, {
      url: 'http://127.0.0.1:9/other',
      events: ['sla.breached'],
      enabled: false,
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      url: 'http://127.0.0.1:9/other',
      events: ['sla.breached'],
      enabled: false,
      disabledReason: 'manual',
    });
    const page = await t.call(admin(), 'GET', `${base}?limit=1`);
    expect(page.body.items).toHaveLength(1);
    expect(page.body.nextCursor).toEqual(expect.any(String));
    const next = await t.call(admin(), 'GET', `${base}?limit=1&cursor=${page.body.nextCursor}`);
    expect(next.body.items[0].id).not.toBe(page.body.items[0].id);
    expect((await t.call(admin(), 'GET', `${base}?cursor=nope`)).body.code).toBe('invalid_cursor');
    expect((await t.call(admin(), 'DELETE', `${base}/${ep.id}`)).status).toBe(204);
    expect((await t.call(admin(), 'DELETE', `${base}/${ep.id}`)).status).toBe(404);
    expect((await t.call(admin(), 'GET', `${base}/${ep.id}`)).status).toBe(404);
  });
});

describe('webhook deliveries and replays', () => {
  it("lists the endpoint's deliveries only", async () => {
    const ep = await create();
    const other = await create();
    const mine = [await delivery(ep.id, 'failed'), await delivery(ep.id, 'sent')];
    await delivery(other.id, 'failed');
    const res = await t.call(admin(), 'GET', `${base}/${ep.id}/deliveries`);
    expect(res.status).toBe(200);
    expect(res.body.items.map((d: { id: string }) => d.id).sort()).toEqual([...mine].sort());
    const failed = await t.call(admin(), 'GET', `${base}/${ep.id}/deliveries?status=failed`);
    expect(failed.body.items.map((d: { id: string }) => d.id)).toEqual([mine[0]]);
    expect(failed.body.items[0]).toMatchObject({ channel: 'webhook', destination: ep.id, status: 'failed' });
  });

  it('replays one delivery: a new attempt and its job, in one transaction', async () => {
    const ep = await create();
    const failedId = await delivery(ep.id, 'failed');
    const res = await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${failedId}/replay`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({
      attempt: 2,
      previousId: failedId,
      status: 'queued',
      destination: ep.id,
    });
    expect(await jobsFor([res.body.id])).toEqual([{ tenantId: t.a.tenant.id, deliveryId: res.body.id }]);
    // Its payload (the notification) is the same: the same webhook-id goes out.
    const [before, after] = await withTenant(t.db.pool, t.a.tenant.id, async (tx) => [
      (await deliveryRow(tx, failedId))!,
      (await deliveryRow(tx, res.body.id))!,
    ]);
    expect(after.payload).toEqual(before.payload);

    // While that attempt is queued, another replay is refused.
    const again = await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${failedId}/replay`);
    expect(again.status).toBe(409);

    // A delivered one may be replayed too (the receiver lost it).
    const sentId = await delivery(ep.id, 'sent');
    const resent = await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${sentId}/replay`);
    expect(resent.status).toBe(202);
    expect(resent.body.attempt).toBe(2);

    // A delivery of another endpoint is not found through this one.
    const other = await create();
    const theirs = await delivery(other.id, 'failed');
    expect((await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${theirs}/replay`)).status).toBe(404);
    expect((await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${uuidv7()}/replay`)).status).toBe(
      404,
    );
  });

  it('is retried through the ledger (POST /deliveries/:id/retry) by the job of its channel', async () => {
    const ep = await create();
    const failedId = await delivery(ep.id, 'failed');
    const res = await t.call(admin(), 'POST', `/api/v1/deliveries/${failedId}/retry`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ attempt: 2, channel: 'webhook', status: 'queued' });
    // The notification channels' job sends it; the email job would refuse it and leave it failing.
    expect(await jobsFor([res.body.id])).toEqual([{ tenantId: t.a.tenant.id, deliveryId: res.body.id }]);
    const emailJobs = await t.db.admin.query(
      "SELECT 1 FROM pgboss.job WHERE name = 'outbound.send' AND data->>'deliveryId' = $1",
      [res.body.id],
    );
    expect(emailJobs.rowCount).toBe(0);
  });

  it('replays every delivery that failed since a time, once', async () => {
    const ep = await create();
    const old = await delivery(ep.id, 'failed');
    const since = await dbNow();
    const failedA = await delivery(ep.id, 'failed');
    const failedB = await delivery(ep.id, 'failed');
    await delivery(ep.id, 'sent');
    await delivery(ep.id);
    // One whose replay is queued already.
    const replayedBefore = await delivery(ep.id, 'failed');
    await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${replayedBefore}/replay`);
    const other = await create();
    await delivery(other.id, 'failed');

    const res = await t.call(admin(), 'POST', `${base}/${ep.id}/replay`, { since });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.replayed).toBe(2);
    expect(res.body.more).toBe(false);
    const made = await t.call(admin(), 'GET', `${base}/${ep.id}/deliveries?status=queued`);
    const previous = made.body.items
      .filter((d: { id: string }) => res.body.deliveryIds.includes(d.id))
      .map((d: { previousId: string }) => d.previousId)
      .sort();
    expect(previous).toEqual([failedA, failedB].sort());
    expect((await jobsFor(res.body.deliveryIds)).map((j) => j.deliveryId).sort()).toEqual(
      [...res.body.deliveryIds].sort(),
    );
    expect(previous).not.toContain(old);
    // Asked again: their latest attempts are queued now, nothing more to replay.
    const twice = await t.call(admin(), 'POST', `${base}/${ep.id}/replay`, { since });
    expect(twice.body).toEqual({ replayed: 0, deliveryIds: [], more: false });
    expect((await t.call(admin(), 'POST', `${base}/${ep.id}/replay`, { since: 'yesterday' })).status).toBe(
      400,
    );
  });

  it('refuses replays to a disabled endpoint', async () => {
    const ep = await create();
    const failedId = await delivery(ep.id, 'failed');
    await t.call(admin(), 'PATCH', `${base}/${ep.id}`, { enabled: false });
    const one = await t.call(admin(), 'POST', `${base}/${ep.id}/deliveries/${failedId}/replay`);
    expect(one.status).toBe(409);
    const all = await t.call(admin(), 'POST', `${base}/${ep.id}/replay`, { since: '2020-01-01T00:00:00Z' });
    expect(all.status).toBe(409);
  });
});

describe('webhook tenant isolation', () => {
  it("answers 404 to another tenant on every route, and changes nothing of the owner's", async () => {
    const ep = await create({ description: 'A only' });
    const failedId = await delivery(ep.id, 'failed');
    const b = t.b.adminToken.token;
    const routes: [string, string, unknown?][] = [
      ['GET', `${base}/${ep.id}`],
      ['PATCH', `${base}/${ep.id}`, { description: 'taken' }],
      ['PATCH', `${base}/${ep.id}`, { enabled: false }],
      ['POST', `${base}/${ep.id}/rotate-secret`],
      ['GET', `${base}/${ep.id}/deliveries`],
      ['POST', `${base}/${ep.id}/deliveries/${failedId}/replay`],
      ['POST', `${base}/${ep.id}/replay`, { since: '2020-01-01T00:00:00Z' }],
      ['DELETE', `${base}/${ep.id}`],
    ];
    for (const [method, url, body] of routes) {
      const res = await t.call(b, method as 'GET', url, body);
      expect(res.status, `${method} ${url}`).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    // B's own endpoint cannot reach A's delivery either.
    const ofB = await create({}, b);
    expect((await t.call(b, 'POST', `${base}/${ofB.id}/deliveries/${failedId}/replay`)).status).toBe(404);
    expect((await t.call(b, 'GET', base)).body.items.map((e: { id: string }) => e.id)).toEqual([ofB.id]);

    const after = await t.call(admin(), 'GET', `${base}/${ep.id}`);
    expect(after.body).toMatchObject({ description: 'A only', enabled: true, secretRotatedAt: null });
    const deliveries = await t.call(admin(), 'GET', `${base}/${ep.id}/deliveries`);
    expect(deliveries.body.items).toHaveLength(1);
  });

  it('removes endpoints with their tenant', async () => {
    const c = await createTenant(t.db.pool, { name: 'Tenant C' });
    const ep = await create({}, c.adminToken.token);
    await deleteTenant(t.db.pool, c.tenant.id);
    const { rows } = await t.db.admin.query('SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1', [
      c.tenant.id,
    ]);
    expect(rows).toHaveLength(0);
    expect(ep.id).toBeTruthy();
  });
});
