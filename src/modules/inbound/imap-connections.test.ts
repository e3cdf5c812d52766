// IMAP connections against a real Dovecot: fetches reuse a few logins, a refused login stops the
// listener until the credentials change (and ends fetch jobs at once), and the mailbox probe.
// Logins are counted by a TCP proxy in front of Dovecot: every connection Relaydesk makes logs in
// exactly once (imapflow authenticates once, at connect), so connections accepted = login attempts.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { type Dovecot, startDovecot, imapClient } from '../../../test/dovecot.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import { PermanentJobError } from '../../platform/queue/registry.ts';
import { getHealth } from './health.ts';
import { getMailbox, type Mailbox, resolveSettings } from './mailboxes.ts';
import { processInbound } from './process.ts';
import {
  closeImapFetchPools,
  configureImapFetchPools,
  fetchImapMessage,
} from './providers/imap/fetch-pool.ts';
import { ImapListeners } from './providers/imap/listener.ts';
import { probeImapMailbox } from './providers/imap/probe.ts';

interface CountingProxy {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  open(): number;
  /** Cuts every open connection, as a server restart or a NAT timeout would. */
  dropAll(): void;
  close(): Promise<void>;
}

async function countingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    proxy.connections++;
    sockets.add(inbound);
    const upstream = net.connect(target.port, target.host);
    const end = () => {
      sockets.delete(inbound);
      inbound.destroy();
      upstream.destroy();
    };
    for (const s of [inbound, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
    inbound.pipe(upstream).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: CountingProxy = {
    port: (server.address() as net.AddressInfo).port,
    connections: 0,
    open: () => sockets.size,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

let t: TestApp;
let dovecot: Dovecot;
let proxy: CountingProxy;
const listenerDeps = () => ({
  pool: t.db.pool,
  connectionString: t.db.url,
  secretKey: t.secretKey,
  logger: createLogger('silent'),
  queue: t.queue,
});

async function direct<T>(fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = imapClient(dovecot);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout();
  }
}

const message = (subject: string) =>
  [
    `From: Grace <grace@imap-customer.test>`,
    `To: ${dovecot.user}`,
    `Subject: ${subject}`,
    `Message-ID: <${randomBytes(6).toString('hex')}@imap-customer.test>`,
    '',
    subject,
  ].join('\r\n');

/** Appends messages directly (not through the proxy); answers the folder's UIDVALIDITY and their UIDs. */
async function append(subjects: string[]): Promise<{ uidValidity: string; uids: number[] }> {
  return direct(async (client) => {
    const uids: number[] = [];
    let uidValidity = '';
    for (const s of subjects) {
      const r = await client.append('INBOX', message(s));
      if (!r) throw new Error('append failed');
      uids.push(Number(r.uid));
      uidValidity = String(r.uidValidity);
    }
    return { uidValidity, uids };
  });
}

async function createImapMailbox(address: string, password: string): Promise<Mailbox> {
  const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'imap',
    address,
    settings: { imap: { host: '127.0.0.1', port: proxy.port, secure: false, user: dovecot.user } },
    credentials: { password },
  });
  expect(res.status).toBe(201);
  return withTenant(t.db.pool, t.a.tenant.id, (tx) => getMailbox(tx, res.body.id));
}

const health = (mailboxId: string) => withTenant(t.db.pool, t.a.tenant.id, (tx) => getHealth(tx, mailboxId));

const records = async (mailboxId: string) =>
  (
    await t.db.admin.query(
      'SELECT id, status, reason FROM inbound_messages WHERE mailbox_id = $1 ORDER BY created_at, id',
      [mailboxId],
    )
  ).rows as { id: string; status: string; reason: string | null }[];

beforeAll(async () => {
  dovecot = await startDovecot();
  proxy = await countingProxy(dovecot);
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
  configureImapFetchPools({ idleMs: 300 });
}, 180_000);

afterAll(async () => {
  await closeImapFetchPools();
  await proxy?.close();
  await dovecot?.stop();
});

