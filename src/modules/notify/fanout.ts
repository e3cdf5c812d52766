// Fan-out: one recorded event becomes ledger rows, one per (channel, destination), by the tenant's
// rules (and the destinations that subscribe on their own, webhook endpoints), in one transaction
// that also marks the event fanned out. The event row is locked first, so a second run of the job
// waits and then finds it done: an event is fanned out once. Each row's send job commits with it;
// a row held by quiet hours has its job start when they end.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobContext } from '../../platform/queue/registry.ts';
import { type EventType, lockEvent, markFannedOut, type StoredEvent } from '../events/events.ts';
import { type NewDelivery, queueDeliveries, recordSkipped } from '../outbound/ledger.ts';
import { queueNotificationMail } from '../outbound/notification-mail.ts';
import { peopleWithRole, type PersonRole } from '../tokens/person-roles.ts';
import type { AdapterChannel, ChannelAdapter, NotificationContent, NotificationTicket } from './channel.ts';
import { buildContent, ticketContext } from './content.ts';
import { notifyDeliverJob } from './job-refs.ts';
import { type QuietHours, quietUntil } from './quiet-hours.ts';
import {
  getRule,
  type NotificationRule,
  PERSON_CHANNELS,
  type PersonChannel,
  type Recipient,
  rulesFor,
} from './rules.ts';

export interface NotifyDeps {
  pool: Pool;
  clock: Clock;
  messageIdKey: Buffer;
  /** The channel adapters of this installation (teams, slack, webhook), by channel. */
  adapters: Map<AdapterChannel, ChannelAdapter>;
}

interface PersonRow {
  id: string;
  display_name: string;
  kind: string;
  status: string;
  time_zone: string | null;
  preferred_channel: string | null;
  notification_settings: { fallback?: PersonChannel[]; quietHours?: QuietHours };
  email: string | null;
}

interface Target {
  channel: 'email' | AdapterChannel;
  destination: string;
  person: PersonRow | null;
  /** Display name of a person reached by email. */
  name?: string | undefined;
}

async function peopleByIds(tx: TenantTx, ids: string[]): Promise<PersonRow[]> {
  if (ids.length === 0) return [];
  const { rows } = await tx.query<PersonRow>(
    `SELECT p.id, p.display_name, p.kind, p.status, p.time_zone, p.preferred_channel, p.notification_settings,
            (SELECT e.address FROM person_emails e WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id AND e.is_primary) AS email
       FROM people p WHERE p.tenant_id = $1 AND p.id = ANY($2::uuid[]) ORDER BY p.id`,
    [tx.tenantId, [...new Set(ids)]],
  );
  // Suspended people hear nothing; invited ones have not started yet.
  return rows.filter((r) => r.status === 'active');
}

/**
 * Of an assignment, the name of the person it assigned when the ticket has moved on to another by
 * the time of fan-out (undefined otherwise: the ticket's assignee is that person).
 */
async function assignedName(
  tx: TenantTx,
  event: StoredEvent,
  ticket: NotificationTicket | null,
): Promise<string | undefined> {
  const to = event.data['to'];
  if (event.type !== 'ticket.assigned' || typeof to !== 'string' || ticket?.assignee?.id === to) return;
  const { rows } = await tx.query<{ display_name: string }>(
    'SELECT display_name FROM people WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, to],
  );
  return rows[0]?.display_name;
}

