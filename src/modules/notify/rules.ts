// Notification rules per tenant (the owner operations of `notification_rules`): an event, who hears
// of it, on which channel. A new tenant starts with the defaults below; they are ordinary rules that
// an admin may change or delete.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { EVENT_TYPES, type EventType } from '../events/events.ts';
import { PERSON_CHANNELS } from '../people/service.ts';
import { TICKET_PRIORITIES, type TicketPriority } from '../tickets/model.ts';
import { PERSON_ROLES, type PersonRole } from '../tokens/person-roles.ts';

export const RULE_CHANNELS = ['preferred', 'teams', 'slack', 'email', 'webhook'] as const;
export type RuleChannel = (typeof RULE_CHANNELS)[number];
export { PERSON_CHANNELS } from '../people/service.ts';
export type PersonChannel = (typeof PERSON_CHANNELS)[number];
export const RECIPIENT_TYPES = ['assignee', 'requester', 'watchers', 'role', 'person'] as const;
export type RecipientType = (typeof RECIPIENT_TYPES)[number];

export interface Recipient {
  type: RecipientType;
  role?: PersonRole | undefined;
  personId?: string | undefined;
}

export interface RuleConditions {
  /** The ticket's priority is one of these. */
  priority?: TicketPriority[] | undefined;
  /** The ticket's (or the event's) mailbox is this one. */
  mailboxId?: string | undefined;
}

