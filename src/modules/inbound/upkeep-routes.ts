// The API of subscription upkeep: a mailbox's health, renew and reconcile now, and a test of its
// credentials and reachability.
import { Type } from 'typebox';
import { DEFAULT_UPKEEP } from '../../platform/config.ts';
import { withTenantRead } from '../../platform/db/tx.ts';
import { AppError, conflict } from '../../platform/errors.ts';
import { type RouteModule, principalOf, type ServerDeps } from '../../platform/http/server.ts';
import {
  IdParams,
  Nullable,
  OneOf,
  ProblemSchema,
  problemResponses,
  Timestamp,
} from '../../platform/http/schemas.ts';
import { getHealth, HEALTH_STATUSES, isNotConnected } from './health.ts';
import { getMailbox } from './mailboxes.ts';
import { testMailbox } from './probe.ts';
import { enqueueReconcile, enqueueRenewal, type UpkeepDeps } from './upkeep.ts';

export const HealthSchema = Type.Object({
  status: OneOf(HEALTH_STATUSES),
  subscriptionId: Nullable(Type.String()),
  expiresAt: Nullable(Timestamp),
  lastRenewalAt: Nullable(Timestamp),
  lastRenewalResult: Nullable(OneOf(['created', 'renewed', 'reauthorized', 'recreated', 'failed'] as const)),
  failureReason: Nullable(Type.String()),
  consecutiveFailures: Type.Integer(),
  lastNotificationAt: Nullable(Timestamp),
  lastMessageAt: Nullable(Timestamp),
  lastReconcileAt: Nullable(Timestamp),
  recoveredByLastReconcile: Nullable(Type.Integer()),
  connected: Type.Boolean(),
});

export const HEALTH_DESCRIPTION =
  '`health`: `status` (`healthy`, `renewing` while a subscription is being made, `degraded` after a ' +
  'failed renewal, `error` after several in a row, `needs_reauth` when the provider refused the ' +
  'credentials, or a Graph or Gmail mailbox was made without any (`failureReason` "not connected ' +
  'yet…"): only new credentials or connecting mend it, `disabled`), the provider ' +
  '`subscriptionId` (a Gmail watch: its topic) and `expiresAt`, `lastRenewalAt`, `lastRenewalResult` ' +
  '(`created`, `renewed`, `reauthorized`, `recreated`, `failed`), `failureReason`, ' +
  '`consecutiveFailures`, `lastNotificationAt` (the last webhook call; noted at most every 10 s), ' +
  '`lastMessageAt` (the last message that made a ticket or comment; as often), `lastReconcileAt` and ' +
  '`recoveredByLastReconcile` (messages found that no notification had brought), and `connected`: ' +
  'false while a Graph or Gmail mailbox is not connected to its account yet (then connect it or give ' +
  'it credentials; renewing it is refused), true otherwise.';

/** What the upkeep functions need, from the server's dependencies. */
export function upkeepDepsOf(deps: ServerDeps): UpkeepDeps {
  if (!deps.secretKey) throw new AppError('internal_error', 'no secret key configured');
  return {
    pool: deps.pool,
    secretKey: deps.secretKey,
    clock: deps.clock,
    logger: deps.logger,
    publicUrl: deps.config.publicUrl,
    upkeep: deps.config.upkeep ?? DEFAULT_UPKEEP,
    oauth: deps.config.oauth,
  };
}

const TestSchema = Type.Object({
  ok: Type.Boolean(),
  steps: Type.Array(Type.Object({ step: Type.String(), ok: Type.Boolean(), message: Type.String() })),
});

