// The world outside Relaydesk for the notification benchmark (bench/notify.ts), in a process of its
// own so that it does not share Relaydesk's event loop: the receivers the notifications go to (one
// Standard Webhooks receiver per endpoint, the Slack Web API simulator, the Bot Framework simulator)
// and the agents whose ticket updates record the events.
//   node bench/notify-peer.ts '{"receivers": <webhook receivers to start>}'
// Prints {"ready":true, ...} with the simulators' addresses, then answers each command line on stdin
// (JSON) with one JSON line, in order:
//   {"cmd":"secrets", secrets}          receiver i verifies with secrets[i] (the endpoint's, once created)
//   {"cmd":"slackChannels", ids}        channels the bot is a member of
//   {"cmd":"bots", count}               registers `count` more bots (one per tenant): their app ids and passwords
//   {"cmd":"teamsChannel", endpoint, appId, conversationId}   a signed activity from a Teams channel to
//       the bot's endpoint, so that Relaydesk learns the conversation (its reference)
//   {"cmd":"signedActivities", endpoint, senders: [{appId, userId}], forge?}   one signed `typing`
//       activity per sender (as the connector sends them), for the load generator
//   {"cmd":"patch", url, targets, count, rate?|concurrency?}   PATCH /api/v1/tickets/:id `count`
//       times, update i to targets[i % targets.length], each flipping its ticket's status (open ↔
//       pending: every update is a change and records `ticket.status_changed`); paced (open loop)
//       or `concurrency` in flight, as outbound-peer.ts posts replies.
//   {"cmd":"received"}                  deliveries accepted so far (webhooks, Slack posts, Teams sends)
//   {"cmd":"collect"}                   what each receiver accepted since the last collect, then forgets it
import http from 'node:http';
import readline from 'node:readline';
import { type BotFrameworkSimulator, startBotFrameworkSimulator } from '../simulators/botframework.ts';
import { startSlackSimulator } from '../simulators/slack.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../simulators/webhook-receiver.ts';
import { cpuSeconds, driveRequests } from './lib.ts';

export interface PatchTarget {
  token: string;
  ticketId: string;
}

export interface PatchCommand {
  cmd: 'patch';
  url: string;
  targets: PatchTarget[];
  count: number;
  /** Updates per second, evenly paced; omit to keep `concurrency` in flight. */
  rate?: number;
  concurrency?: number;
}

export interface PatchOutcome {
  status: number;
  /** When the update was due (paced) or sent (closed loop), epoch ms. */
  dueAt: number;
  answeredAt: number;
}

export interface PatchResult {
  outcomes: PatchOutcome[];
  errors: number;
  perSecond: number;
  maxSendLagMs: number;
  cpuSeconds: number;
}

/** One webhook accepted (signature verified, answered 200): its first arrival. */
export interface WebhookArrival {
  /** webhook-id: the notification's id. */
  id: string;
  at: number;
  /** The body's `timestamp`: the event's occurred_at. */
  occurredAt: number;
  receiver: number;
}

export interface Collected {
  webhooks: WebhookArrival[];
  /** Accepted more than once (the same webhook-id at one receiver). */
  webhookDuplicates: number;
  /** Requests the receivers refused (signature, timestamp). */
  webhookRefused: number;
  /** Slack posts: `${channel}/${ts}` as the ledger records them, and arrival. */
  slack: { key: string; at: number }[];
  /** Teams sends: the sequence number the simulator's activity id ends with, conversation and arrival. */
  teams: { seq: number; conversationId: string; at: number }[];
}