export interface NotificationRule {
  id: string;
  event: EventType;
  recipients: Recipient[];
  channel: RuleChannel;
  /** A fixed destination on the channel: a Teams conversation id, a Slack channel id, a webhook endpoint id. */
  destination: string | null;
  fallback: PersonChannel[];
  conditions: RuleConditions;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface RuleInput {
  event: EventType;
  recipients?: Recipient[] | undefined;
  channel: RuleChannel;
  destination?: string | null | undefined;
  fallback?: PersonChannel[] | undefined;
  conditions?: RuleConditions | undefined;
  enabled?: boolean | undefined;
}

interface RuleRow {
  id: string;
  event: EventType;
  recipients: Recipient[];
  channel: RuleChannel;
  destination: string | null;
  fallback: PersonChannel[];
  conditions: RuleConditions;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

const COLUMNS =
  'id, event, recipients, channel, destination, fallback, conditions, enabled, created_at, updated_at';

const toRule = (r: RuleRow): NotificationRule => ({
  id: r.id,
  event: r.event,
  recipients: r.recipients,
  channel: r.channel,
  destination: r.destination,
  fallback: r.fallback,
  conditions: r.conditions,
  enabled: r.enabled,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** What a new tenant starts with: the assignee hears of customer replies and breaches, admins of mailbox trouble. */
export const DEFAULT_RULES: RuleInput[] = [
  { event: 'ticket.customer_replied', recipients: [{ type: 'assignee' }], channel: 'preferred' },
  { event: 'sla.breached', recipients: [{ type: 'assignee' }], channel: 'preferred' },
  { event: 'ticket.assigned', recipients: [{ type: 'assignee' }], channel: 'preferred' },
  { event: 'mailbox.health_changed', recipients: [{ type: 'role', role: 'admin' }], channel: 'preferred' },
];

/**
 * Checks a rule's shape beyond its schema: recipients fit the channel, a fixed destination is named
 * where the channel needs one. `destinationExists` answers for channels with adapters.
 */
export async function checkRule(
  input: RuleInput,
  destinationExists: (channel: string, destination: string) => Promise<boolean>,
): Promise<void> {
  const recipients = input.recipients ?? [];
  recipients.forEach((r, i) => {
    if (r.type === 'role' && !r.role)
      throw validation('a role recipient names its role', [
        { path: `/recipients/${i}/role`, message: 'required' },
      ]);
    if (r.type === 'person' && !r.personId)
      throw validation('a person recipient names the person', [
        { path: `/recipients/${i}/personId`, message: 'required' },
      ]);
    if (r.role && !(PERSON_ROLES as readonly string[]).includes(r.role))
      throw validation('unknown role', [{ path: `/recipients/${i}/role`, message: 'unknown' }]);
  });
  const destination = input.destination ?? null;
  if (input.channel === 'webhook' && !destination)
    throw validation('a webhook rule names its endpoint', [{ path: '/destination', message: 'required' }]);
  if ((input.channel === 'preferred' || input.channel === 'email') && destination)
    throw validation(`a ${input.channel} rule reaches people, not a fixed destination`, [
      { path: '/destination', message: 'not allowed' },
    ]);
  if (!destination && recipients.length === 0)
    throw validation('a rule needs recipients or a destination', [{ path: '/recipients', message: 'empty' }]);
  if (destination && !(await destinationExists(input.channel, destination)))
    throw validation(`no such ${input.channel} destination in this tenant`, [
      { path: '/destination', message: 'not found' },
    ]);
  if (input.conditions?.priority?.some((p) => !(TICKET_PRIORITIES as readonly string[]).includes(p)))
    throw validation('unknown priority', [{ path: '/conditions/priority', message: 'unknown' }]);
  if (input.event && !(EVENT_TYPES as readonly string[]).includes(input.event))
    throw validation('unknown event', [{ path: '/event', message: 'unknown' }]);
}

export async function createRule(tx: TenantTx, input: RuleInput): Promise<NotificationRule> {
  const { rows } = await tx.query<RuleRow>(
    `INSERT INTO notification_rules (tenant_id, id, event, recipients, channel, destination, fallback, conditions, enabled)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      uuidv7(),
      input.event,
      JSON.stringify(input.recipients ?? []),
      input.channel,
      input.destination ?? null,
      input.fallback ?? [],
      JSON.stringify(input.conditions ?? {}),
      input.enabled ?? true,
    ],
  );
  return toRule(rows[0]!);
}

/** The defaults of a new tenant (called in the transaction that creates it). */
export async function createDefaultRules(tx: TenantTx): Promise<void> {
  for (const rule of DEFAULT_RULES) await createRule(tx, rule);
}

export async function getRule(tx: TenantTx, id: string): Promise<NotificationRule> {
  const { rows } = await tx.query<RuleRow>(
    `SELECT ${COLUMNS} FROM notification_rules WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('notification rule');
  return toRule(rows[0]);
}

export async function replaceRule(tx: TenantTx, id: string, input: RuleInput): Promise<NotificationRule> {
  const { rows } = await tx.query<RuleRow>(
    `UPDATE notification_rules SET event = $3, recipients = $4, channel = $5, destination = $6, fallback = $7,
            conditions = $8, enabled = $9, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [
      tx.tenantId,
      id,
      input.event,
      JSON.stringify(input.recipients ?? []),
      input.channel,
      input.destination ?? null,
      input.fallback ?? [],
      JSON.stringify(input.conditions ?? {}),
      input.enabled ?? true,
    ],
  );
  if (!rows[0]) throw notFound('notification rule');
  return toRule(rows[0]);
}

export async function deleteRule(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM notification_rules WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('notification rule');
}

export async function listRules(
  tx: TenantTx,
  input: { event?: EventType | undefined; limit?: number | undefined; cursor?: string | undefined },
): Promise<Page<NotificationRule>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['tenant_id = $1'];
  if (input.event) {
    values.push(input.event);
    where.push(`event = $${values.length}`);
  }
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(created_at, id) < ($${values.length - 1}, $${values.length})`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<RuleRow>(
    `SELECT ${COLUMNS} FROM notification_rules WHERE ${where.join(' AND ')}
      ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toRule);
}

/**
 * Of these tenants and event types, the pairs `tenant|type` some enabled rule is about, across
 * tenants (the dispatcher's check before it makes a fan-out job, platform work).
 */
export async function tenantsWithRules(
  sys: SystemTx,
  tenantIds: string[],
  types: string[],
): Promise<Set<string>> {
  const { rows } = await sys.query<{ tenant_id: string; event: string }>(
    `SELECT DISTINCT tenant_id, event FROM notification_rules
      WHERE tenant_id = ANY($1::uuid[]) AND event = ANY($2::text[]) AND enabled`,
    [tenantIds, types],
  );
  return new Set(rows.map((r) => `${r.tenant_id}|${r.event}`));
}
/** The enabled rules of an event type. */
export async function rulesFor(tx: TenantTx, event: EventType): Promise<NotificationRule[]> {
  const { rows } = await tx.query<RuleRow>(
    `SELECT ${COLUMNS} FROM notification_rules WHERE tenant_id = $1 AND event = $2 AND enabled ORDER BY id`,
    [tx.tenantId, event],
  );
  return rows.map(toRule);
}