describe('IMAP fetch connections', { timeout: 60_000 }, () => {
  let mailbox: Mailbox;

  it('fetches 50 messages at once over at most two logins, and logs out once they idle', async () => {
    mailbox = await createImapMailbox('pooled@imap.test', dovecot.password);
    const subjects = Array.from({ length: 50 }, (_, i) => `Backlog ${i}`);
    const { uidValidity, uids } = await append(subjects);
    const before = proxy.connections;
    const fetched = await Promise.all(
      uids.map((uid) => fetchImapMessage(mailbox, dovecot.password, { uidValidity, uid })),
    );
    fetched.forEach((raw, i) => expect(raw?.toString()).toContain(`Subject: ${subjects[i]}\r\n`));
    expect(proxy.connections - before).toBeGreaterThanOrEqual(1);
    expect(proxy.connections - before).toBeLessThanOrEqual(2);
    // Idle for longer than idleMs (300 ms in this file): logged out.
    await expect.poll(() => proxy.open(), { timeout: 5_000 }).toBe(0);
  });

  it('replaces a connection the server dropped, and sees mail that arrived after it selected the folder', async () => {
    const first = await append(['Before the drop']);
    await fetchImapMessage(mailbox, dovecot.password, {
      uidValidity: first.uidValidity,
      uid: first.uids[0]!,
    });
    const before = proxy.connections;
    proxy.dropAll();
    const later = await append(['After the drop']);
    const raw = await fetchImapMessage(mailbox, dovecot.password, {
      uidValidity: later.uidValidity,
      uid: later.uids[0]!,
    });
    expect(raw?.toString()).toContain('Subject: After the drop');
    expect(proxy.connections - before).toBe(1);
  });

  it('logs in anew when the credentials change, never with the old login', async () => {
    const { uidValidity, uids } = await append(['Changed credentials']);
    await fetchImapMessage(mailbox, dovecot.password, { uidValidity, uid: uids[0]! });
    const before = proxy.connections;
    await expect(
      fetchImapMessage(mailbox, 'not-the-password', { uidValidity, uid: uids[0]! }),
    ).rejects.toMatchObject({ authenticationFailed: true });
    expect(proxy.connections - before).toBe(1);
  });
});

describe('a refused IMAP login', { timeout: 60_000 }, () => {
  let mailbox: Mailbox;

  it('ends fetch jobs failed at once, with the server reason, asking the server only once', async () => {
    mailbox = await createImapMailbox('refused@imap.test', 'wrong-password');
    const { uidValidity, uids } = await append(['Fetched with a wrong password', 'And another']);
    const inserted = [];
    for (const uid of uids)
      inserted.push(
        (
          await t.db.admin.query(
            "INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer) VALUES ($1, gen_random_uuid(), $2, 'imap', $3) RETURNING id",
            [t.a.tenant.id, mailbox.id, JSON.stringify({ uidValidity, uid })],
          )
        ).rows[0].id as string,
      );
    const before = proxy.connections;
    for (const inboundId of inserted) {
      const attempt = processInbound(t.inboundDeps(), {
        tenantId: t.a.tenant.id,
        inboundId,
        lastAttempt: false,
      });
      // PermanentJobError: the queue dead-letters the job at once instead of retrying it.
      await expect(attempt).rejects.toBeInstanceOf(PermanentJobError);
    }
    expect(proxy.connections - before).toBe(1);
    for (const r of await records(mailbox.id)) {
      expect(r.status).toBe('failed');
      expect(r.reason).toBe('AuthExpired: [AUTHENTICATIONFAILED] Authentication failed.');
    }
  });

  it('marks the mailbox needs_reauth, stops logging in until the credentials change, then mail flows again', async () => {
    const listeners = new ImapListeners(listenerDeps(), { reconnectDelayMs: 20, maxReconnectDelayMs: 20 });
    const before = proxy.connections;
    await listeners.start(600_000);
    try {
      await expect
        .poll(async () => (await health(mailbox.id)).status, { timeout: 10_000 })
        .toBe('needs_reauth');
      expect((await health(mailbox.id)).failureReason).toBe('[AUTHENTICATIONFAILED] Authentication failed.');
      // The one refused login, and the listener of the other mailbox (which logs in fine).
      await expect.poll(() => proxy.connections - before, { timeout: 10_000 }).toBe(2);
      const refusedAt = proxy.connections;
      // Scans that find the mailbox unchanged, and time for 25 reconnects at the 20 ms delay this
      // test set: none may happen (waiting is the point here; there is no event to wait for).
      for (let i = 0; i < 3; i++) await listeners.scan();
      await new Promise((r) => setTimeout(r, 500));
      expect(proxy.connections).toBe(refusedAt);
      expect((await health(mailbox.id)).status).toBe('needs_reauth');

      const patched = await t.call(t.a.adminToken.token, 'PATCH', `/api/v1/mailboxes/${mailbox.id}`, {
        credentials: { password: dovecot.password },
      });
      expect(patched.status).toBe(200);
      await expect.poll(async () => (await health(mailbox.id)).status, { timeout: 10_000 }).toBe('healthy');
      expect(proxy.connections - refusedAt).toBe(1);
      await append(['After new credentials']);
      await expect
        .poll(async () => (await records(mailbox.id)).filter((r) => r.status === 'queued').length, {
          timeout: 10_000,
        })
        .toBeGreaterThanOrEqual(1);
      const queued = (await records(mailbox.id)).filter((r) => r.status === 'queued');
      const outcomes = [];
      for (const r of queued)
        outcomes.push(
          (
            await processInbound(t.inboundDeps(), {
              tenantId: t.a.tenant.id,
              inboundId: r.id,
              lastAttempt: false,
            })
          ).status,
        );
      expect(outcomes).toContain('created');
    } finally {
      await listeners.stop();
    }
  });
});

