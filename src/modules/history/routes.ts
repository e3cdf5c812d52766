// GET /tickets/:id/history.
import { type TSchema, Type } from 'typebox';
import { withTenantRead } from '../../platform/db/tx.ts';
import { IdParams, Nullable, problemResponses, Timestamp, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { HISTORY_LIMIT, ticketHistory } from './service.ts';

const Actor = Nullable(Type.Object({ id: Uuid, displayName: Type.String() }));
const entry = <T extends Record<string, TSchema>>(kind: string, fields: T) =>
  Type.Object({ kind: Type.Literal(kind), at: Timestamp, actor: Actor, ...fields });

const HistoryEntrySchema = Type.Union([
  entry('status', { from: Nullable(Type.String()), to: Type.String() }),
  entry('assignment', { from: Nullable(Uuid), to: Nullable(Uuid) }),
  entry('sla', {
    metric: Type.String(),
    cycle: Type.Integer(),
    type: Type.String(),
    data: Type.Record(Type.String(), Type.Unknown()),
  }),
  entry('audit', {
    action: Type.String(),
    outcome: Type.String(),
    errorCode: Nullable(Type.String()),
    via: Type.String(),
  }),
]);

export const historyRoutes: RouteModule = (app, { pool }) => {
  app.get(
    '/tickets/:id/history',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: "A ticket's history",
        description:
          'What happened to the ticket, oldest first, each entry with `kind`, `at` and `actor` (`id` and ' +
          '`displayName`, or null for the system):\n\n' +
          '- `status`: a status change, `from` (null at creation) and `to`;\n' +
          '- `assignment`: an assignment to an agent, `from` and `to` (person ids). Assignments are ' +
          'read from the events that notifications fan out, which are kept 30 days: older ones are ' +
          'not shown, and an unassignment is not one (the audit entry of the change shows it);\n' +
          '- `sla`: what the SLA engine did (`metric`, `cycle`, `type`: started, paused, resumed, ' +
          'threshold, breached, escalation, fulfilled, recomputed, cancelled; `data`), as ' +
          '`/tickets/{id}/sla/events` lists them;\n' +
          '- `audit`: every write of the API that named the ticket (`action` such as `tickets.update`, ' +
          '`tickets.messages.create`, `tickets.bulk_update`; `outcome`; `errorCode`; `via`), as ' +
          '`/audit-events` records them (without the payload hash).\n\n' +
          `At most the newest ${HISTORY_LIMIT} entries of each kind; \`truncated\` is true when a kind ` +
          'may have more.\n\n' +
          'Needs `tickets:read` (every role; the audit entries of the ticket included). 404 ' +
          '`not_found` when the id is not a ticket of this tenant or it was deleted.',
        params: IdParams,
        response: {
          200: Type.Object({ items: Type.Array(HistoryEntrySchema), truncated: Type.Boolean() }),
          ...problemResponses,
        },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => ticketHistory(tx, request.params.id)),
  );
};
