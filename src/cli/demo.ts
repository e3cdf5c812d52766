// `relaydesk demo`: Relaydesk on its own data directory with the Microsoft Graph and Gmail
// simulators beside it, a demo tenant with a Graph, a Gmail and a raw-MIME mailbox, and a handful of
// messages sent through the real ingress paths (Graph change notification, Gmail Pub/Sub push with a
// signed OIDC token, the raw-MIME API). Then notifications: the tenant's Teams bot and Slack
// workspace point at the Bot Framework and Slack simulators, an urgent ticket breaches a short SLA
// policy, the breach reaches Teams (Adaptive Card), Slack (Block Kit) and a signed webhook, and the
// agent changes the ticket from the card in Teams (an Action.Execute invoke). It prints what became
// of each step and how to look around, then runs until Ctrl-C. Nothing leaves this machine: the
// simulators listen on loopback.
//
// It listens on a free port unless --port says otherwise (a server from the quick start may well be
// on 8080), and a later run on the same data directory reuses the demo tenant, so running it again
// adds tickets, not tenants.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type Activity,
  type BotFrameworkSimulator,
  startBotFrameworkSimulator,
} from '../../simulators/botframework.ts';
import { type GmailSimulator, startGmailSimulator } from '../../simulators/gmail.ts';
import { type GraphSimulator, startGraphSimulator } from '../../simulators/graph.ts';
import { type SlackSimulator, startSlackSimulator } from '../../simulators/slack.ts';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../simulators/webhook-receiver.ts';
import { startRelaydesk, type RunningRelaydesk } from '../app.ts';
import { createTenant, findTenant } from '../modules/tenants/service.ts';
import { mintToken, tokenAuthenticator } from '../modules/tokens/service.ts';
import { systemClock } from '../platform/clock.ts';
import type { Config } from '../platform/config.ts';
import type { Pool } from '../platform/db/pool.ts';
import { withTenant } from '../platform/db/tx.ts';
import { AppError } from '../platform/errors.ts';
import { createLogger } from '../platform/logging.ts';
import { firstAgentId } from '../modules/people/service.ts';

const GRAPH_USER = 'helpdesk@contoso.demo';
const GMAIL_USER = 'support@fabrikam.demo';
const MIME_ADDRESS = 'inbox@relaydesk.demo';
const PUSH_AUDIENCE = 'https://relaydesk.demo/hooks/gmail';
const PUSH_ACCOUNT = 'pubsub-push@relaydesk-demo.iam.gserviceaccount.com';
const DEMO_TENANT = 'Relaydesk demo';
// The notification part: an agent reachable in Teams and Slack, a Slack channel for breaches, and an
// SLA policy short enough that a ticket breaches while the demo runs. Fixed ids, so that a later run
// finds them again instead of adding more.
const AGENT_EMAIL = 'megan@relaydesk.demo';
const AGENT_NAME = 'Megan Bowen';
const TEAMS_USER = {
  id: '29:relaydesk-demo-megan',
  name: AGENT_NAME,
  aadObjectId: '6d1c6e0a-5a0e-4f7e-9f52-3b1f2a8c4d01',
};
const SLACK_USER = 'U0DEMOMEGAN';
const SLACK_CHANNEL = { id: 'C0DEMODESK', name: 'service-desk' };
const WEBHOOK_DESCRIPTION = 'relaydesk demo receiver';
/** The first-response target of urgent tickets in the demo (calendar time): short, so the breach is seen. */
const BREACH_SECONDS = 5;
const DEMO_POLICY = `Relaydesk demo: urgent tickets answered within ${BREACH_SECONDS} seconds`;

interface DemoTenant {
  tenantId: string;
  name: string;
  /** An admin token of the demo tenant (kept in the data directory, mode 0600, for later runs). */
  token: string;
  createdNow: boolean;
}

/**
 * The demo tenant and an admin token for it: created on the first run, found again on later runs on
 * the same data directory (through <data dir>/demo-tenant.json, or by its name if that file is gone
 * or its token was revoked; then a new token is minted for the tenant's first agent).
 */
