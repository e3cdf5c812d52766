// What a Teams user does to a ticket from Teams: assign it to themselves, add an internal note,
// reply to the requester (by email, through outbound mail), change its status, create a ticket.
// Each runs as the person behind the Teams user, with that person's permissions (tickets:write, as
// the API asks), in one transaction, and is recorded in the audit trail (actor via `teams`) however
// it ends: success, unauthorised (an unknown user, or one without the permission) or failed.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, notFound, validation } from '../../platform/errors.ts';
import { isUuid } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { type AuditOutcome, recordAudit } from '../audit/audit.ts';
import { messageIdKey } from '../inbound/signing.ts';
import type { NotificationTicket } from '../notify/channel.ts';
import { postTicketMessage } from '../outbound/replies.ts';
import { assignTicket, changeStatus } from '../tickets/changes.ts';
import { createTicket } from '../tickets/create.ts';
import { TICKET_STATUSES, type TicketStatus } from '../tickets/model.ts';
import { personPermissions } from '../tokens/person-roles.ts';
import type { TeamsCommand, TicketRef } from './commands.ts';
import { ticketIdByNumber, ticketView } from './ticket-view.ts';

export interface ActionDeps {
  pool: Pool;
  logger: Logger;
  clock: Clock;
  secretKey: Buffer;
  /** For a reply's mail (queued with the message); without it, replies fail. */
  queue?: Pick<JobQueue, 'send'> | undefined;
}

export type ActionCommand = Exclude<TeamsCommand, { kind: 'help' }>;

export interface ActionResult {
  outcome: AuditOutcome;
  errorCode: string | null;
  /** One line for the user. */
  message: string;
  /** The ticket as it is after the action (success only). */
  ticket: NotificationTicket | null;
}

const DONE: Record<ActionCommand['kind'], string> = {
  assign_to_me: 'Assigned to you.',
  add_note: 'Note added.',
  reply: 'Reply sent to the requester.',
  change_status: 'Status changed.',
  create_ticket: 'Ticket created.',
};

async function resolveTicket(tx: TenantTx, ref: TicketRef): Promise<string> {
  if ('number' in ref) return ticketIdByNumber(tx, ref.number);
  if (!isUuid(ref.id)) throw notFound('ticket');
  return ref.id;
}

function nonEmpty(text: string, path: string): string {
  if (text.trim() === '')
    throw validation(`${path.slice(1)} must not be empty`, [{ path, message: 'is empty' }]);
  return text;
}

async function perform(
  tx: TenantTx,
  deps: ActionDeps,
  personId: string,
  command: ActionCommand,
): Promise<string> {
  switch (command.kind) {
    case 'assign_to_me': {
      const ticketId = await resolveTicket(tx, command.ticket);
      await assignTicket(tx, { ticketId, assigneeId: personId, actorId: personId });
      return ticketId;
    }
    case 'add_note':
    case 'reply': {
      const ticketId = await resolveTicket(tx, command.ticket);
      const text = nonEmpty(command.text, '/text');
      if (command.kind === 'reply' && !deps.queue)
        throw new AppError(
          'queue_unavailable',
          'replies need the job queue, which this process does not run',
        );
      await postTicketMessage(
        tx,
        { messageIdKey: messageIdKey(deps.secretKey), queue: deps.queue! },
        { ticketId, authorId: personId, visibility: command.kind === 'reply' ? 'public' : 'internal', text },
      );
      return ticketId;
    }
    case 'change_status': {
      const ticketId = await resolveTicket(tx, command.ticket);
      if (!(TICKET_STATUSES as readonly string[]).includes(command.status))
        throw validation(`status must be one of ${TICKET_STATUSES.join(', ')}`, [
          { path: '/status', message: 'is not a status' },
        ]);
      await changeStatus(tx, { ticketId, status: command.status as TicketStatus, actorId: personId });
      return ticketId;
    }
    case 'create_ticket': {
      const ticket = await createTicket(tx, {
        subject: nonEmpty(command.subject, '/subject'),
        requester: { personId: command.requesterId ?? personId },
        ...(command.text ? { message: { text: command.text } } : {}),
        actorId: personId,
      });
      return ticket.id;
    }
  }
}

/** The ticket an action failed on, as its card shows it, for a person who may change tickets. */
async function failedView(
  deps: ActionDeps,
  tenantId: string,
  personId: string,
  ticketId: string | null,
): Promise<NotificationTicket | null> {
  if (!ticketId) return null;
  try {
    return await withTenantRead(deps.pool, tenantId, async (tx) =>
      (await personPermissions(tx, personId)).includes('tickets:write')
        ? await ticketView(tx, ticketId, deps.clock.now())
        : null,
    );
  } catch {
    return null;
  }
}

/**
 * Runs a command as `personId` (undefined: a Teams user linked to nobody) and records it in the
 * audit trail with the hash of `payload` (the invoke's value, or the message's text).
 */
export async function runTeamsAction(
  deps: ActionDeps,
  input: {
    tenantId: string;
    personId: string | undefined;
    command: ActionCommand;
    payload: unknown;
    requestId?: string | undefined;
  },
): Promise<ActionResult> {
  const { command } = input;
  const action = `teams.${command.kind}`;
  const target =
    'ticket' in command && 'id' in command.ticket && isUuid(command.ticket.id) ? command.ticket.id : null;
  let result: ActionResult & { ticketId: string | null };
  if (!input.personId) {
    result = {
      outcome: 'unauthorised',
      errorCode: 'unknown_user',
      message:
        'I do not know who you are in Relaydesk yet: ask an administrator to link your Teams account to your person.',
      ticket: null,
      ticketId: target,
    };
  } else {
    const personId = input.personId;
    try {
      result = await withTenant(deps.pool, input.tenantId, async (tx) => {
        const permissions = await personPermissions(tx, personId);
        if (!permissions.includes('tickets:write'))
          return {
            outcome: 'unauthorised' as const,
            errorCode: 'forbidden',
            message: 'You do not have the permission to change tickets (tickets:write).',
            ticket: null,
            ticketId: target,
          };
        const ticketId = await perform(tx, deps, personId, command);
        return {
          outcome: 'success' as const,
          errorCode: null,
          message: DONE[command.kind],
          ticket: await ticketView(tx, ticketId, deps.clock.now()),
          ticketId,
        };
      });
    } catch (err) {
      const known = err instanceof AppError;
      if (!known) deps.logger.error({ err, action, tenantId: input.tenantId }, 'a Teams action failed');
      result = {
        outcome: 'failed',
        errorCode: known ? err.code : 'internal_error',
        message: known
          ? `That did not work: ${err.message}`
          : 'That did not work: something went wrong on our side.',
        // Whoever may change tickets keeps the ticket's card (and its buttons) with the reason.
        ticket: await failedView(deps, input.tenantId, personId, target),
        ticketId: target,
      };
    }
  }
  await recordAudit(deps, {
    tenantId: input.tenantId,
    actorId: input.personId ?? null,
    actorVia: 'teams',
    action,
    targetType: result.ticketId ? 'ticket' : null,
    targetId: result.ticketId,
    outcome: result.outcome,
    errorCode: result.errorCode,
    payload: input.payload,
    requestId: input.requestId ?? null,
  });
  const { ticketId: _ticketId, ...answer } = result;
  return answer;
}
