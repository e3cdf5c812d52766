// Nothing lost, nothing twice: a few hundred messages (with replies and exact duplicates) flow
// through real worker processes that are killed with SIGKILL again and again. At the end every
// message has exactly its outcome: one ticket per original, one comment per reply, a duplicate per
// repeat, and no message stuck or failed.
import { systemClock } from '../src/platform/clock.ts';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultRegistry } from '../src/app.ts';
import { acceptRawMessage } from '../src/modules/inbound/ingest.ts';
import { createMailbox } from '../src/modules/inbound/mailboxes.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';

const ORIGINALS = 200;
const REPLIES = 60;
const DUPLICATES = 60;
const secretKey = randomBytes(32);

let db: TestDatabase;

function message(i: number, opts: { inReplyTo?: number } = {}): Buffer {
  const attachment = i % 7 === 0;
  const lines = [
    `From: Customer ${i % 40} <customer${i % 40}@example.org>`,
    'To: support@crash.test',
    `Subject: ${opts.inReplyTo === undefined ? `Problem ${i}` : `Re: Problem ${opts.inReplyTo}`}`,
    `Message-ID: <crash-${i}@example.org>`,
    ...(opts.inReplyTo === undefined ? [] : [`In-Reply-To: <crash-${opts.inReplyTo}@example.org>`]),
    'MIME-Version: 1.0',
    ...(attachment
      ? [
          'Content-Type: multipart/mixed; boundary="b"',
          '',
          '--b',
          'Content-Type: text/plain',
          '',
          `Body ${i}`,
          '--b',
          'Content-Type: application/octet-stream; name="log.bin"',
          'Content-Transfer-Encoding: base64',
          '',
          randomBytes(20_000).toString('base64').replace(/.{76}/g, '$&\r\n'),
          '--b--',
        ]
      : ['Content-Type: text/plain', '', `Body ${i}`]),
  ];
  return Buffer.from(lines.join('\r\n'));
}

function startWorker(): ChildProcess {
  const env = {
    ...process.env,
    DATABASE_URL: db.url,
    RELAYDESK_SECRET_KEY: secretKey.toString('base64'),
    LOG_LEVEL: 'error',
    RELAYDESK_JOB_LEASE_SECONDS: '3',
  };
  return spawn(process.execPath, [path.resolve('bin/relaydesk.mjs'), 'start', '--role', 'worker'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );

beforeAll(async () => {
  db = await useTestDatabase();
});

describe('inbound under worker crashes', () => {
  it('processes every message exactly once while workers are SIGKILLed', { timeout: 240_000 }, async () => {
    const { tenant } = await createTenant(db.pool, { name: 'crash' });
    const mailbox = await withTenant(db.pool, tenant.id, (tx) =>
      createMailbox(tx, secretKey, { kind: 'mime', address: 'support@crash.test' }),
    );
    // The queues exactly as a worker with a 3-second lease makes them (jobs take the lease of their queue).
    const registry = defaultRegistry({
      pool: db.pool,
      secretKey,
      logger: createLogger('silent'),
      clock: systemClock,
      jobLeaseSeconds: 3,
    });
    const queue = new JobQueue({
      connectionString: db.url,
      logger: createLogger('silent'),
      registry,
      supervise: false,
      schedule: false,
      poolSize: 2,
    });
    await queue.start();
    await queue.ensureQueues();

    const submit = async (batch: Buffer[]) => {
      for (const raw of batch)
        await acceptRawMessage(db.pool, queue, { tenantId: tenant.id, mailboxId: mailbox.id, raw });
    };
    const finalCount = async () =>
      (
        await db.admin.query(
          "SELECT count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 AND status IN ('created', 'appended', 'duplicate', 'skipped', 'failed', 'quarantined')",
          [tenant.id],
        )
      ).rows[0].n as number;
    let kills = 0;
    /** Workers that are SIGKILLed mid-flow, then one that finishes (taking over the killed ones' jobs after their lease). */
    const runWithCrashes = async (total: number) => {
      for (let round = 0; round < 4 && (await finalCount()) < total; round++) {
        const worker = startWorker();
        const before = await finalCount();
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline && (await finalCount()) < Math.min(before + 15, total))
          await new Promise((r) => setTimeout(r, 50));
        worker.kill('SIGKILL');
        await exited(worker);
        kills++;
      }
      const last = startWorker();
      const deadline = Date.now() + 90_000;
      while ((await finalCount()) < total && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      last.kill('SIGTERM');
      await exited(last);
    };

    // Phase 1: originals, with exact duplicates of some of them in the same flow.
    const originals = [...Array(ORIGINALS).keys()].map((i) => message(i));
    const duplicates = [...Array(DUPLICATES).keys()].map((d) => originals[d * 3]!);
    await submit([...originals, ...duplicates]);
    await runWithCrashes(ORIGINALS + DUPLICATES);
    // Phase 2: replies to earlier originals (replies come after what they answer, as mail does).
    await submit([...Array(REPLIES).keys()].map((r) => message(ORIGINALS + r, { inReplyTo: r * 3 })));
    await runWithCrashes(ORIGINALS + DUPLICATES + REPLIES);
    await queue.stop({ graceful: false });
    expect(kills).toBeGreaterThanOrEqual(3);

    const { rows: byStatus } = await db.admin.query(
      'SELECT status, count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 GROUP BY status ORDER BY status',
      [tenant.id],
    );
    expect(Object.fromEntries(byStatus.map((r) => [r.status, r.n]))).toEqual({
      created: ORIGINALS,
      appended: REPLIES,
      duplicate: DUPLICATES,
    });
    const counts = (
      await db.admin.query(
        `SELECT (SELECT count(*)::int FROM tickets WHERE tenant_id = $1) AS tickets,
                (SELECT count(*)::int FROM ticket_messages WHERE tenant_id = $1) AS messages,
                (SELECT count(*)::int FROM message_keys WHERE tenant_id = $1) AS keys,
                (SELECT count(*)::int FROM attachments WHERE tenant_id = $1) AS attachments`,
        [tenant.id],
      )
    ).rows[0];
    const withAttachment = [...Array(ORIGINALS + REPLIES).keys()].filter((i) => i % 7 === 0).length;
    expect(counts).toEqual({
      tickets: ORIGINALS,
      messages: ORIGINALS + REPLIES,
      keys: ORIGINALS + REPLIES,
      attachments: withAttachment,
    });
    // Every reply landed on the ticket of the message it answers.
    const { rows: misplaced } = await db.admin.query(
      `SELECT m.mail_subject, t.subject FROM ticket_messages m JOIN tickets t ON t.tenant_id = m.tenant_id AND t.id = m.ticket_id
        WHERE m.tenant_id = $1 AND m.mail_subject LIKE 'Re: %' AND m.mail_subject <> 'Re: ' || t.subject`,
      [tenant.id],
    );
    expect(misplaced).toEqual([]);
  });
});
