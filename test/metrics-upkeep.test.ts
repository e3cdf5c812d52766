// The mailbox gauges of /metrics: health rows of two tenants, made through the inbound module's own
// operations, read across tenants on each scrape (a later scrape sees later changes, and a label
// set no mailbox has any more is gone).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mailboxHealthTotals,
  recordReconciled,
  recordRenewalFailed,
  recordRenewed,
} from '../src/modules/inbound/health.ts';
import { createMailbox } from '../src/modules/inbound/mailboxes.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { systemClock } from '../src/platform/clock.ts';
import { withSystemRead, withTenant } from '../src/platform/db/tx.ts';
import { unauthorized } from '../src/platform/errors.ts';
import { Metrics } from '../src/platform/http/metrics.ts';
import { type App, buildServer } from '../src/platform/http/server.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';

const key = randomBytes(32);
let db: TestDatabase;
let app: App;

beforeAll(async () => {
  db = await useTestDatabase({ poolSize: 4 });
  app = await buildServer(
    {
      config: { bodyLimit: 1024 * 1024 },
      pool: db.pool,
      logger: createLogger('silent'),
      clock: systemClock,
      metrics: new Metrics(undefined, { mailboxHealth: () => withSystemRead(db.pool, mailboxHealthTotals) }),
      authenticate: async () => {
        throw unauthorized();
      },
    },
    [],
  );
});
afterAll(() => app?.close());

/** The samples of /metrics: `name{labels}` → value. */
async function scrape(): Promise<{ samples: Map<string, number>; text: string }> {
  // Past the half second one read is shared for.
  await new Promise((r) => setTimeout(r, 600));
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  const samples = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    const m = /^(relaydesk_mailbox\S*) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return { samples, text: res.body };
}

const make = (tenantId: string, kind: 'graph' | 'gmail' | 'imap' | 'mime', address: string) =>
  withTenant(db.pool, tenantId, (tx) =>
    createMailbox(tx, key, {
      kind,
      address,
      ...(kind === 'imap'
        ? { settings: { imap: { host: 'imap.example.org' } }, credentials: { password: 'p' } }
        : {}),
    }),
  );

describe('mailbox gauges on /metrics', () => {
  it('count mailboxes by status, renewal result and failures across tenants, with the earliest expiry', async () => {
    const empty = await scrape();
    expect(empty.samples.get('relaydesk_mailboxes{status="healthy"}')).toBe(0);
    expect(empty.samples.get('relaydesk_mailbox_subscription_expiry_seconds')).toBeNaN();
    expect(empty.text).toContain('# HELP relaydesk_mailbox_subscription_expiry_seconds');

    const a = await createTenant(db.pool, { name: 'Metrics A' });
    const b = await createTenant(db.pool, { name: 'Metrics B' });
    const graphA = await make(a.tenant.id, 'graph', 'graph@a.test');
    const gmailA = await make(a.tenant.id, 'gmail', 'gmail@a.test');
    const graphB = await make(b.tenant.id, 'graph', 'graph@b.test');
    const gmailB = await make(b.tenant.id, 'gmail', 'gmail@b.test');
    await make(b.tenant.id, 'imap', 'imap@b.test');
    await make(b.tenant.id, 'mime', 'mime@b.test');

    const now = Date.now();
    const inAnHour = new Date(now + 3600_000);
    await withTenant(db.pool, a.tenant.id, async (tx) => {
      await recordRenewed(tx, graphA.id, {
        result: 'created',
        subscriptionId: 's-a',
        clientState: 'c',
        expiresAt: new Date(now + 2 * 3600_000),
      });
      await recordRenewed(tx, gmailA.id, {
        result: 'renewed',
        subscriptionId: 'projects/p/topics/t',
        clientState: null,
        expiresAt: inAnHour,
      });
      await recordReconciled(tx, gmailA.id, new Date(), 3);
    });
    const failure = {
      kind: 'transient' as const,
      reason: 'the provider answered 503',
      now: new Date(),
      retryAt: new Date(now + 60_000),
      errorAfter: 2,
      keepClaim: false,
    };
    await withTenant(db.pool, b.tenant.id, async (tx) => {
      await recordRenewed(tx, graphB.id, {
        result: 'created',
        subscriptionId: 's-b',
        clientState: 'c',
        expiresAt: new Date(now + 3 * 3600_000),
      });
      await recordRenewalFailed(tx, graphB.id, failure);
      await recordRenewalFailed(tx, graphB.id, failure);
      await recordRenewalFailed(tx, gmailB.id, { ...failure, kind: 'auth', reason: 'invalid_grant' });
      await recordReconciled(tx, graphB.id, new Date(), 2);
    });

    const { samples, text } = await scrape();
    // IMAP and MIME mailboxes have health rows too (healthy from the start) and no subscription.
    expect(samples.get('relaydesk_mailboxes{status="healthy"}')).toBe(4);
    expect(samples.get('relaydesk_mailboxes{status="error"}')).toBe(1);
    expect(samples.get('relaydesk_mailboxes{status="needs_reauth"}')).toBe(1);
    expect(samples.get('relaydesk_mailboxes{status="degraded"}')).toBe(0);
    expect(
      [...samples].filter(([k]) => k.startsWith('relaydesk_mailboxes{')).reduce((s, [, n]) => s + n, 0),
    ).toBe(6);
    const expiry = samples.get('relaydesk_mailbox_subscription_expiry_seconds')!;
    expect(expiry).toBeGreaterThan(3500);
    expect(expiry).toBeLessThanOrEqual(3600);
    expect(samples.get('relaydesk_mailbox_last_renewal{provider="graph",result="created"}')).toBe(1);
    expect(samples.get('relaydesk_mailbox_last_renewal{provider="graph",result="failed"}')).toBe(1);
    expect(samples.get('relaydesk_mailbox_last_renewal{provider="gmail",result="renewed"}')).toBe(1);
    expect(samples.get('relaydesk_mailbox_last_renewal{provider="gmail",result="failed"}')).toBe(1);
    expect(samples.get('relaydesk_mailbox_failures{provider="graph",reason="transient"}')).toBe(2);
    expect(samples.get('relaydesk_mailbox_failures{provider="gmail",reason="auth"}')).toBe(1);
    expect([...samples.keys()].filter((k) => k.startsWith('relaydesk_mailbox_failures{'))).toHaveLength(2);
    expect(samples.get('relaydesk_mailbox_recovered_messages')).toBe(5);
    for (const name of [
      'relaydesk_mailboxes',
      'relaydesk_mailbox_last_renewal',
      'relaydesk_mailbox_failures',
      'relaydesk_mailbox_recovered_messages',
    ])
      expect(text).toContain(`# HELP ${name} `);

    // Mended: the failed label sets are gone, not left at their last value.
    await withTenant(db.pool, b.tenant.id, (tx) =>
      recordRenewed(tx, graphB.id, {
        result: 'recreated',
        subscriptionId: 's-b2',
        clientState: 'c',
        expiresAt: new Date(now + 3 * 3600_000),
      }),
    );
    const later = await scrape();
    expect(later.samples.has('relaydesk_mailbox_last_renewal{provider="graph",result="failed"}')).toBe(false);
    expect(later.samples.get('relaydesk_mailbox_last_renewal{provider="graph",result="recreated"}')).toBe(1);
    expect(later.samples.has('relaydesk_mailbox_failures{provider="graph",reason="transient"}')).toBe(false);
    expect(later.samples.get('relaydesk_mailbox_failures{provider="gmail",reason="auth"}')).toBe(1);
    expect(later.samples.get('relaydesk_mailboxes{status="healthy"}')).toBe(5);
  });
});
