// The bare half of the notification benchmark (bench/notify.ts): the webhook deliveries of the drain
// sent again without Relaydesk's events, ledger and queue: each body built and signed by the
// product's own functions (webhookBody, signedHeaders) and POSTed by its postTo (a new connection
// per request, as the channel does), as many in flight as the deliver workers run at most.
import type { NotificationContent } from '../src/modules/notify/channel.ts';
import { webhookBody } from '../src/modules/webhooks/channel.ts';
import { postTo } from '../src/modules/webhooks/post.ts';
import { signedHeaders } from '../src/modules/webhooks/signing.ts';
import type { Pool } from '../src/platform/db/pool.ts';
import { fmt, waitForQuietMachine } from './lib.ts';
import { rateOf } from './notify-figures.ts';
import type { Collected } from './notify-peer.ts';
import { coresText, cpuMeter } from './outbound-figures.ts';

export interface BarePeer {
  pid: number;
  collect(): Promise<Collected>;
}

/** The webhook attempts sent since `since`, each POSTed once more to the receiver of its endpoint. */
export async function bareWebhooks(input: {
  owner: Pool;
  peer: BarePeer;
  pgPid: number | undefined;
  since: number;
  /** Endpoint id → its receiver's URL and the endpoint's secret. */
  endpoints: Map<string, { url: string; secret: string }>;
  concurrency: number;
}) {
  const { owner, peer, pgPid } = input;
  const { rows } = await owner.query<{
    destination: string;
    notification_id: string;
    content: NotificationContent;
  }>(
    `SELECT destination, notification_id, payload->'content' AS content FROM deliveries
      WHERE purpose = 'notification' AND channel = 'webhook' AND status = 'sent'
        AND created_at >= to_timestamp($1::float8 / 1000)`,
    [input.since],
  );
  await peer.collect();
  await waitForQuietMachine(pgPid, 15);
  const meter = await cpuMeter(pgPid, peer.pid);
  const startedAt = Date.now();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: input.concurrency }, async () => {
      for (let i = next++; i < rows.length; i = next++) {
        const row = rows[i]!;
        const endpoint = input.endpoints.get(row.destination)!;
        const body = webhookBody(row.content);
        const headers = {
          'content-type': 'application/json',
          'user-agent': 'Relaydesk-Webhooks/1',
          ...signedHeaders({
            id: row.notification_id,
            timestamp: Math.floor(Date.now() / 1000),
            body,
            secrets: [endpoint.secret],
          }),
        };
        try {
          const res = await postTo({
            url: new URL(endpoint.url),
            address: { address: '127.0.0.1', family: 4 },
            headers,
            body,
            signal: AbortSignal.timeout(15_000),
          });
          if (res.status !== 200) failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const cores = await meter();
  const collected = await peer.collect();
  const rate = rateOf(
    collected.webhooks.map((w) => w.at),
    startedAt,
  );
  const cpuMs = (cores.server * rate.seconds * 1000) / Math.max(1, collected.webhooks.length);
  return {
    sustained: rate.sustained,
    summary:
      `${fmt(rate.sustained, 1)} deliveries/s sustained, ${fmt(rate.overall, 1)} overall (${fmt(collected.webhooks.length)} of ${fmt(rows.length)} accepted ` +
      `in ${fmt(rate.seconds, 1)} s, ${fmt(failed)} failed, ${fmt(collected.webhookDuplicates)} duplicates); ` +
      `sender CPU ${fmt(cpuMs, 2)} ms per delivery; cores: ${coresText(cores)}`,
    json: {
      sent: rows.length,
      accepted: collected.webhooks.length,
      failed,
      overallPerSecond: Number(rate.overall.toFixed(1)),
      sustainedPerSecond: Number(rate.sustained.toFixed(1)),
      senderCpuMsPerDelivery: Number(cpuMs.toFixed(2)),
      cores,
    },
  };
}
