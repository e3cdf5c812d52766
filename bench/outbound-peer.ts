// The world outside Relaydesk for the outbound benchmark (bench/outbound.ts), in a process of its
// own so that it does not share Relaydesk's event loop: the SMTP server the mail goes to (the SMTP
// simulator, cleartext, no AUTH) and the agents posting replies.
//   node bench/outbound-peer.ts
// Prints {"ready":true,"port":<smtp port>}, then answers each command line on stdin (JSON) with one
// JSON line, in order:
//   {"cmd":"post", url, targets, count, text, rate?|concurrency?}  POST /api/v1/tickets/:id/messages
//       `count` times, reply i to targets[i % targets.length]; with `rate` evenly paced (open loop:
//       reply i is due at start + i / rate whether or not earlier ones were answered), otherwise
//       `concurrency` in flight. Answers what each POST got back.
//   {"cmd":"received"}  how many mails the simulator took since it started, and its connections.
//   {"cmd":"collect"}   the Message-ID, arrival time (epoch ms) and size of each mail held, then forgets them.
import http from 'node:http';
import readline from 'node:readline';
import { startSmtpSimulator } from '../simulators/smtp.ts';
import { cpuSeconds, driveRequests } from './lib.ts';

export interface PostTarget {
  token: string;
  ticketId: string;
}

export interface PostCommand {
  cmd: 'post';
  url: string;
  targets: PostTarget[];
  count: number;
  text: string;
  /** Replies per second, evenly paced; omit to keep `concurrency` in flight. */
  rate?: number;
  concurrency?: number;
}

/** One POST's outcome. Times are epoch ms (Date.now() of this process; same host as the server). */
export interface PostOutcome {
  status: number;
  /** When the reply was due (paced) or sent (closed loop). */
  dueAt: number;
  /** When its answer had been read. */
  answeredAt: number;
  /** The reply's Message-ID (without angle brackets), its delivery attempt, the message's createdAt. */
  messageId: string | null;
  deliveryId: string | null;
  createdAt: string | null;
}

export interface PostResult {
  outcomes: PostOutcome[];
  /** Requests that failed without an answer. */
  errors: number;
  /** Paced: POSTs per second from the first send to the last; closed loop: answered per second. */
  perSecond: number;
  /** Paced: how late the latest send left after it was due. */
  maxSendLagMs: number;
  cpuSeconds: number;
}

export interface Received {
  messageId: string;
  at: number;
  size: number;
}

function postJson(
  agent: http.Agent,
  url: string,
  token: string,
  body: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function post(command: PostCommand): Promise<PostResult> {
  const cpuAtStart = cpuSeconds();
  const body = JSON.stringify({ visibility: 'public', text: command.text });
  const outcomes: PostOutcome[] = [];
  let errors = 0;
  const one = async (i: number, agent: http.Agent, dueAt: number) => {
    const target = command.targets[i % command.targets.length]!;
    try {
      const answer = await postJson(
        agent,
        `${command.url}/api/v1/tickets/${target.ticketId}/messages`,
        target.token,
        body,
      );
      const answeredAt = Date.now();
      const message = answer.status === 201 ? (JSON.parse(answer.body) as Record<string, any>) : undefined;
      outcomes.push({
        status: answer.status,
        dueAt,
        answeredAt,
        messageId: message?.['messageId'] ?? null,
        deliveryId: message?.['delivery']?.id ?? null,
        createdAt: message?.['createdAt'] ?? null,
      });
    } catch {
      errors++;
    }
  };
  const driven = await driveRequests(command, one);
  return { outcomes, errors, ...driven, cpuSeconds: cpuSeconds() - cpuAtStart };
}

async function main(): Promise<void> {
  const smtp = await startSmtpSimulator({ tls: 'none' });
  const write = (value: unknown) =>
    new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(value)}\n`, () => resolve()));
  await write({ ready: true, port: smtp.port });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const text of lines) {
    if (text.trim() === '') continue;
    const command = JSON.parse(text) as { cmd: string };
    if (command.cmd === 'post') await write(await post(command as PostCommand));
    else if (command.cmd === 'received') {
      const counts = smtp.counts();
      await write({ messages: counts.messages, connections: counts.connections, rejected: counts.rejected });
    } else if (command.cmd === 'collect') {
      const received: Received[] = smtp.messages().map((m) => ({
        messageId: (m.messageId ?? '').replace(/^<|>$/g, ''),
        at: m.receivedAt.getTime(),
        size: m.raw.length,
      }));
      smtp.clear();
      await write({ received });
    } else await write({ error: `unknown command ${command.cmd}` });
  }
  await smtp.close();
}

main().catch((err) => {
  process.stderr.write(`outbound-peer: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
