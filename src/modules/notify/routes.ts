// Notification rules over HTTP: keep them, and send a sample through one.
import { Type } from 'typebox';
import { type TenantTx, withTenant, withTenantRead } from '../../platform/db/tx.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  OneOf,
  Page,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule, type ServerDeps } from '../../platform/http/server.ts';
import { EVENT_TYPES, recordEvent } from '../events/events.ts';
import { assertPersonExists } from '../people/service.ts';
import { TICKET_PRIORITIES } from '../tickets/model.ts';
import { getTicket } from '../tickets/queries.ts';
import { PERSON_ROLES } from '../tokens/person-roles.ts';
import type { AdapterChannel, ChannelAdapter } from './channel.ts';
import {
  checkRule,
  createRule,
  deleteRule,
  getRule,
  listRules,
  PERSON_CHANNELS,
  RECIPIENT_TYPES,
  replaceRule,
  RULE_CHANNELS,
  type RuleInput,
} from './rules.ts';

const RecipientSchema = Type.Object(
  {
    type: OneOf(RECIPIENT_TYPES),
    role: Type.Optional(OneOf(PERSON_ROLES, { description: 'Of `type: role`: everyone active with it.' })),
    personId: Type.Optional(Type.String({ format: 'uuid', description: 'Of `type: person`.' })),
  },
  { additionalProperties: false },
);

