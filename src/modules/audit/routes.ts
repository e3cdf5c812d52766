// The audit trail's routes: the hooks that record every API write (request-audit.ts), and the read
// API over what was recorded.
import { Type } from 'typebox';
import { withTenantRead } from '../../platform/db/tx.ts';
import { validation } from '../../platform/errors.ts';
import {
  ListQuery,
  Nullable,
  OneOf,
  Page,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { AUDIT_OUTCOMES, listAuditEvents } from './audit.ts';
import { auditRequests } from './request-audit.ts';

const AuditEventSchema = Type.Object({
  id: Uuid,
  at: Timestamp,
  actorId: Nullable(Uuid),
  actorVia: Type.String({
    description:
      '`token` (the API with a token), `session` (the API from a console session), `teams`, `cli` (the ' +
      '`relaydesk` command line: `actorId` null) or `system`',
  }),
  action: Type.String(),
  targetType: Nullable(Type.String()),
  targetId: Nullable(Type.String()),
  outcome: OneOf(AUDIT_OUTCOMES),
  errorCode: Nullable(Type.String()),
  requestId: Nullable(Type.String()),
  payloadHash: Type.String({ description: 'SHA-256 (hex) of the RFC 8785 canonical JSON of the request' }),
});

const AuditQuery = Type.Object(
  {
    ...ListQuery,
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    actorId: Type.Optional(Uuid),
    targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    outcome: Type.Optional(OneOf(AUDIT_OUTCOMES)),
    from: Type.Optional(Timestamp),
    to: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);

/** Register first among the /api/v1 modules: its hooks watch every route of the scope. */
export const auditRoutes: RouteModule = (app, deps) => {
  auditRequests(app, deps);

  app.get(
    '/audit-events',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags: ['audit'],
        summary: 'List audit events',
        description:
          'The audit trail, newest first: one event for every write to the API (`POST`, `PUT`, ' +
          '`PATCH`, `DELETE`) by a token of this tenant, whatever its outcome: `success` (2xx), ' +
          '`unauthorised` (401, 403), `unavailable` (429, 503) or `failed` (anything else, with the ' +
          "problem's `errorCode`). `action` is named after the route (`tickets.update`, " +
          '`tickets.messages.create`, `people.merge`, `tokens.create`, `mailboxes.delete`); ' +
          "`targetId` is the path's `id`, else the id of what the request created. The request " +
          'itself is never kept: `payloadHash` is the SHA-256 of its RFC 8785 canonical JSON (for ' +
          'multipart, of its fields with each file as its field, name and size). Requests without a ' +
          'valid token are not recorded (no tenant to record them in), nor are reads. Filters: ' +
          '`action`, `actorId`, `targetId`, `outcome`, `from` and `to` (`to` exclusive). Paged: ' +
          '`limit` (default 50, max 200) and `cursor`.\n\n' +
          'Needs `audit:read` (admin).',
        querystring: AuditQuery,
        response: { 200: Page(AuditEventSchema), ...problemResponses },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.from && q.to && Date.parse(q.from) > Date.parse(q.to))
        throw validation('from must not be after to', [{ path: '/from', message: 'is after to' }]);
      return withTenantRead(deps.pool, principalOf(request).tenantId, (tx) => listAuditEvents(tx, q));
    },
  );
};