export const upkeepRoutes: RouteModule = (app, deps) => {
  const { pool, queue } = deps;
  const sendOrFail = () => {
    if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
    return queue;
  };

  app.get(
    '/mailboxes/:id/health',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: "A mailbox's health: is mail flowing",
        description:
          `The mailbox's ${HEALTH_DESCRIPTION} The same object is \`health\` in the mailbox's own answers.\n\n` +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not a mailbox of this tenant.',
        params: IdParams,
        response: { 200: HealthSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getHealth(tx, request.params.id)),
  );

  app.post(
    '/mailboxes/:id/renew',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: "Renew a mailbox's subscription now",
        description:
          'Renews the Graph subscription or the Gmail watch of the mailbox now (or makes one when it has ' +
          'none), as the scheduled upkeep would; also after a failure, without waiting for its backoff. ' +
          'Answers 202 `{"accepted": true}`; the result shows in `GET /mailboxes/{id}/health`.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found`; 409 `conflict` while a renewal of the ' +
          'mailbox runs; 400 `validation_failed` for a mailbox that has no subscription (IMAP, MIME) or ' +
          'is not connected yet.',
        params: IdParams,
        response: { 202: Type.Object({ accepted: Type.Boolean() }), 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const tenantId = principalOf(request).tenantId;
      const { mailbox, health } = await withTenantRead(pool, tenantId, async (tx) => ({
        mailbox: await getMailbox(tx, request.params.id),
        health: await getHealth(tx, request.params.id),
      }));
      if (mailbox.kind !== 'graph' && mailbox.kind !== 'gmail')
        throw new AppError('validation_failed', `a ${mailbox.kind} mailbox has no subscription to renew`);
      if (isNotConnected(health))
        throw new AppError(
          'validation_failed',
          `${mailbox.address} is not connected yet: connect it (POST /mailboxes/{id}/connect) before renewing`,
        );
      const q = sendOrFail();
      const accepted = await enqueueRenewal(
        upkeepDepsOf(deps),
        tenantId,
        mailbox.id,
        (job, payload, options) => q.send(job, payload, options ?? {}),
      );
      if (!accepted) throw conflict('a renewal of this mailbox is running');
      return reply.code(202).send({ accepted: true });
    },
  );

  app.post(
    '/mailboxes/:id/reconcile',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Look for mail a notification missed, now',
        description:
          "Reads what arrived in the mailbox's folder since the last reconciliation (Graph: its delta " +
          'link; Gmail: history since the last history id; IMAP: UIDs above the last one seen) and ' +
          'records every message not recorded yet, through the normal pipeline (a message found twice ' +
          'ends as a duplicate). Answers 202 `{"accepted": true}`; `lastReconcileAt` and ' +
          '`recoveredByLastReconcile` in the health show the result.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found`; 409 `conflict` while a reconciliation of ' +
          'the mailbox runs; 400 `validation_failed` for a MIME mailbox (nothing to read from).',
        params: IdParams,
        response: { 202: Type.Object({ accepted: Type.Boolean() }), 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const tenantId = principalOf(request).tenantId;
      const mailbox = await withTenantRead(pool, tenantId, (tx) => getMailbox(tx, request.params.id));
      if (mailbox.kind === 'mime')
        throw new AppError('validation_failed', 'a MIME mailbox has no source to reconcile with');
      const q = sendOrFail();
      const accepted = await enqueueReconcile(
        upkeepDepsOf(deps),
        tenantId,
        mailbox.id,
        (job, payload, options) => q.send(job, payload, options ?? {}),
      );
      if (!accepted) throw conflict('a reconciliation of this mailbox is running');
      return reply.code(202).send({ accepted: true });
    },
  );

  app.post(
    '/mailboxes/:id/test',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: "Test a mailbox's credentials and reachability",
        description:
          'Checks, step by step, what receiving mail needs and says what is wrong: IMAP connects, logs ' +
          'in and selects the folder; Graph gets a token and reads the folder; Gmail gets a token and ' +
          'reads the profile. Answers 200 `{ok, steps: [{step, ok, message}]}` whatever the result ' +
          '(the steps after a failed one are not tried). Changes nothing.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found`.',
        params: IdParams,
        response: { 200: TestSchema, ...problemResponses },
      },
    },
    async (request) => {
      const tenantId = principalOf(request).tenantId;
      const mailbox = await withTenantRead(pool, tenantId, (tx) => getMailbox(tx, request.params.id));
      return testMailbox(upkeepDepsOf(deps), tenantId, mailbox);
    },
  );
};
