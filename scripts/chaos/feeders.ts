// The load: mail through the raw-MIME API, Graph change notifications (the message put in the Graph
// simulator's mailbox first, as Graph would have it) and IMAP (appended to Dovecot); agents answering
// tickets by email; urgent tickets whose SLA clocks run out. Every mail gets a unique Message-ID and
// is remembered, so that the end can look for exactly one ticket or comment per mail.
//
// The feeders behave as the providers and clients do: a 503 or a connection cut by a kill is tried
// again (with the same bytes: the message key makes a second arrival a duplicate, not a second
// ticket); a reply whose answer was lost to a kill is not sent again (the API is not idempotent, as
// an agent's browser would not repeat it either).
import { ImapFlow } from 'imapflow';
import { imapClient } from '../../test/dovecot.ts';
import type pg from 'pg';
import type { ChaosTenant, Simulators } from './setup.ts';
import type { Traffic } from './traffic.ts';

export type MailVia = 'mime' | 'graph' | 'imap';

export interface SentMail {
  messageId: string;
  tenantId: string;
  via: MailVia;
  /** When the provider had it (Graph mailbox, Dovecot) or Relaydesk answered 202 (MIME). */
  acceptedAt: number;
}

export interface PostedReply {
  tenantId: string;
  ticketId: string;
  messageId: string;
  deliveryId: string | undefined;
}

export interface Load {
  mails: SentMail[];
  /** Mails a feeder gave up on before Relaydesk took them (MIME only: never accepted, so not counted as lost). */
  notAccepted: number;
  replies: PostedReply[];
  /** Replies whose answer was lost to a kill: they may or may not exist. */
  repliesUnknown: number;
  urgentTickets: { tenantId: string; ticketId: string }[];
  graphNotifications: { delivered: number; refused: number; gaveUp: number };
}