describe('a server that cannot be reached', { timeout: 30_000 }, () => {
  it('shows in the health: degraded, then error, and healthy once it can be reached', async () => {
    const token = t.a.adminToken.token;
    const created = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: 'imap',
      address: 'unreachable@imap.test',
      settings: { imap: { host: '127.0.0.1', port: 1, secure: false, user: dovecot.user } },
      credentials: { password: dovecot.password },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const listeners = new ImapListeners(listenerDeps(), { reconnectDelayMs: 20, maxReconnectDelayMs: 20 });
    await listeners.start(600_000);
    try {
      await expect.poll(async () => (await health(id)).status, { timeout: 10_000 }).toBe('error');
      expect((await health(id)).failureReason).toMatch(/^IMAP: .*ECONNREFUSED/);
      const events = await t.db.admin.query(
        'SELECT from_status, to_status FROM mailbox_health_events WHERE mailbox_id = $1 ORDER BY created_at, id',
        [id],
      );
      expect(events.rows.map((r) => `${r.from_status} → ${r.to_status}`)).toEqual([
        'healthy → degraded',
        'degraded → error',
      ]);
      const fixed = await t.call(token, 'PATCH', `/api/v1/mailboxes/${id}`, {
        settings: { imap: { host: dovecot.host, port: dovecot.port, secure: false, user: dovecot.user } },
      });
      expect(fixed.status).toBe(200);
      await expect.poll(async () => (await health(id)).status, { timeout: 10_000 }).toBe('healthy');
      expect((await health(id)).consecutiveFailures).toBe(0);
    } finally {
      await listeners.stop();
    }
  });
});

describe('probeImapMailbox', { timeout: 30_000 }, () => {
  const mailboxWith = (imap: Record<string, unknown>): Mailbox => ({
    id: '00000000-0000-7000-8000-000000000000',
    kind: 'imap',
    address: dovecot.user,
    displayName: null,
    settings: resolveSettings({
      imap: { host: dovecot.host, port: dovecot.port, secure: false, ...imap },
    }) as Mailbox['settings'],
    hasCredentials: true,
    createdAt: '',
    updatedAt: '',
  });

  it('reports each step of a mailbox that works', async () => {
    const result = await probeImapMailbox(mailboxWith({}), dovecot.password);
    expect(result.ok).toBe(true);
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ['connect', true],
      ['login', true],
      ['select', true],
    ]);
    expect(result.steps[2]!.message).toMatch(/^opened the folder "INBOX" \(\d+ messages\)$/);
  });

  it('reports a port nothing listens on at the connect step', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const result = await probeImapMailbox(mailboxWith({ port: closed }), dovecot.password);
    expect(result).toEqual({
      ok: false,
      steps: [
        {
          step: 'connect',
          ok: false,
          message: `nothing accepts connections at 127.0.0.1:${closed} (connection refused)`,
        },
      ],
    });
  });

  it('reports a host that never greets at the connect step, within the timeout', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const result = await probeImapMailbox(mailboxWith({ port }), dovecot.password, { stepTimeoutMs: 300 });
      expect(result.ok).toBe(false);
      expect(result.steps).toHaveLength(1);
      expect(result.steps[0]).toMatchObject({ step: 'connect', ok: false });
      expect(result.steps[0]!.message).toContain('did not answer as an IMAP server in time');
    } finally {
      silent.close();
    }
  });

  it('reports a refused login at the login step, in the server words', async () => {
    const result = await probeImapMailbox(mailboxWith({}), 'wrong-password');
    expect(result.ok).toBe(false);
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ['connect', true],
      ['login', false],
    ]);
    expect(result.steps[1]!.message).toBe(
      `the server refused the login as ${dovecot.user}: [AUTHENTICATIONFAILED] Authentication failed.`,
    );
    expect(JSON.stringify(result)).not.toContain('wrong-password');
  });

  it('reports a missing folder at the select step', async () => {
    const result = await probeImapMailbox(mailboxWith({ folder: 'Support' }), dovecot.password);
    expect(result.ok).toBe(false);
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ['connect', true],
      ['login', true],
      ['select', false],
    ]);
    expect(result.steps[2]!.message).toMatch(
      /^the server has no folder "Support": Mailbox doesn't exist: Support/,
    );
  });
});