const Conditions = Type.Object(
  {
    priority: Type.Optional(Type.Array(OneOf(TICKET_PRIORITIES), { maxItems: 4, uniqueItems: true })),
    mailboxId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

const RuleBody = Type.Object(
  {
    event: OneOf(EVENT_TYPES),
    recipients: Type.Optional(Type.Array(RecipientSchema, { maxItems: 50 })),
    channel: OneOf(RULE_CHANNELS),
    destination: Type.Optional(
      Nullable(
        Type.String({
          minLength: 1,
          maxLength: 500,
          description:
            'A fixed destination: a Teams conversation id (`teams`), a Slack channel id (`slack`), a webhook endpoint id (`webhook`).',
        }),
      ),
    ),
    fallback: Type.Optional(Type.Array(OneOf(PERSON_CHANNELS), { maxItems: 3, uniqueItems: true })),
    conditions: Type.Optional(Conditions),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const RuleSchema = Type.Object({
  id: Uuid,
  event: OneOf(EVENT_TYPES),
  recipients: Type.Array(RecipientSchema),
  channel: OneOf(RULE_CHANNELS),
  destination: Nullable(Type.String()),
  fallback: Type.Array(OneOf(PERSON_CHANNELS)),
  conditions: Conditions,
  enabled: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const RULES =
  'A rule: `event` (one of ' +
  EVENT_TYPES.map((e) => `\`${e}\``).join(', ') +
  ') → `recipients` (`assignee`, `requester`, `watchers` — agents other than the assignee who wrote ' +
  'on the ticket —, `role` with `role`, `person` with `personId`) → `channel`. `preferred` reaches ' +
  "each recipient on their preferred channel, then their own fallback order, then the rule's " +
  '`fallback`, then email; `teams`, `slack` or `email` reach each recipient on that channel, then ' +
  '`fallback`. With a `destination`, `teams`, `slack` and `webhook` go to that conversation, channel ' +
  'or endpoint instead. `conditions` narrow it to tickets of a `priority` or a `mailboxId`. Whoever ' +
  'caused an event does not hear of it; quiet hours hold all but urgent events (`sla.breached`).';

export type AdaptersOf = (deps: ServerDeps) => Map<AdapterChannel, ChannelAdapter>;

/** The routes; `adaptersOf` gives the installation's channel adapters (to check fixed destinations). */
export function notificationRuleRoutes(adaptersOf: AdaptersOf): RouteModule {
  return (app, deps) => {
    const { pool } = deps;
    const adapters = adaptersOf(deps);
    const manage = { config: { permission: 'notifications:manage' as const } };
    const destinationExists = (tx: TenantTx) => async (channel: string, destination: string) => {
      const adapter = adapters.get(channel as AdapterChannel);
      return adapter ? adapter.destinationExists(tx, destination) : false;
    };
    const save = async (tenantId: string, body: RuleInput, id?: string) =>
      withTenant(pool, tenantId, async (tx) => {
        for (const [i, r] of (body.recipients ?? []).entries())
          if (r.personId) await assertPersonExists(tx, r.personId, `/recipients/${i}/personId`);
        await checkRule(body, destinationExists(tx));
        return id ? replaceRule(tx, id, body) : createRule(tx, body);
      });

    app.post(
      '/notification-rules',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'Create a notification rule',
          description: `${RULES}\n\nAnswers 201 with the rule. Needs \`notifications:manage\` (admin). 400 \`validation_failed\` for a rule without recipients or destination, a destination the channel does not have in this tenant, or a person not of this tenant.`,
          body: RuleBody,
          response: { 201: RuleSchema, ...problemResponses },
        },
      },
      async (request, reply) => {
        const rule = await save(principalOf(request).tenantId, request.body);
        return reply.code(201).header('location', `/api/v1/notification-rules/${rule.id}`).send(rule);
      },
    );

    app.get(
      '/notification-rules',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'List notification rules',
          description:
            "The tenant's rules, newest first (a new tenant starts with defaults: the assignee hears of " +
            'customer replies, assignments and SLA breaches; admins of mailbox health changes); `event` ' +
            'keeps one event. Paged with `limit` and `cursor`. Needs `notifications:manage` (admin).',
          querystring: Type.Object(
            { ...ListQuery, event: Type.Optional(OneOf(EVENT_TYPES)) },
            { additionalProperties: false },
          ),
          response: { 200: Page(RuleSchema), ...problemResponses },
        },
      },
      async (request) =>
        withTenantRead(pool, principalOf(request).tenantId, (tx) => listRules(tx, request.query)),
    );

    app.get(
      '/notification-rules/:id',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'Get a notification rule',
          description: 'Needs `notifications:manage` (admin); 404 for an id not of this tenant.',
          params: IdParams,
          response: { 200: RuleSchema, ...problemResponses },
        },
      },
      async (request) =>
        withTenantRead(pool, principalOf(request).tenantId, (tx) => getRule(tx, request.params.id)),
    );

    app.put(
      '/notification-rules/:id',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'Replace a notification rule',
          description: `${RULES}\n\nReplaces the whole rule (what is left out takes its default). Needs \`notifications:manage\` (admin); 404 for an id not of this tenant.`,
          params: IdParams,
          body: RuleBody,
          response: { 200: RuleSchema, ...problemResponses },
        },
      },
      async (request) => save(principalOf(request).tenantId, request.body, request.params.id),
    );

    app.delete(
      '/notification-rules/:id',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'Delete a notification rule',
          description: 'Needs `notifications:manage` (admin); 404 for an id not of this tenant.',
          params: IdParams,
          response: { 204: Type.Null(), ...problemResponses },
        },
      },
      async (request, reply) => {
        await withTenant(pool, principalOf(request).tenantId, (tx) => deleteRule(tx, request.params.id));
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/notification-rules/:id/test',
      {
        ...manage,
        schema: {
          tags: ['notifications'],
          summary: 'Send a sample through a rule',
          description:
            'Records a `notification.test` event for this rule alone (enabled or not); it is fanned out ' +
            'and delivered like any event, to the recipients the rule reaches (an assignee or requester ' +
            'only with the `ticketId` query parameter), and its attempts show in `GET /deliveries`. Answers 202 with the ' +
            "event's id. Needs `notifications:manage` (admin); 404 for a rule or ticket not of this tenant.",
          params: IdParams,
          querystring: Type.Object({ ticketId: Type.Optional(Uuid) }, { additionalProperties: false }),
          response: { 202: Type.Object({ eventId: Uuid }), ...problemResponses },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const eventId = await withTenant(pool, principal.tenantId, async (tx) => {
          await getRule(tx, request.params.id);
          const ticketId = request.query.ticketId;
          if (ticketId) await getTicket(tx, ticketId);
          return recordEvent(tx, {
            type: 'notification.test',
            ticketId: ticketId ?? null,
            actorId: null,
            urgent: true,
            data: { ruleId: request.params.id, requestedBy: principal.personId },
          });
        });
        return reply.code(202).send({ eventId });
      },
    );
  };
}