export interface Rates {
  mimePerSecond: number;
  graphPerSecond: number;
  imapPerSecond: number;
  repliesPerSecond: number;
  urgentPerSecond: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

let seq = 0;
function mail(options: {
  from: string;
  to: string;
  subject: string;
  messageId: string;
  inReplyTo?: string;
}): Buffer {
  const headers = [
    `From: ${options.from}`,
    `To: ${options.to}`,
    `Subject: ${options.subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${options.messageId}>`,
    ...(options.inReplyTo
      ? [`In-Reply-To: <${options.inReplyTo}>`, `References: <${options.inReplyTo}>`]
      : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
  ];
  return Buffer.from(
    [
      ...headers,
      '',
      `Chaos mail ${options.messageId}.`,
      'Something is broken again; please have a look.',
      '',
    ].join('\r\n'),
  );
}

/** Runs `task` about `perSecond` times a second with at most `inFlight` running, until `until`. */
async function paced(perSecond: number, inFlight: number, until: () => boolean, task: () => Promise<void>) {
  if (perSecond <= 0) return;
  const running = new Set<Promise<void>>();
  const interval = 1000 / perSecond;
  let next = Date.now();
  while (!until()) {
    if (running.size >= inFlight) {
      await Promise.race(running);
      continue;
    }
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
    next = Math.max(next + interval, Date.now() - 1000);
    const p: Promise<void> = task()
      .catch(() => undefined)
      .finally(() => running.delete(p));
    running.add(p);
  }
  await Promise.all(running);
}

export class Feeders {
  readonly load: Load = {
    mails: [],
    notAccepted: 0,
    replies: [],
    repliesUnknown: 0,
    urgentTickets: [],
    graphNotifications: { delivered: 0, refused: 0, gaveUp: 0 },
  };
  private readonly tenants: ChaosTenant[];
  private readonly sims: Simulators;
  private readonly traffic: Traffic;
  private readonly owner: () => pg.Client | undefined;
  private stopAt = Infinity;
  /** Earlier Message-IDs per mailbox, for replies that thread by In-Reply-To. */
  private readonly threads = new Map<string, string[]>();
  /** Recent tickets per tenant, for agents to answer. */
  private readonly recentTickets = new Map<string, string[]>();
  private readonly runId = Math.random().toString(36).slice(2, 8);

  constructor(
    tenants: ChaosTenant[],
    sims: Simulators,
    traffic: Traffic,
    owner: () => pg.Client | undefined,
  ) {
    this.tenants = tenants;
    this.sims = sims;
    this.traffic = traffic;
    this.owner = owner;
  }

  private done = () => Date.now() >= this.stopAt;

  /** A new mail for `mailboxId` at `address`: a new request, or (a third of them) a reply in an earlier thread. */
  private nextMail(tenant: ChaosTenant, mailboxId: string, address: string, via: MailVia) {
    const n = ++seq;
    const messageId = `chaos-${this.runId}-${n}-${via}@customer-${tenant.name}.test`;
    const thread = this.threads.get(mailboxId) ?? [];
    this.threads.set(mailboxId, thread);
    const inReplyTo = thread.length > 0 && Math.random() < 1 / 3 ? pick(thread) : undefined;
    if (thread.length < 500) thread.push(messageId);
    else thread[n % 500] = messageId;
    const raw = mail({
      from: `Customer ${n % 97} <c${n % 97}@customer-${tenant.name}.test>`,
      to: address,
      subject: inReplyTo ? 'Re: still broken' : `Request ${n} via ${via}`,
      messageId,
      ...(inReplyTo ? { inReplyTo } : {}),
    });
    return { messageId, raw };
  }

  async run(options: { seconds: number; rates: Rates }): Promise<void> {
    this.stopAt = Date.now() + options.seconds * 1000;
    const r = options.rates;
    const imapTenant = this.tenants.find((t) => t.imap);
    await Promise.all([
      paced(r.mimePerSecond, 16, this.done, () => this.mime(pick(this.tenants))),
      paced(r.graphPerSecond, 16, this.done, () => this.graph(pick(this.tenants))),
      imapTenant ? this.imapLoop(imapTenant, r.imapPerSecond) : Promise.resolve(),
      this.sampleTickets(),
      paced(r.repliesPerSecond, 4, this.done, () => this.reply()),
      paced(r.urgentPerSecond, 4, this.done, () => this.urgent(pick(this.tenants))),
    ]);
  }

  private async mime(tenant: ChaosTenant): Promise<void> {
    const { messageId, raw } = this.nextMail(tenant, tenant.mime.id, tenant.mime.address, 'mime');
    for (let attempt = 0; attempt < 200; attempt++) {
      const out = await this.traffic.call('mime', 'POST', `/api/v1/mailboxes/${tenant.mime.id}/messages`, {
        token: tenant.token,
        raw: { contentType: 'message/rfc822', bytes: raw },
      });
      if (out.kind === 'answer' && out.status === 202) {
        this.load.mails.push({ messageId, tenantId: tenant.id, via: 'mime', acceptedAt: Date.now() });
        return;
      }
      if (out.kind === 'answer' && out.status !== 503 && out.status !== 429) break;
      await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
    }
    this.load.notAccepted++;
  }

  /** Graph has the message the moment it is in the mailbox; then it notifies every live subscription, retrying a 5xx. */
  private async graph(tenant: ChaosTenant): Promise<void> {
    const { messageId, raw } = this.nextMail(tenant, tenant.graph.id, tenant.graph.address, 'graph');
    const graphId = await this.sims.graph.deliver(tenant.graph.address, raw, { notify: false });
    this.load.mails.push({ messageId, tenantId: tenant.id, via: 'graph', acceptedAt: Date.now() });
    const user = tenant.graph.address.toLowerCase();
    const subs = this.sims.graph
      .subscriptions()
      .filter((s) => s.resource.toLowerCase().includes(`users/${user}`));
    // No live subscription (it expired, or is being replaced): only reconciliation will find it.
    await Promise.all(
      subs.map(async (s) => {
        const body = {
          value: [
            {
              subscriptionId: s.id,
              subscriptionExpirationDateTime: s.expirationDateTime,
              changeType: 'created',
              resource: `Users/${user}/Messages/${graphId}`,
              resourceData: {
                '@odata.type': '#Microsoft.Graph.Message',
                '@odata.id': `Users/${user}/Messages/${graphId}`,
                id: graphId,
              },
              clientState: s.clientState,
              tenantId: this.sims.graph.credentials.tenantId,
            },
          ],
        };
        for (let attempt = 0; attempt < 200; attempt++) {
          const out = await this.traffic.call('graph', 'POST', `/hooks/graph/${tenant.graph.id}`, { body });
          if (out.kind === 'answer' && out.status === 202) {
            this.load.graphNotifications.delivered++;
            return;
          }
          if (out.kind === 'answer' && out.status < 500) {
            // A subscription the mailbox no longer has (replaced meanwhile): refused, as Graph expects.
            this.load.graphNotifications.refused++;
            return;
          }
          await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
        }
        this.load.graphNotifications.gaveUp++;
      }),
    );
  }

  private async imapLoop(tenant: ChaosTenant, perSecond: number): Promise<void> {
    const { dovecot } = this.sims;
    let client: ImapFlow | undefined;
    await paced(perSecond, 1, this.done, async () => {
      const { messageId, raw } = this.nextMail(tenant, tenant.imap!.id, tenant.imap!.address, 'imap');
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          if (!client) {
            client = imapClient(dovecot);
            await client.connect();
          }
          await client.append('INBOX', raw);
          this.load.mails.push({ messageId, tenantId: tenant.id, via: 'imap', acceptedAt: Date.now() });
          return;
        } catch {
          await client?.logout().catch(() => undefined);
          client = undefined;
          await sleep(500);
        }
      }
      this.load.notAccepted++;
    });
    await client?.logout().catch(() => undefined);
  }

