// Inbound benchmark: `npm run bench -- inbound`.
// 1. A generated corpus of 10,000 messages (70% small text/HTML, 25% with 50–500 KB attachments, 5%
//    over 1 MB; 30% replies; 10% exact duplicates) through the raw-MIME API, from a separate process,
//    while the same Relaydesk process's workers consume: messages/s from the first POST until the
//    last message's ticket or comment is committed.
// 2. The same for small messages only.
// 3. Graph webhook ingress, 10 notifications per POST at 50 connections (workers paused), beside a
//    bare INSERT of the same rows (the ceiling), with the ratio.
import { randomBytes } from 'node:crypto';
import { startRelaydesk } from '../src/app.ts';
import { createLogger } from '../src/platform/logging.ts';
import { uuidv7 } from '../src/platform/ids.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  table,
  tempDir,
  verdict,
  runJsonChild,
} from './lib.ts';

const TOTAL = Number(process.env['BENCH_INBOUND_MESSAGES'] ?? 10_000);
const SMALL = Number(process.env['BENCH_INBOUND_SMALL'] ?? 3_000);

const child = (spec: object) => runJsonChild('inbound-load.ts', spec);

export async function benchInbound(): Promise<Record<string, unknown>> {
  heading(
    `inbound: ${TOTAL} generated messages through the raw-MIME API; ${SMALL} small ones; Graph webhook ingress`,
  );
  const dataDir = await tempDir('inbound');
  const port = await freePort();
  const config = benchConfig(dataDir, { port });
  const running = await startRelaydesk({ config, logger: createLogger(config.logLevel) });
  defer('stop relaydesk', () => running.stop());
  const url = `http://127.0.0.1:${port}`;
  const token = running.bootstrap!.adminToken.token;
  const tenantId = running.bootstrap!.tenant.id;
  const pool = running.db.pool;
  const post = async (p: string, body: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return (await res.json()) as any;
  };
  const mailbox = await post('/api/v1/mailboxes', { kind: 'mime', address: 'support@bench.test' });

  const finalCount = async () =>
    (
      await pool.query(
        "SELECT count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 AND status IN ('created','appended','duplicate','skipped','failed','quarantined')",
        [tenantId],
      )
    ).rows[0].n as number;
  const runCorpus = async (count: number, smallOnly: boolean, run: string) => {
    const before = await finalCount();
    const started = Date.now();
    const load = child({
      mode: 'mime',
      url,
      token,
      mailboxId: mailbox.id,
      count,
      concurrency: 16,
      smallOnly,
      run,
    });
    let done = before;
    while (done < before + count) {
      await new Promise((r) => setTimeout(r, 100));
      done = await finalCount();
      if (Date.now() - started > 15 * 60_000)
        throw new Error(`only ${done - before} of ${count} messages finished in 15 minutes`);
    }
    const seconds = (Date.now() - started) / 1000;
    const submitted = await load;
    return { seconds, perSecond: count / seconds, submitted };
  };

  const full = await runCorpus(TOTAL, false, `full-${randomBytes(3).toString('hex')}`);
  const outcomes = Object.fromEntries(
    (
      await pool.query(
        'SELECT status, count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 GROUP BY status',
        [tenantId],
      )
    ).rows.map((r) => [r.status, r.n]),
  );
  line(
    `full corpus: ${fmt(full.perSecond, 1)} messages/s end to end (${fmt(full.seconds, 1)} s; accepted at ${fmt(full.submitted.acceptedPerSecond, 1)}/s, ${fmt(full.submitted.megabytes)} MiB); outcomes ${JSON.stringify(outcomes)}`,
  );
  const small = await runCorpus(SMALL, true, `small-${randomBytes(3).toString('hex')}`);
  line(`small messages: ${fmt(small.perSecond, 1)} messages/s end to end (${fmt(small.seconds, 1)} s)`);

  // Graph webhook ingress with workers paused (the notifications name messages nobody will fetch).
  await running.queue.boss.offWork('inbound.process');
  const clientState = randomBytes(16).toString('hex');
  const graphBox = await post('/api/v1/mailboxes', { kind: 'graph', address: 'graph@bench.test' });
  await pool.query(
    `UPDATE mailboxes SET state = jsonb_build_object('graph', jsonb_build_object('clientState', $2::text)) WHERE id = $1`,
    [graphBox.id, clientState],
  );
  await child({ mode: 'graph', url, mailboxId: graphBox.id, clientState, connections: 50, duration: 3 }); // warm-up
  // Saturation: 50 connections, as fast as answers come.
  const graph = await child({
    mode: 'graph',
    url,
    mailboxId: graphBox.id,
    clientState,
    connections: 50,
    duration: 10,
  });
  // At the target rate: 120 POSTs/s = 1,200 notifications/s, 50 connections available.
  const graphAtRate = await child({
    mode: 'graph',
    url,
    mailboxId: graphBox.id,
    clientState,
    connections: 50,
    duration: 10,
    rate: 120,
  });

  // The ceiling: the same rows (10 inbound records and their 10 jobs per transaction, as a webhook
  // POST writes them) by bare INSERTs, 50 transactions in flight.
  const ceilingSeconds = 5;
  let inserted = 0;
  const stopAt = Date.now() + ceilingSeconds * 1000;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (Date.now() < stopAt) {
        const ids = Array.from({ length: 10 }, () => uuidv7());
        await pool.query(
          `WITH i AS (INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer)
                      SELECT $1, id, $2, 'graph', jsonb_build_object('messageId', id::text) FROM unnest($3::uuid[]) AS id)
           INSERT INTO pgboss.job (name, data)
           SELECT 'inbound.process', jsonb_build_object('tenantId', $1::text, 'inboundId', id::text) FROM unnest($3::uuid[]) AS id`,
          [tenantId, graphBox.id, ids],
        );
        inserted += 10;
      }
    }),
  );
  const ceiling = inserted / ceilingSeconds;
  await pool.query("DELETE FROM pgboss.job WHERE name = 'inbound.process' AND state = 'created'");

  const fullMet = full.perSecond >= 200;
  const smallMet = small.perSecond >= 500;
  const graphMet =
    graph.notificationsPerSecond >= 1000 &&
    graphAtRate.notificationsPerSecond >= 1000 &&
    graphAtRate.latencyMs.p99 <= 100 &&
    graph.non2xx + graphAtRate.non2xx === 0;
  table([
    ['measure', 'result', 'target', ''],
    [
      `${TOTAL} mixed messages, accepted → committed`,
      `${fmt(full.perSecond, 1)} msg/s`,
      '≥ 200',
      verdict(fullMet),
    ],
    [`${SMALL} small messages`, `${fmt(small.perSecond, 1)} msg/s`, '≥ 500', verdict(smallMet)],
    [
      'Graph webhook, saturated (10 per POST, 50 conns)',
      `${fmt(graph.notificationsPerSecond)} notif/s`,
      '≥ 1,000',
      verdict(graph.notificationsPerSecond >= 1000),
    ],
    ['  p50 / p99 when saturated', `${graph.latencyMs.p50} / ${graph.latencyMs.p99} ms`, '', ''],
    [
      'Graph webhook at 1,200 notif/s offered',
      `${fmt(graphAtRate.notificationsPerSecond)} notif/s`,
      '≥ 1,000',
      verdict(graphAtRate.notificationsPerSecond >= 1000),
    ],
    [
      '  p50 / p99 at that rate',
      `${graphAtRate.latencyMs.p50} / ${graphAtRate.latencyMs.p99} ms`,
      'p99 ≤ 100',
      verdict(graphAtRate.latencyMs.p99 <= 100),
    ],
    ['bare INSERT of the same rows, 10 per tx (ceiling)', `${fmt(ceiling)} rows/s`, '', ''],
    ['webhook ÷ ceiling', fmt(graph.notificationsPerSecond / ceiling, 2), '', ''],
  ]);
  return {
    benchmark: 'inbound',
    full: {
      messages: TOTAL,
      perSecond: Math.round(full.perSecond),
      seconds: full.seconds,
      acceptedPerSecond: Math.round(full.submitted.acceptedPerSecond),
      outcomes,
      met: fullMet,
    },
    small: { messages: SMALL, perSecond: Math.round(small.perSecond), met: smallMet },
    graphWebhook: {
      saturated: {
        notificationsPerSecond: Math.round(graph.notificationsPerSecond),
        p50Ms: graph.latencyMs.p50,
        p99Ms: graph.latencyMs.p99,
      },
      atRate: {
        notificationsPerSecond: Math.round(graphAtRate.notificationsPerSecond),
        p50Ms: graphAtRate.latencyMs.p50,
        p99Ms: graphAtRate.latencyMs.p99,
      },
      non2xx: graph.non2xx + graphAtRate.non2xx,
      met: graphMet,
    },
    bareInsertRowsPerSecond: Math.round(ceiling),
    webhookToCeiling: Number((graph.notificationsPerSecond / ceiling).toFixed(2)),
  };
}
