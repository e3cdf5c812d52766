// The bare-nodemailer half of the outbound benchmark (bench/outbound.ts): the mails without
// Relaydesk's ledger and queue, what the transport and the simulator manage by themselves.
import nodemailer from 'nodemailer';
import { composeMail } from '../src/modules/outbound/compose.ts';
import type { EmailPayload } from '../src/modules/outbound/model.ts';
import type { Pool } from '../src/platform/db/pool.ts';
import { defer, fmt, waitForQuietMachine } from './lib.ts';
import { coresText, cpuMeter, rateOf } from './outbound-figures.ts';
import type { Received } from './outbound-peer.ts';

/** The peer process as the bare run uses it. */
export interface BarePeer {
  pid: number;
  port: number;
  collect(): Promise<Received[]>;
  received(): Promise<{ messages: number; connections: number }>;
}

/**
 * The same mails without Relaydesk's ledger and queue: the payloads of the latest `mails` replies
 * sent, each composed by the product's composeMail and handed to one pooled nodemailer transport
 * with the options of a mailbox's, 100 in flight.
 */
export async function bareNodemailer(input: {
  owner: Pool;
  peer: BarePeer;
  pgPid: number | undefined;
  mails: number;
  /** The maxConnections of a mailbox's pool. */
  maxConnections: number;
}) {
  const { owner, peer, pgPid } = input;
  // The last drain's mails, each composed and sent once more.
  const { rows } = await owner.query<{ payload: EmailPayload; rfc_message_id: string }>(
    "SELECT payload, rfc_message_id FROM deliveries WHERE status = 'sent' ORDER BY created_at DESC LIMIT $1",
    [input.mails],
  );
  const transporter = nodemailer.createTransport({
    pool: true,
    host: '127.0.0.1',
    port: peer.port,
    ignoreTLS: true,
    maxConnections: input.maxConnections,
    maxMessages: 1000,
  });
  defer('close the bare transport', () => transporter.close());
  await peer.collect();
  await waitForQuietMachine(pgPid, 15);
  const base = await peer.received();
  const meter = await cpuMeter(pgPid, peer.pid);
  const startedAt = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      for (let i = next++; i < input.mails; i = next++) {
        const { payload, rfc_message_id: messageId } = rows[i % rows.length]!;
        const raw = await composeMail(payload, {
          // The reply's own Message-ID: the same bytes (the simulator does not deduplicate).
          messageId,
          date: new Date(),
          attachments: [],
          keepBcc: false,
        });
        await transporter.sendMail({
          envelope: { from: payload.from.address, to: payload.to.map((a) => a.address) },
          raw,
        });
      }
    }),
  );
  const cores = await meter();
  const after = await peer.received();
  const mails = await peer.collect();
  transporter.close();
  const rate = rateOf(mails, startedAt);
  const meanSize = mails.reduce((n, m) => n + m.size, 0) / Math.max(1, mails.length);
  const connections = after.connections - base.connections;
  const cpuMs = (cores.server * rate.seconds * 1000) / Math.max(1, mails.length);
  return {
    sustained: rate.sustained,
    summary:
      `${fmt(rate.sustained, 1)} mails/s sustained, ${fmt(rate.overall, 1)} overall (${fmt(mails.length)} mails of ${fmt(meanSize)} bytes ` +
      `in ${fmt(rate.seconds, 1)} s, ${fmt(connections)} connections); client CPU ${fmt(cpuMs, 2)} ms per mail; cores: ${coresText(cores)}`,
    json: {
      mails: mails.length,
      meanBytes: Math.round(meanSize),
      overallPerSecond: Number(rate.overall.toFixed(1)),
      sustainedPerSecond: Number(rate.sustained.toFixed(1)),
      connections,
      clientCpuMsPerMail: Number(cpuMs.toFixed(2)),
      cores,
    },
  };
}