  /** Keeps a list of recent tickets per tenant for the agents (read as the owner; skipped while the database is down). */
  private async sampleTickets(): Promise<void> {
    while (!this.done()) {
      const client = this.owner();
      if (client && !this.traffic.databaseDown) {
        for (const t of this.tenants) {
          const rows = await client
            .query<{ id: string }>(
              `SELECT id FROM tickets WHERE tenant_id = $1 AND priority <> 'urgent' ORDER BY created_at DESC LIMIT 200`,
              [t.id],
            )
            .then(
              (r) => r.rows,
              () => undefined,
            );
          if (rows)
            this.recentTickets.set(
              t.id,
              rows.map((r) => r.id),
            );
        }
      }
      await sleep(2000);
    }
  }

  private async postReply(tenant: ChaosTenant, ticketId: string): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const out = await this.traffic.call('replies', 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        token: tenant.token,
        body: { visibility: 'public', text: `An agent's answer (${++seq}).` },
      });
      if (out.kind === 'answer' && out.status === 201) {
        this.load.replies.push({
          tenantId: tenant.id,
          ticketId,
          messageId: out.body.id,
          deliveryId: out.body.delivery?.id,
        });
        return;
      }
      if (out.kind === 'killed') {
        this.load.repliesUnknown++;
        return;
      }
      if (out.kind !== 'answer' || out.status !== 503) return;
      await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
    }
  }

  private async reply(): Promise<void> {
    const tenant = pick(this.tenants);
    const tickets = this.recentTickets.get(tenant.id);
    if (!tickets || tickets.length === 0) return;
    await this.postReply(tenant, pick(tickets));
  }

  /** An urgent ticket assigned to the agent; half are answered before the first-response target. */
  private async urgent(tenant: ChaosTenant): Promise<void> {
    const n = ++seq;
    for (let attempt = 0; attempt < 100; attempt++) {
      const out = await this.traffic.call('urgent', 'POST', '/api/v1/tickets', {
        token: tenant.token,
        body: {
          subject: `Urgent ${n}`,
          requester: { email: `vip${n % 13}@customer-${tenant.name}.test`, name: `VIP ${n % 13}` },
          priority: 'urgent',
          assigneeId: tenant.agentId,
          message: { text: 'Everything is down.' },
        },
      });
      if (out.kind === 'answer' && out.status === 201) {
        const ticketId = out.body.id as string;
        this.load.urgentTickets.push({ tenantId: tenant.id, ticketId });
        if (n % 2 === 0) {
          await sleep(3000 + Math.random() * 5000);
          await this.postReply(tenant, ticketId);
        }
        return;
      }
      if (out.kind !== 'answer' || out.status !== 503) return;
      await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
    }
  }
}
