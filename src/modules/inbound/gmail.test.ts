// Gmail Pub/Sub push ingress, history sync and fetch, against the local Gmail simulator.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../../simulators/gmail.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { AuthExpired } from '../../platform/provider-errors.ts';
import { syncGmailHistory } from './gmail-sync.ts';
import { mailboxCredentials } from './mailboxes.ts';
import { processInbound } from './process.ts';

let t: TestApp;
let sim: GmailSimulator;
let appUrl: string;
let mailboxId: string;
const USER = 'support@gmail-tenant.test';
const AUDIENCE = 'https://relaydesk.example/hooks/gmail';
const SERVICE_ACCOUNT = 'pubsub-push@relaydesk-sim.iam.gserviceaccount.com';
const deps = () => t.inboundDeps();

const raw = (subject: string) =>
  Buffer.from(
    [
      `From: Eve <eve@customer.test>`,
      `To: ${USER}`,
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(6).toString('hex')}@customer.test>`,
      '',
      subject,
    ].join('\r\n'),
  );

const jobs = async () =>
  (
    await t.db.admin.query("SELECT data FROM pgboss.job WHERE name = 'gmail.history' ORDER BY created_on")
  ).rows.map((r) => r.data);

/** Runs the queued history jobs and then the inbound jobs they created, like a worker would. */
async function drain(): Promise<{ status: string; ticketId: string | null }[]> {
  const outcomes = [];
  for (const data of await jobs()) {
    await syncGmailHistory(deps(), data, async (_ref, payload, options) =>
      t.queue.send({ name: 'inbound.process' }, payload, options?.tx ? { tx: options.tx } : {}),
    );
  }
  await t.db.admin.query("DELETE FROM pgboss.job WHERE name = 'gmail.history'");
  const { rows } = await t.db.admin.query(
    "SELECT id FROM inbound_messages WHERE mailbox_id = $1 AND status = 'queued' ORDER BY created_at, id",
    [mailboxId],
  );
  for (const r of rows)
    outcomes.push(
      await processInbound(deps(), { tenantId: t.a.tenant.id, inboundId: r.id, lastAttempt: false }),
    );
  return outcomes;
}

beforeAll(async () => {
  t = await useTestApp();
  for (const q of ['inbound.process', 'gmail.history']) await t.queue.boss.createQueue(q);
  appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  sim = await startGmailSimulator();
  const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'gmail',
    address: USER,
    settings: {
      gmail: {
        apiBaseUrl: sim.apiBaseUrl,
        tokenUrl: sim.tokenUrl,
        jwksUrl: sim.jwksUrl,
        pushAudience: AUDIENCE,
        serviceAccountEmail: SERVICE_ACCOUNT,
      },
    },
    credentials: { ...sim.credentials },
  });
  expect(res.status).toBe(201);
  mailboxId = res.body.id;
});

afterAll(async () => {
  await sim?.close();
});

const endpoint = () => `${appUrl}/hooks/gmail/${mailboxId}`;
const good = { audience: AUDIENCE, email: SERVICE_ACCOUNT };

describe('Gmail push', () => {
  it('verifies the OIDC token and enqueues a history pointer; the worker turns it into tickets', async () => {
    sim.deliver(USER, raw('First mail'));
    expect(await sim.push(endpoint(), USER, good)).toBe(202);
    expect(await jobs()).toHaveLength(1);
    // No history id stored yet: the first sync lists recent mail.
    const first = await drain();
    expect(first.map((o) => o.status)).toEqual(['created']);
    sim.deliver(USER, raw('Second mail'));
    sim.deliver(USER, raw('Third mail'));
    expect(await sim.push(endpoint(), USER, good)).toBe(202);
    const next = await drain();
    expect(next.map((o) => o.status)).toEqual(['created', 'created']);
    const { rows } = await t.db.admin.query(
      'SELECT subject FROM tickets WHERE tenant_id = $1 ORDER BY number',
      [t.a.tenant.id],
    );
    expect(rows.map((r) => r.subject)).toEqual(['First mail', 'Second mail', 'Third mail']);
  });

  it.each([
    ['a wrong issuer', { ...good, issuer: 'https://evil.example' }],
    ['a wrong audience', { ...good, audience: 'https://someone-else.example' }],
    ['a wrong service account', { ...good, email: 'attacker@evil.iam.gserviceaccount.com' }],
    ['an unverified email', { ...good, emailVerified: false }],
    ['an expired token', { ...good, expiresIn: -120 }],
    ['a signature by a key not in the JWKS', { ...good, foreignKey: true }],
  ])('refuses %s with 401 and enqueues nothing', async (_name, options) => {
    const before = (await jobs()).length;
    expect(await sim.push(endpoint(), USER, options)).toBe(401);
    expect((await jobs()).length).toBe(before);
  });

  it('answers 503 provider_unavailable, storing nothing, when the signing keys cannot be read', async () => {
    const closed = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
      kind: 'gmail',
      address: 'keys-down@gmail.test',
      settings: {
        gmail: {
          apiBaseUrl: sim.apiBaseUrl,
          tokenUrl: sim.tokenUrl,
          // Nothing listens on port 1: the keys cannot be fetched.
          jwksUrl: 'http://127.0.0.1:1/oauth2/v3/certs',
          pushAudience: AUDIENCE,
          serviceAccountEmail: SERVICE_ACCOUNT,
        },
      },
      credentials: { ...sim.credentials },
    });
    expect(closed.status).toBe(201);
    const before = (await jobs()).length;
    const res = await fetch(`${appUrl}/hooks/gmail/${closed.body.id}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await sim.pushToken(good)}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        message: {
          data: Buffer.from(
            JSON.stringify({ emailAddress: 'keys-down@gmail.test', historyId: '7' }),
          ).toString('base64'),
        },
        subscription: 'projects/p/subscriptions/s',
      }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe('provider_unavailable');
    expect((await jobs()).length).toBe(before);
  });

  it('refuses a push without a token, or with a body that is not a push', async () => {
    const none = await fetch(endpoint(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(none.status).toBe(401);
  });

  it('resynchronises when Gmail says the stored history id is too old (404), without duplicating', async () => {
    sim.deliver(USER, raw('After a long outage'));
    sim.expireHistory(USER);
    expect(await sim.push(endpoint(), USER, good)).toBe(202);
    const outcomes = await drain();
    // The resync lists every recent message; only the one not recorded yet is recorded (and created).
    expect(outcomes.map((o) => o.status)).toEqual(['created']);
  });

  it('saves a rotated refresh token the moment it arrives', async () => {
    const rotated = sim.rotateRefreshTokenOnce();
    sim.deliver(USER, raw('During rotation'));
    await sim.push(endpoint(), USER, good);
    await drain();
    const stored = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      mailboxCredentials(tx, t.secretKey, mailboxId),
    );
    expect(stored?.['refreshToken']).toBe(rotated);
  });

  it('treats a revoked grant as needing a person (AuthExpired), not as something to retry', async () => {
    sim.revokeRefreshToken();
    sim.deliver(USER, raw('Unreachable'));
    await sim.push(endpoint(), USER, good);
    const [data] = await jobs();
    await expect(syncGmailHistory(deps(), data, async () => null)).rejects.toBeInstanceOf(AuthExpired);
    await t.db.admin.query("DELETE FROM pgboss.job WHERE name = 'gmail.history'");
  });
});
