// The chaos run's tenants, as an operator and their admins would set them up: tenants by the CLI,
// everything else through the HTTP API. Each tenant has a raw-MIME mailbox and a Graph mailbox
// (the first tenant an IMAP one too, on Dovecot); replies leave over SMTP to the sink or through
// Graph sendMail. Its first agent is reached on Teams (she said "hi" to the tenant's bot); SLA
// breaches also go to a Slack channel, and new tickets, thresholds and breaches to a signed webhook.
// An SLA policy with short targets makes urgent tickets reach their thresholds during the run.
import { spawnSync } from 'node:child_process';
import type { BotFrameworkSimulator } from '../../simulators/botframework.ts';
import type { GraphSimulator } from '../../simulators/graph.ts';
import type { SlackSimulator } from '../../simulators/slack.ts';
import type { SmtpSimulator } from '../../simulators/smtp.ts';
import type { WebhookReceiver } from '../../simulators/webhook-receiver.ts';
import type { Dovecot } from '../../test/dovecot.ts';
import { RELAYDESK_BIN } from '../../test/cluster.ts';
import type { Traffic } from './traffic.ts';

export interface ChaosTenant {
  name: string;
  id: string;
  token: string;
  agentId: string;
  mime: { id: string; address: string };
  graph: { id: string; address: string };
  imap: { id: string; address: string } | undefined;
  slackChannel: string;
  webhookEndpointId: string;
}

export interface Simulators {
  graph: GraphSimulator;
  bot: BotFrameworkSimulator;
  slack: SlackSimulator;
  receiver: WebhookReceiver;
  smtp: SmtpSimulator;
  dovecot: Dovecot;
}

/** First-response and resolution targets of urgent tickets (calendar seconds). */
export const FIRST_RESPONSE_SECONDS = 20;
export const RESOLUTION_SECONDS = 60;
export const THRESHOLDS = [50, 100];

/** Runs the `relaydesk` CLI as an operator would, on the run's database. */
function cli(env: NodeJS.ProcessEnv, ...args: string[]): string {
  const res = spawnSync(process.execPath, [RELAYDESK_BIN, ...args], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (res.status !== 0) throw new Error(`relaydesk ${args.join(' ')}: exit ${res.status}\n${res.stderr}`);
  return res.stdout;
}

export async function setUpTenants(options: {
  names: string[];
  cliEnv: NodeJS.ProcessEnv;
  traffic: Traffic;
  sims: Simulators;
  /** The balancer's address: where the Bot Framework connector posts activities. */
  publicUrl: string;
}): Promise<ChaosTenant[]> {
  const { traffic, sims } = options;
  // Setup is not under test: it retries what a kill interrupted and insists on success.
  const api = async (token: string, method: string, path: string, body?: unknown) => {
    for (let attempt = 0; ; attempt++) {
      const out = await traffic.call('setup', method, path, { token, body });
      if (out.kind === 'answer' && out.status >= 200 && out.status < 300) return out.body;
      if (attempt > 5 || (out.kind === 'answer' && out.status < 500))
        throw new Error(
          `${method} ${path}: ${out.kind === 'answer' ? `${out.status} ${out.text.slice(0, 300)}` : out.kind}`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const tenants: ChaosTenant[] = [];
  const secrets: string[] = [];
  for (const [index, name] of options.names.entries()) {
    const lines = cli(options.cliEnv, 'tenant', 'create', name).trim().split('\n');
    const id = lines.find((l) => l.startsWith('tenant\t'))!.split('\t')[1]!;
    const token = lines.find((l) => l.startsWith('token\t'))!.split('\t')[1]!;
    const me = await api(token, 'GET', '/api/v1/me');
    const agentId = me.person.id as string;
    const smtp = { host: sims.smtp.host, port: sims.smtp.port, security: 'none' };
    const mime = await api(token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: `inbox@${name}.test`,
      settings: { smtp },
    });
    const graph = await api(token, 'POST', '/api/v1/mailboxes', {
      kind: 'graph',
      address: `helpdesk@${name}.test`,
      settings: { graph: { apiBaseUrl: sims.graph.apiBaseUrl, tokenUrl: sims.graph.tokenUrl } },
      credentials: sims.graph.credentials,
    });
    if (graph.health?.status !== 'healthy')
      throw new Error(`the Graph mailbox of ${name} was not subscribed: ${graph.health?.failureReason}`);
    let imap: ChaosTenant['imap'];
    if (index === 0) {
      const box = await api(token, 'POST', '/api/v1/mailboxes', {
        kind: 'imap',
        address: sims.dovecot.user,
        settings: {
          imap: { host: sims.dovecot.host, port: sims.dovecot.port, secure: false, user: sims.dovecot.user },
          smtp,
        },
        credentials: { password: sims.dovecot.password },
      });
      imap = { id: box.id, address: sims.dovecot.user };
    }

    // Teams: the tenant's bot (a bot of its own for every tenant after the first), and the agent's
    // personal chat with it, which proactive notifications go to.
    const bot = index === 0 ? sims.bot.bot : sims.bot.addBot();
    await api(token, 'PUT', '/api/v1/integrations/teams', {
      appId: bot.appId,
      appPassword: bot.appPassword,
      tokenUrl: sims.bot.tokenUrl,
      openIdMetadataUrl: sims.bot.openIdMetadataUrl,
    });
    const teamsUser = sims.bot.user();
    await api(token, 'PATCH', `/api/v1/people/${agentId}`, { preferredChannel: 'teams' });
    await api(token, 'POST', `/api/v1/people/${agentId}/identities`, {
      kind: 'teams',
      externalId: teamsUser.id,
    });
    for (let attempt = 0; ; attempt++) {
      const hello = await sims.bot.deliver(
        `${options.publicUrl}/hooks/teams`,
        sims.bot.message(teamsUser, 'hi', { appId: bot.appId }),
        { appId: bot.appId },
      );
      if (hello.status === 200) break;
      if (attempt > 5) throw new Error(`POST /hooks/teams answered ${hello.status}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // Slack: the tenant's workspace token and a channel for breaches.
    const slackChannel = `C0CHAOS${index}`;
    sims.slack.addChannel({ id: slackChannel, name: `desk-${name}`, botIsMember: true });
    await api(token, 'PUT', '/api/v1/integrations/slack', {
      botToken: index === 0 ? sims.slack.botToken : sims.slack.issueToken(),
      apiBaseUrl: sims.slack.apiBaseUrl,
    });
    await api(token, 'POST', '/api/v1/notification-rules', {
      event: 'sla.breached',
      channel: 'slack',
      destination: slackChannel,
    });
    const endpoint = await api(token, 'POST', '/api/v1/webhook-endpoints', {
      url: `${sims.receiver.url}/${name}`,
      events: ['ticket.created', 'sla.threshold', 'sla.breached'],
      description: `chaos ${name}`,
    });
    await api(token, 'POST', '/api/v1/sla-policies', {
      name: `chaos: urgent tickets in ${FIRST_RESPONSE_SECONDS} s`,
      position: 0,
      conditions: { priorities: ['urgent'] },
      calendarId: null,
      targets: { urgent: { firstResponse: FIRST_RESPONSE_SECONDS, resolution: RESOLUTION_SECONDS } },
      thresholds: THRESHOLDS,
    });
    tenants.push({
      name,
      id,
      token,
      agentId,
      mime: { id: mime.id, address: mime.address },
      graph: { id: graph.id, address: graph.address },
      imap,
      slackChannel,
      webhookEndpointId: endpoint.id,
    });
    secrets.push(endpoint.secret as string);
    sims.receiver.setSecrets([...secrets]);
  }
  return tenants;
}