/** Agents other than the assignee who wrote on the ticket: they follow it. */
async function watchersOf(tx: TenantTx, ticketId: string): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT DISTINCT m.author_id AS id FROM ticket_messages m
       JOIN people p ON p.tenant_id = m.tenant_id AND p.id = m.author_id AND p.kind = 'agent'
       JOIN tickets t ON t.tenant_id = m.tenant_id AND t.id = m.ticket_id
      WHERE m.tenant_id = $1 AND m.ticket_id = $2 AND m.author_id IS DISTINCT FROM t.assignee_id`,
    [tx.tenantId, ticketId],
  );
  return rows.map((r) => r.id);
}

async function recipientIds(
  tx: TenantTx,
  recipients: Recipient[],
  content: NotificationContent,
  event: StoredEvent,
): Promise<string[]> {
  const ids: string[] = [];
  // Of an assignment, the person it assigned (the ticket may have moved on by the time of fan-out).
  const assignee =
    event.type === 'ticket.assigned' && typeof event.data['to'] === 'string'
      ? event.data['to']
      : content.ticket?.assignee?.id;
  for (const r of recipients) {
    if (r.type === 'assignee' && assignee) ids.push(assignee);
    else if (r.type === 'requester' && content.ticket?.requester) ids.push(content.ticket.requester.id);
    else if (r.type === 'watchers' && content.ticket) ids.push(...(await watchersOf(tx, content.ticket.id)));
    else if (r.type === 'role' && r.role) ids.push(...(await peopleWithRole(tx, r.role)));
    else if (r.type === 'person' && r.personId) ids.push(r.personId);
  }
  return ids;
}

/** The first channel of the person's order (and the rule's) that reaches them. */
async function reachPerson(
  tx: TenantTx,
  deps: NotifyDeps,
  person: PersonRow,
  rule: Pick<NotificationRule, 'channel' | 'fallback'>,
): Promise<Target | { skipped: PersonChannel }> {
  const own = person.notification_settings.fallback ?? [];
  const preferred = (PERSON_CHANNELS as readonly string[]).includes(person.preferred_channel ?? '')
    ? [person.preferred_channel as PersonChannel]
    : [];
  const order: PersonChannel[] =
    rule.channel === 'preferred'
      ? [...preferred, ...own, ...rule.fallback, 'email']
      : [rule.channel as PersonChannel, ...rule.fallback];
  for (const channel of [...new Set(order)]) {
    if (channel === 'email') {
      if (person.email) return { channel, destination: person.email, person, name: person.display_name };
      continue;
    }
    const adapter = deps.adapters.get(channel);
    const destination = adapter ? await adapter.personDestination(tx, person.id) : undefined;
    if (destination) return { channel, destination, person };
  }
  return { skipped: order[0] ?? 'email' };
}

/** The mailbox the ticket's latest mail came in through (what a rule's `mailboxId` condition means). */
async function ticketMailbox(tx: TenantTx, ticketId: string): Promise<string | undefined> {
  const { rows } = await tx.query<{ mailbox_id: string }>(
    `SELECT i.mailbox_id FROM ticket_messages m
       JOIN inbound_messages i ON i.tenant_id = m.tenant_id AND i.id = m.inbound_id
      WHERE m.tenant_id = $1 AND m.ticket_id = $2 AND m.inbound_id IS NOT NULL
      ORDER BY m.created_at DESC LIMIT 1`,
    [tx.tenantId, ticketId],
  );
  return rows[0]?.mailbox_id;
}

function matches(
  rule: NotificationRule,
  event: StoredEvent,
  content: NotificationContent,
  mailboxId: string | undefined,
): boolean {
  const c = rule.conditions;
  if (
    c.priority &&
    c.priority.length > 0 &&
    !(content.ticket && c.priority.includes(content.ticket.priority as never))
  )
    return false;
  if (c.mailboxId && (event.mailboxId ?? mailboxId) !== c.mailboxId) return false;
  return true;
}

/** Runs the fan-out of one event; answers how many deliveries it queued and skipped. */
export async function fanOutEvent(
  deps: NotifyDeps,
  payload: { tenantId: string; eventId: string },
  ctx: Pick<JobContext, 'send' | 'sendEach'>,
): Promise<{ queued: number; skipped: number } | { already: true }> {
  return withTenant(deps.pool, payload.tenantId, async (tx) => {
    const event = await lockEvent(tx, payload.eventId);
    if (!event || event.fannedOutAt) return { already: true as const };
    const ticket = event.ticketId ? ((await ticketContext(tx, event.ticketId)) ?? null) : null;
    const content = buildContent(event, ticket, await assignedName(tx, event, ticket));

    const targets: Target[] = [];
    const skippedPeople: { person: PersonRow; channel: PersonChannel }[] = [];
    const addPeople = async (ids: string[], rule: Pick<NotificationRule, 'channel' | 'fallback'>) => {
      // Whoever caused the event does not hear of it.
      const people = await peopleByIds(
        tx,
        ids.filter((id) => id !== event.actorId),
      );
      for (const person of people) {
        const reached = await reachPerson(tx, deps, person, rule);
        if ('skipped' in reached) skippedPeople.push({ person, channel: reached.skipped });
        else targets.push(reached);
      }
    };

    const rules: NotificationRule[] =
      event.type === 'notification.test'
        ? await getRule(tx, String(event.data['ruleId'])).then(
            (rule) => [rule],
            () => [], // deleted since the test was asked for
          )
        : await rulesFor(tx, event.type).then(async (all) => {
            const mailboxId =
              event.ticketId && all.some((r) => r.conditions.mailboxId)
                ? await ticketMailbox(tx, event.ticketId)
                : undefined;
            return all.filter((r) => matches(r, event, content, mailboxId));
          });
    for (const rule of rules) {
      if (rule.destination)
        targets.push({
          channel: rule.channel as AdapterChannel,
          destination: rule.destination,
          person: null,
        });
      else await addPeople(await recipientIds(tx, rule.recipients, content, event), rule);
    }
    // An SLA escalation names whom to tell (its `notify` actions): people, or everyone of a role.
    if (event.type === 'sla.escalated') {
      const notify = (event.data['notify'] ?? []) as { personId?: string; role?: PersonRole }[];
      const direct = { channel: 'preferred' as const, fallback: [] };
      for (const n of Array.isArray(notify) ? notify : []) {
        if (n.personId) await addPeople([n.personId], direct);
        else if (n.role) await addPeople(await peopleWithRole(tx, n.role), direct);
      }
    }
    if (event.type !== 'notification.test')
      for (const adapter of deps.adapters.values())
        for (const destination of (await adapter.subscribers?.(tx, event.type as EventType)) ?? [])
          targets.push({ channel: adapter.channel, destination, person: null });

    const now = deps.clock.now();
    const seen = new Set<string>();
    let queued = 0;
    // The channels' attempts are written together, and their jobs sent together, after the loop.
    const toChannels: { delivery: NewDelivery; startAfter: Date | undefined }[] = [];
    for (const target of targets) {
      const key = `${target.channel}|${target.destination.toLowerCase()}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const quiet = target.person?.notification_settings.quietHours;
      const heldUntil =
        !event.urgent && quiet && target.person
          ? quietUntil(now, quiet, target.person.time_zone ?? 'UTC')
          : undefined;
      const notificationId = uuidv7();
      if (target.channel === 'email') {
        await queueNotificationMail(
          tx,
          { messageIdKey: deps.messageIdKey, send: (job, p, o) => ctx.send(job, p, o) },
          {
            notificationId,
            ticketId: ticket?.id ?? null,
            to: { address: target.destination, name: target.name ?? '' },
            subject: content.title,
            text: content.text ? `${content.title}\n\n${content.text}` : content.title,
            startAfter: heldUntil,
            about: content.type,
          },
        );
      } else
        toChannels.push({
          delivery: {
            channel: target.channel,
            purpose: 'notification',
            destination: target.destination,
            ticketId: ticket?.id ?? null,
            ticketMessageId: null,
            mailboxId: null,
            rfcMessageId: null,
            notificationId,
            payload: {
              content,
              ...(target.person ? { personId: target.person.id } : {}),
              ...(heldUntil ? { heldUntil } : {}),
            },
          },
          startAfter: heldUntil,
        });
      queued += 1;
    }
    const ids = await queueDeliveries(
      tx,
      toChannels.map((c) => c.delivery),
    );
    await ctx.sendEach(
      notifyDeliverJob,
      ids.map((deliveryId, i) => ({
        payload: { tenantId: tx.tenantId, deliveryId },
        startAfter: toChannels[i]!.startAfter,
      })),
      { tx },
    );
    for (const { person, channel } of skippedPeople)
      await recordSkipped(tx, {
        channel,
        purpose: 'notification',
        destination: `person:${person.id}`,
        ticketId: ticket?.id ?? null,
        ticketMessageId: null,
        mailboxId: null,
        rfcMessageId: null,
        notificationId: uuidv7(),
        payload: { content, personId: person.id },
        reason: 'no_destination',
      });
    await markFannedOut(tx, event.id);
    return { queued, skipped: skippedPeople.length };
  });
}