function patchJson(agent: http.Agent, url: string, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'PATCH',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Each ticket's updates so far that took: the next one sets the other status. */
const flips = new Map<string, number>();

async function patch(command: PatchCommand): Promise<PatchResult> {
  const cpuAtStart = cpuSeconds();
  const outcomes: PatchOutcome[] = [];
  let errors = 0;
  const one = async (i: number, agent: http.Agent, dueAt: number) => {
    const target = command.targets[i % command.targets.length]!;
    const n = flips.get(target.ticketId) ?? 0;
    // Reserved before the request: two updates of one ticket in flight still alternate.
    flips.set(target.ticketId, n + 1);
    try {
      const status = await patchJson(
        agent,
        `${command.url}/api/v1/tickets/${target.ticketId}`,
        target.token,
        JSON.stringify({ status: n % 2 === 0 ? 'open' : 'pending' }),
      );
      outcomes.push({ status, dueAt, answeredAt: Date.now() });
    } catch {
      errors++;
    }
  };
  const driven = await driveRequests(command, one);
  return { outcomes, errors, ...driven, cpuSeconds: cpuSeconds() - cpuAtStart };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { receivers: number };
  const receivers: WebhookReceiver[] = [];
  for (let i = 0; i < spec.receivers; i++) receivers.push(await startWebhookReceiver());
  const slack = await startSlackSimulator();
  const bf: BotFrameworkSimulator = await startBotFrameworkSimulator();
  // Teams sends are read from the simulator's log, which is never cleared: an activity id the
  // simulator answered ends with the log's length at the time, which identifies the send.
  let teamsSeen = 0;
  const write = (value: unknown) =>
    new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(value)}\n`, () => resolve()));
  await write({
    ready: true,
    receivers: receivers.map((r) => r.url),
    slack: { url: slack.url, apiBaseUrl: slack.apiBaseUrl, botToken: slack.botToken },
    botframework: {
      url: bf.url,
      tokenUrl: bf.tokenUrl,
      openIdMetadataUrl: bf.openIdMetadataUrl,
      bot: bf.bot,
    },
  });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const text of lines) {
    if (text.trim() === '') continue;
    const command = JSON.parse(text) as Record<string, any> & { cmd: string };
    switch (command.cmd) {
      case 'secrets':
        (command['secrets'] as string[]).forEach((s, i) => receivers[i]!.setSecrets([s]));
        await write({ ok: true });
        break;
      case 'slackChannels':
        for (const id of command['ids'] as string[]) slack.addChannel({ id, name: id.toLowerCase() });
        await write({ ok: true });
        break;
      case 'bots':
        await write({ bots: Array.from({ length: command['count'] as number }, () => bf.addBot()) });
        break;
      case 'teamsChannel': {
        const user = bf.user();
        const activity = bf.message(user, '', {
          appId: command['appId'],
          conversation: {
            conversationType: 'channel',
            id: command['conversationId'],
            tenantId: bf.entraTenantId,
          },
          type: 'conversationUpdate',
        });
        await write(await bf.deliver(command['endpoint'], activity, { appId: command['appId'] }));
        break;
      }
      case 'signedActivities': {
        const out = [];
        for (const s of command['senders'] as { appId: string; userId: string }[]) {
          const activity = bf.message(bf.user({ id: s.userId }), '', { appId: s.appId, type: 'typing' });
          delete activity['text'];
          const headers = await bf.signedHeaders(activity, {
            appId: s.appId,
            ...(command['forge'] ? { forge: command['forge'] } : {}),
          });
          out.push({ headers, body: JSON.stringify(activity) });
        }
        await write({ requests: out, jwksRequests: bf.jwksRequests() });
        break;
      }
      case 'jwksRequests':
        await write({ jwksRequests: bf.jwksRequests() });
        break;
      case 'patch':
        await write(await patch(command as unknown as PatchCommand));
        break;
      case 'received': {
        let webhooks = 0;
        for (const r of receivers) webhooks += r.counts().size;
        await write({ webhooks, slack: slack.posts().length, teams: bf.sent().length - teamsSeen });
        break;
      }
      case 'collect': {
        const collected: Collected = {
          webhooks: [],
          webhookDuplicates: 0,
          webhookRefused: 0,
          slack: [],
          teams: [],
        };
        receivers.forEach((r, index) => {
          const seen = new Set<string>();
          for (const req of r.requests()) {
            if (req.status !== 200 || !req.id) {
              collected.webhookRefused++;
              continue;
            }
            if (seen.has(req.id)) {
              collected.webhookDuplicates++;
              continue;
            }
            seen.add(req.id);
            const body = JSON.parse(req.body) as { timestamp: string };
            collected.webhooks.push({
              id: req.id,
              at: req.at.getTime(),
              occurredAt: Date.parse(body.timestamp),
              receiver: index,
            });
          }
          r.clear();
        });
        collected.slack = slack.posts().map((p) => ({ key: `${p.channel}/${p.ts}`, at: p.at.getTime() }));
        slack.clearPosts();
        const sent = bf.sent();
        collected.teams = sent
          .slice(teamsSeen)
          .map((s, i) => ({ seq: teamsSeen + i + 1, conversationId: s.conversationId, at: s.at.getTime() }));
        teamsSeen = sent.length;
        await write(collected);
        break;
      }
      default:
        await write({ error: `unknown command ${command.cmd}` });
    }
  }
  for (const r of receivers) await r.close();
  await slack.close();
  await bf.close();
}

main().catch((err) => {
  process.stderr.write(`notify-peer: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