async function demoTenant(pool: Pool, dataDir: string): Promise<DemoTenant> {
  const file = path.join(dataDir, 'demo-tenant.json');
  const saved = (await readFile(file, 'utf8').then(
    (text) => JSON.parse(text) as { tenantId?: string; token?: string },
    () => undefined,
  )) ?? { tenantId: undefined, token: undefined };
  if (saved.tenantId && saved.token) {
    const principal = await tokenAuthenticator({ pool, clock: systemClock })(saved.token).catch(
      () => undefined,
    );
    if (principal?.tenantId === saved.tenantId) {
      return { tenantId: saved.tenantId, name: DEMO_TENANT, token: saved.token, createdNow: false };
    }
  }
  const existing = await findTenant(pool, DEMO_TENANT).catch((err: unknown) => {
    if (err instanceof AppError && err.code === 'not_found') return undefined;
    throw err;
  });
  let found: DemoTenant;
  if (existing) {
    const minted = await withTenant(pool, existing.id, async (tx) => {
      const personId = await firstAgentId(tx);
      if (!personId) throw new Error(`the demo tenant ${existing.id} has no agent to own a token`);
      return mintToken(tx, { personId, role: 'admin', label: 'relaydesk demo', actor: 'system:demo' });
    });
    found = { tenantId: existing.id, name: existing.name, token: minted.token, createdNow: false };
  } else {
    const created = await createTenant(pool, { name: DEMO_TENANT });
    found = {
      tenantId: created.tenant.id,
      name: created.tenant.name,
      token: created.adminToken.token,
      createdNow: true,
    };
  }
  await writeFile(file, `${JSON.stringify({ tenantId: found.tenantId, token: found.token })}\n`, {
    mode: 0o600,
  });
  return found;
}

interface Sample {
  label: string;
  via: 'graph' | 'gmail' | 'mime';
  raw: Buffer;
}

