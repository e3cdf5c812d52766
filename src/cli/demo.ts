// `relaydesk demo`: Relaydesk on its own data directory with the Microsoft Graph and Gmail
// simulators beside it, a demo tenant with a Graph, a Gmail and a raw-MIME mailbox, and a handful of
// messages sent through the real ingress paths (Graph change notification, Gmail Pub/Sub push with a
// signed OIDC token, the raw-MIME API). It prints what became of each message and how to look
// around, then runs until Ctrl-C. Nothing leaves this machine: the simulators listen on loopback.
//
// It listens on a free port unless --port says otherwise (a server from the quick start may well be
// on 8080), and a later run on the same data directory reuses the demo tenant, so running it again
// adds tickets, not tenants.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type GmailSimulator, startGmailSimulator } from '../../simulators/gmail.ts';
import { type GraphSimulator, startGraphSimulator } from '../../simulators/graph.ts';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
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

async function api(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
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
  const stop = async () => {
    await running?.stop().catch(() => undefined);
    await graph?.close().catch(() => undefined);
    await gmail?.close().catch(() => undefined);
    await smtp?.close().catch(() => undefined);
  };
  try {
    graph = await startGraphSimulator();
    gmail = await startGmailSimulator();
    // The raw MIME inbox sends its replies over SMTP, to this local server (with AUTH).
    smtp = await startSmtpSimulator({ auth: { username: 'demo', password: 'demo-password' } });
    // The demo's mailboxes point at the simulators, which the server allows for this run only.
    const simulators = [
      graph.apiBaseUrl,
      graph.tokenUrl,
      gmail.apiBaseUrl,
      gmail.tokenUrl,
      gmail.jwksUrl,
    ].map((u) => new URL(u).origin);
    // The simulators reach this run's server at its own address: upkeep subscribes the Graph
    // mailbox there (Graph's validation handshake included) as it would at a public URL.
    const port = config.port === 0 ? await freePort(config.host) : config.port;
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
    out('');
    out(`Admin token for the demo tenant: ${token}`);
    out(`  (kept for later demo runs in ${path.join(config.dataDir, 'demo-tenant.json')}, mode 0600)`);
    out('Look around:');
    out(`  curl -H "Authorization: Bearer ${token}" ${base}/api/v1/tickets`);
    out(`  curl -H "Authorization: Bearer ${token}" "${base}/api/v1/inbound?limit=10"`);
    out(`  curl -H "Authorization: Bearer ${token}" "${base}/api/v1/deliveries?limit=10"`);
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