function mail(headers: Record<string, string>, body: string): Buffer {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(
    [...lines, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n'),
  );
}

function samples(): Sample[] {
  const tag = randomBytes(4).toString('hex');
  const first = `<vpn-${tag}@customer.demo>`;
  const date = new Date().toUTCString();
  const vpn = mail(
    {
      From: 'Dana Whitfield <dana@customer.demo>',
      To: GRAPH_USER,
      Subject: 'VPN drops every few minutes',
      Date: date,
      'Message-ID': first,
    },
    'Since this morning the VPN disconnects every few minutes. Can someone take a look?',
  );
  return [
    { label: 'a new request (Graph)', via: 'graph', raw: vpn },
    {
      label: 'the reply to it (Graph)',
      via: 'graph',
      raw: mail(
        {
          From: 'Dana Whitfield <dana@customer.demo>',
          To: GRAPH_USER,
          Subject: 'Re: VPN drops every few minutes',
          Date: date,
          'Message-ID': `<vpn-reply-${tag}@customer.demo>`,
          'In-Reply-To': first,
          References: first,
        },
        'It happens on the office Wi-Fi too.',
      ),
    },
    { label: 'the same request delivered twice (Graph)', via: 'graph', raw: vpn },
    {
      label: 'an out-of-office reply (Graph)',
      via: 'graph',
      raw: mail(
        {
          From: 'Sam Ortega <sam@customer.demo>',
          To: GRAPH_USER,
          Subject: 'Automatic reply: VPN drops every few minutes',
          Date: date,
          'Message-ID': `<ooo-${tag}@customer.demo>`,
          'Auto-Submitted': 'auto-replied',
        },
        'I am out of the office until Monday.',
      ),
    },
    {
      label: 'a new request (Gmail push)',
      via: 'gmail',
      raw: mail(
        {
          From: 'Lee Park <lee@partner.demo>',
          To: GMAIL_USER,
          Subject: 'New starter needs a laptop',
          Date: date,
          'Message-ID': `<laptop-${tag}@partner.demo>`,
        },
        'Priya starts on the 1st and needs a laptop and an account.',
      ),
    },
    {
      label: 'a new request (raw MIME API)',
      via: 'mime',
      raw: mail(
        {
          From: 'Ola Nordmann <ola@customer.demo>',
          To: MIME_ADDRESS,
          Subject: 'Printer on floor 3 is offline',
          Date: date,
          'Message-ID': `<printer-${tag}@customer.demo>`,
        },
        'The printer by the lifts shows "offline" on every laptop.',
      ),
    },
  ];
}

/** One API call; answers the status and the parsed body. */
async function call(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
}

/** One API call that must succeed (2xx); answers the parsed body. */
async function api(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await call(base, token, method, path, body);
  if (res.status < 200 || res.status > 299)
    throw new Error(`${method} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
  return res.body;
}

const pending = (status: string) => status === 'queued' || status === 'processing';

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, seconds = 30): Promise<T> {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface NotificationSimulators {
  bot: BotFrameworkSimulator;
  slack: SlackSimulator;
  receiver: WebhookReceiver;
}

type Json = Record<string, any>;

const cardOf = (activity: Activity): Json | undefined => activity['attachments']?.[0]?.content;
const cardTitle = (card: Json | undefined): string => String(card?.['body']?.[0]?.['text'] ?? '');

/**
 * The notification story: connect the Teams bot and Slack to the simulators, give an agent a Teams
 * conversation (her first message to the bot) and a Slack identity, let an urgent ticket assigned to
 * her breach its SLA policy, show the breach arriving in Teams (Adaptive Card), Slack (Block Kit) and
 * a signed webhook, then have her change the ticket's status from the card in Teams.
 */
async function notificationStory(
  base: string,
  token: string,
  sims: NotificationSimulators,
  out: (line: string) => void,
): Promise<void> {
  const { bot, slack, receiver } = sims;
  const line = (what: string, detail: string) => out(`  ${what.padEnd(42)} ${detail}`);
  out('');
  out('Notifications: an SLA breach reaches Teams and Slack, and a Teams action changes the ticket');
  out(
    `  (Bot Framework simulator ${bot.url}, Slack simulator ${slack.url}, webhook receiver ${receiver.url})`,
  );

  // The integrations, against the simulators (their origins are allowed for this run).
  await api(base, token, 'PUT', '/api/v1/integrations/teams', {
    appId: bot.bot.appId,
    appPassword: bot.bot.appPassword,
    tokenUrl: bot.tokenUrl,
    openIdMetadataUrl: bot.openIdMetadataUrl,
  });
  slack.addUser(SLACK_USER);
  slack.addChannel({ ...SLACK_CHANNEL, botIsMember: true });
  const workspace = await api(base, token, 'PUT', '/api/v1/integrations/slack', {
    botToken: slack.botToken,
    apiBaseUrl: slack.apiBaseUrl,
  });
  line('Teams bot connected', `PUT /api/v1/integrations/teams (app ${bot.bot.appId})`);
  line(
    'Slack connected',
    `PUT /api/v1/integrations/slack (workspace ${workspace.teamName}, ${workspace.tokenHint})`,
  );

  // The agent: Teams first, Slack when Teams cannot reach her.
  const settings = { role: 'agent', preferredChannel: 'teams', notifications: { fallback: ['slack'] } };
  const known = await call(
    base,
    token,
    'GET',
    `/api/v1/people/resolve?email=${encodeURIComponent(AGENT_EMAIL)}`,
  );
  const agent =
    known.status === 200
      ? await api(base, token, 'PATCH', `/api/v1/people/${known.body.id}`, settings)
      : await api(base, token, 'POST', '/api/v1/people', {
          displayName: AGENT_NAME,
          kind: 'agent',
          email: AGENT_EMAIL,
          ...settings,
        });
  for (const identity of [
    { kind: 'teams', externalId: TEAMS_USER.id },
    { kind: 'slack', externalId: SLACK_USER },
  ])
    if (
      !(agent.identities as { kind: string; externalId: string }[]).some(
        (i) => i.kind === identity.kind && i.externalId === identity.externalId,
      )
    )
      await api(base, token, 'POST', `/api/v1/people/${agent.id}/identities`, identity);
  line(
    `${AGENT_NAME} (agent)`,
    `preferredChannel teams, notifications.fallback [slack]; identities teams ${TEAMS_USER.id}, slack ${SLACK_USER}`,
  );

  // Her first message to the bot: the connector's signed activity at /hooks/teams, which keeps the
  // conversation reference proactive sends need. The bot answers with what it can do.
  const teamsUser = bot.user(TEAMS_USER);
  const hello = bot.message(teamsUser, 'hi');
  const greeted = await bot.deliver(`${base}/hooks/teams`, hello);
  if (greeted.status !== 200) throw new Error(`POST /hooks/teams answered ${greeted.status}`);
  const answer = bot.sent().find((s) => s.replyToId === hello['id']);
  line(
    `${AGENT_NAME.split(' ')[0]} says "hi" to the bot in Teams`,
    `POST /hooks/teams 200: conversation reference kept${answer ? '; the bot answered with its commands' : ''}`,
  );

  // Who hears of a breach: the assignee on their preferred channel (a default rule of every tenant),
  // the desk's Slack channel (a rule), and a signed webhook endpoint (subscribed to the event).
  const rules = await api(base, token, 'GET', '/api/v1/notification-rules?event=sla.breached&limit=200');
  if (
    !(rules.items as { channel: string; destination: string | null }[]).some(
      (r) => r.channel === 'slack' && r.destination === SLACK_CHANNEL.id,
    )
  )
    await api(base, token, 'POST', '/api/v1/notification-rules', {
      event: 'sla.breached',
      channel: 'slack',
      destination: SLACK_CHANNEL.id,
    });
  // An earlier run's endpoint points at that run's receiver: replace it.
  const endpoints = await api(base, token, 'GET', '/api/v1/webhook-endpoints?limit=200');
  for (const e of endpoints.items as { id: string; description: string }[])
    if (e.description === WEBHOOK_DESCRIPTION)
      await api(base, token, 'DELETE', `/api/v1/webhook-endpoints/${e.id}`);
  const endpoint = await api(base, token, 'POST', '/api/v1/webhook-endpoints', {
    url: `${receiver.url}/relaydesk`,
    events: ['sla.breached'],
    description: WEBHOOK_DESCRIPTION,
  });
  receiver.setSecrets([endpoint.secret]);
  line(
    'who hears of sla.breached',
    `the assignee on their preferred channel (default rule); Slack #${SLACK_CHANNEL.name} (${SLACK_CHANNEL.id}); webhook ${endpoint.url}`,
  );

  // A policy whose target passes while the demo runs: the scheduler records the breach as it would
  // any other, within a second of its due time.
  const policies = await api(base, token, 'GET', '/api/v1/sla-policies');
  if (!(policies.items as { name: string }[]).some((p) => p.name === DEMO_POLICY))
    await api(base, token, 'POST', '/api/v1/sla-policies', {
      name: DEMO_POLICY,
      position: 0,
      conditions: { priorities: ['urgent'] },
      calendarId: null,
      targets: { urgent: { firstResponse: BREACH_SECONDS } },
      thresholds: [100],
    });
  line('SLA policy', `"${DEMO_POLICY}" (calendar time)`);

  const ticket = await api(base, token, 'POST', '/api/v1/tickets', {
    subject: 'Payroll export fails',
    requester: { email: 'olivia@customer.demo', name: 'Olivia Chen' },
    priority: 'urgent',
    assigneeId: agent.id,
    message: {
      text: 'The payroll export stops with "access denied" for everyone in finance. Payday is tomorrow.',
    },
  });
  const sla = await api(base, token, 'GET', `/api/v1/tickets/${ticket.id}/sla`);
  const firstResponse = (sla.metrics as { metric: string; dueAt: string | null }[]).find(
    (m) => m.metric === 'first_response',
  );
  line(
    `${ticket.number} "${ticket.subject}"`,
    `urgent, assigned to ${AGENT_NAME}; first response due ${firstResponse?.dueAt ?? 'unknown'}`,
  );
  out(`  waiting for the breach (${BREACH_SECONDS} s) ...`);

  const breach = `${ticket.number} breached`;
  const teams = await waitFor('the breach to reach the Teams simulator', async () =>
    bot.sent().find((s) => cardTitle(cardOf(s.activity)).startsWith(breach)),
  );
  const post = await waitFor('the breach to reach the Slack simulator', async () =>
    slack.posts().find((p) => p.channel === SLACK_CHANNEL.id && String(p.text).startsWith(breach)),
  );
  const hook = await waitFor('the breach to reach the webhook receiver', async () =>
    receiver.requests().find((r) => {
      const body = JSON.parse(r.body) as Json;
      return body['type'] === 'sla.breached' && body['data']?.['ticket']?.['id'] === ticket.id;
    }),
  );
  const events = await api(base, token, 'GET', `/api/v1/tickets/${ticket.id}/sla/events`);
  const breached = (events.items as { type: string; metric: string; at: string }[]).find(
    (e) => e.type === 'breached',
  );
  line(
    `${ticket.number} breached`,
    `sla.breached, ${breached?.metric ?? 'first_response'} at ${breached?.at ?? '?'}`,
  );
  const card = cardOf(teams.activity)!;
  line(
    'Teams simulator',
    `Adaptive Card "${cardTitle(card)}" in ${AGENT_NAME.split(' ')[0]}'s chat with the bot; buttons: ${(card['actions'] as Json[]).map((a) => a['title']).join(', ')}`,
  );
  line(
    'Slack simulator',
    `Block Kit message in #${SLACK_CHANNEL.name}: "${String(post.text).split('\n')[0]}" (blocks: ${(post.blocks as Json[]).map((b) => b['type']).join(', ')})`,
  );
  line(
    'webhook receiver',
    `sla.breached for ${ticket.number}, signature ${hook.verified ? 'verified' : 'NOT verified'} (webhook-id ${hook.id})`,
  );
  // What the ledger says of the breach's deliveries (every one made at or after the due time).
  const since = encodeURIComponent(breached?.at ?? firstResponse?.dueAt ?? ticket.createdAt);
  const ledger = await waitFor('the breach deliveries to be recorded', async () => {
    const page = await api(
      base,
      token,
      'GET',
      `/api/v1/deliveries?ticketId=${ticket.id}&from=${since}&limit=50`,
    );
    const rows = (page.items as Json[]).filter((d) => d['purpose'] === 'notification');
    return rows.length >= 3 && rows.every((d) => !['queued', 'sending'].includes(d['status']))
      ? rows
      : undefined;
  });
  for (const d of ledger.sort((x, y) => String(x['channel']).localeCompare(String(y['channel']))))
    line(`delivery ledger: ${d['channel']}`, `${String(d['status']).padEnd(10)} to ${d['destination']}`);

  // She presses the card's "Change status" with "pending": the connector sends the Action.Execute
  // invoke (the button's verb and data, the chosen input merged in) to /hooks/teams.
  const showCard = (card['actions'] as Json[]).find((a) => a['title'] === 'Change status');
  const execute = (showCard?.['card']?.['actions'] as Json[] | undefined)?.[0];
  if (!execute) throw new Error('the breach card has no "Change status" action');
  out('');
  out(
    `${AGENT_NAME.split(' ')[0]} presses "Change status" → pending on the card in Teams (Action.Execute, verb ${execute['verb']}):`,
  );
  const invoke = bot.actionExecute(teamsUser, String(execute['verb']), {
    ...execute['data'],
    status: 'pending',
  });
  const acted = await bot.deliver(`${base}/hooks/teams`, invoke);
  const refreshed = acted.body?.value as Json | undefined;
  line(`Teams invoke answered ${acted.status}`, `refreshed card: "${cardTitle(refreshed)}"`);
  const now = await api(base, token, 'GET', `/api/v1/tickets/${ticket.id}`);
  const audit = await api(
    base,
    token,
    'GET',
    `/api/v1/audit-events?action=teams.change_status&targetId=${ticket.id}&limit=1`,
  );
  const entry = audit.items[0];
  line(
    `${now.number} is now ${now.status}`,
    entry
      ? `audit: ${entry.action} ${entry.outcome} by ${entry.actorId === agent.id ? AGENT_NAME : entry.actorId} via ${entry.actorVia}`
      : 'no audit event',
  );
}

/** A port free on `host` now (the server binds it a moment later). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export async function runDemo(config: Config, out: (line: string) => void): Promise<void> {
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  let running: RunningRelaydesk | undefined;
  let graph: GraphSimulator | undefined;
  let gmail: GmailSimulator | undefined;
  let smtp: SmtpSimulator | undefined;
  let bot: BotFrameworkSimulator | undefined;
  let slack: SlackSimulator | undefined;
  let receiver: WebhookReceiver | undefined;
  const stop = async () => {
    await running?.stop().catch(() => undefined);
    await graph?.close().catch(() => undefined);
    await gmail?.close().catch(() => undefined);
    await smtp?.close().catch(() => undefined);
    await bot?.close().catch(() => undefined);
    await slack?.close().catch(() => undefined);
    await receiver?.close().catch(() => undefined);
  };
  try {
    graph = await startGraphSimulator();
    gmail = await startGmailSimulator();
    // The raw MIME inbox sends its replies over SMTP, to this local server (with AUTH).
    smtp = await startSmtpSimulator({ auth: { username: 'demo', password: 'demo-password' } });
    bot = await startBotFrameworkSimulator();
    slack = await startSlackSimulator();
    receiver = await startWebhookReceiver();
    // The demo's mailboxes point at the simulators, which the server allows for this run only.
    const simulators = [
      graph.apiBaseUrl,
      graph.tokenUrl,
      gmail.apiBaseUrl,
      gmail.tokenUrl,
      gmail.jwksUrl,
      bot.url,
      slack.url,
    ].map((u) => new URL(u).origin);
    // The simulators reach this run's server at its own address: upkeep subscribes the Graph
    // mailbox there (Graph's validation handshake included) as it would at a public URL.
    // A port chosen here is free when chosen; by the time the server binds it (after PostgreSQL
    // started, which takes a free port of its own) something else may hold it. Then another one is
    // chosen: a failed start has stopped everything it started.
    for (let attempt = 1; ; attempt++) {
      const port = config.port === 0 ? await freePort(config.host) : config.port;
      try {
        running = await startRelaydesk({
          config: {
            ...config,
            port,
            role: 'all',
            providerOrigins: [...config.providerOrigins, ...simulators],
            // The demo's webhook receivers listen on loopback (RELAYDESK_ALLOW_PRIVATE_WEBHOOKS=1).
            allowPrivateWebhooks: true,
            publicUrl:
              config.publicUrl ??
              `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
          },
          logger,
        });
        break;
      } catch (err) {
        const taken = (err as { code?: unknown }).code === 'EADDRINUSE';
        if (config.port !== 0 || !taken || attempt >= 5) throw err;
      }
    }
    const base = running.url!;
    const tenant = await demoTenant(running.db.pool, config.dataDir);
    const token = tenant.token;

    // The mailboxes of an earlier run point at that run's simulators (and carry their sync state):
    // make them again for this run's. Their earlier tickets stay.
    const earlier = await api(base, token, 'GET', '/api/v1/mailboxes?limit=200');
    for (const box of earlier.items as { id: string; address: string }[]) {
      if ([GRAPH_USER, GMAIL_USER, MIME_ADDRESS].includes(box.address.toLowerCase()))
        await api(base, token, 'DELETE', `/api/v1/mailboxes/${box.id}`);
    }

    const graphBox = await api(base, token, 'POST', '/api/v1/mailboxes', {
      kind: 'graph',
      address: GRAPH_USER,
      displayName: 'Contoso help desk (Graph simulator)',
      settings: { graph: { apiBaseUrl: graph.apiBaseUrl, tokenUrl: graph.tokenUrl } },
      credentials: graph.credentials,
    });
    if (graphBox.health?.status !== 'healthy')
      throw new Error(
        `the Graph mailbox could not be subscribed: ${graphBox.health?.failureReason ?? 'unknown'}`,
      );
    const gmailBox = await api(base, token, 'POST', '/api/v1/mailboxes', {
      kind: 'gmail',
      address: GMAIL_USER,
      displayName: 'Fabrikam support (Gmail simulator)',
      settings: {
        gmail: {
          apiBaseUrl: gmail.apiBaseUrl,
          tokenUrl: gmail.tokenUrl,
          jwksUrl: gmail.jwksUrl,
          pushAudience: PUSH_AUDIENCE,
          serviceAccountEmail: PUSH_ACCOUNT,
          // Upkeep keeps a watch on it, as on a real Gmail mailbox.
          topic: 'projects/relaydesk-demo/topics/gmail',
        },
      },
      credentials: gmail.credentials,
    });
    const mimeBox = await api(base, token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: MIME_ADDRESS,
      displayName: 'Raw MIME inbox',
      settings: { smtp: { host: smtp.host, port: smtp.port, security: 'none', username: 'demo' } },
      credentials: { smtpPassword: 'demo-password' },
    });

    out('');
    out(
      `Relaydesk demo running at ${base}${config.port === 0 ? ' (a free port; choose one with --port N)' : ''}`,
    );
    out(`  Graph simulator ${graph.url}, Gmail simulator ${gmail.url} (loopback only)`);
    out(
      `  tenant "${tenant.name}" (${tenant.tenantId})${tenant.createdNow ? '' : ', from an earlier run on this data directory'}`,
    );
    out('');
    out('Sending mail through each ingress path:');
    const sent: { sample: Sample; inboundId?: string; since: string }[] = [];
    const answered: string[] = [];
    for (const sample of samples()) {
      const since = new Date().toISOString();
      if (sample.via === 'graph') await graph.deliver(GRAPH_USER, sample.raw);
      else if (sample.via === 'gmail') {
        gmail.deliver(GMAIL_USER, sample.raw);
        const status = await gmail.push(`${base}/hooks/gmail/${gmailBox.id}`, GMAIL_USER, {
          audience: PUSH_AUDIENCE,
          email: PUSH_ACCOUNT,
        });
        if (status !== 202) throw new Error(`the Gmail push was answered ${status}`);
      } else {
        const res = await fetch(`${base}/api/v1/mailboxes/${mimeBox.id}/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'message/rfc822' },
          body: new Uint8Array(sample.raw),
        });
        if (res.status !== 202) throw new Error(`the raw MIME API answered ${res.status}`);
        sent.push({ sample, inboundId: ((await res.json()) as { inboundId: string }).inboundId, since });
        continue;
      }
      // Each delivery is processed before the next, so that a reply finds its ticket.
      const mailboxId = sample.via === 'graph' ? graphBox.id : gmailBox.id;
      const row = await waitFor(`"${sample.label}" to be processed`, async () => {
        const page = await api(base, token, 'GET', `/api/v1/inbound?mailboxId=${mailboxId}&limit=1`);
        const latest = page.items[0];
        return latest && latest.createdAt >= since && !pending(latest.status) ? latest : undefined;
      });
      sent.push({ sample, inboundId: row.id, since });
    }
    for (const s of sent) {
      const row = await waitFor(`"${s.sample.label}" to be processed`, async () => {
        const r = await api(base, token, 'GET', `/api/v1/inbound/${s.inboundId}`);
        return pending(r.status) ? undefined : r;
      });
      let detail = row.reason ?? '';
      if (row.ticketId) {
        const ticket = await api(base, token, 'GET', `/api/v1/tickets/${row.ticketId}`);
        detail = `${row.ticketNumber ?? ticket.number} "${ticket.subject}"`;
      }
      out(`  ${s.sample.label.padEnd(42)} ${String(row.status).padEnd(10)} ${detail}`);
      if (row.ticketId && row.status === 'created' && s.sample.via !== 'gmail') answered.push(row.ticketId);
    }
    out('');
    out(`An agent answers by email (SMTP server ${smtp.host}:${smtp.port}, loopback only):`);
    for (const ticketId of answered) {
      const posted = await api(base, token, 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        visibility: 'public',
        text: 'Thanks for reporting this. We are looking into it and will update you here.',
      });
      const delivery = await waitFor('the reply to be sent', async () => {
        const d = await api(base, token, 'GET', `/api/v1/deliveries/${posted.delivery.id}`);
        return d.status === 'queued' ? undefined : d;
      });
      const ticket = await api(base, token, 'GET', `/api/v1/tickets/${ticketId}`);
      const via = delivery.mailboxId === graphBox.id ? 'Graph sendMail' : 'SMTP';
      out(
        `  ${`reply on ${ticket.number} via ${via}`.padEnd(42)} ${String(delivery.status).padEnd(10)} to ${delivery.destination}, Message-ID <${delivery.rfcMessageId}>`,
      );
    }
    await notificationStory(base, token, { bot, slack, receiver }, out);
    out('');
    out(`Admin token for the demo tenant: ${token}`);
    out(`  (kept for later demo runs in ${path.join(config.dataDir, 'demo-tenant.json')}, mode 0600)`);
    out('Look around:');
    out(`  curl -H "Authorization: Bearer ${token}" ${base}/api/v1/tickets`);
    out(`  curl -H "Authorization: Bearer ${token}" "${base}/api/v1/inbound?limit=10"`);
    out(`  curl -H "Authorization: Bearer ${token}" "${base}/api/v1/deliveries?limit=10"`);
    out(`  curl -H "Authorization: Bearer ${token}" "${base}/api/v1/audit-events?limit=10"`);
    out(`  open ${base}/docs for the API reference`);
    out('Ctrl-C stops the demo (its data stays in the data directory).');
  } catch (err) {
    await stop();
    throw err;
  }
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  out('stopping ...');
  await stop();
}
