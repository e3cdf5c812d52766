// What the bot does with an activity whose token verified: remember where the user can be reached
// (the conversation reference), find the person behind the user (or put the user in triage), then
// answer what was asked: an Action.Execute invoke gets a refreshed card in the HTTP answer (Universal
// Actions), a message action a message, and a typed command a reply in the conversation.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import { resolvePerson } from '../people/identities.ts';
import { recordUnmapped } from '../people/unmapped.ts';
import { type ActionCommand, type ActionDeps, type ActionResult, runTeamsAction } from './actions.ts';
import { ADAPTIVE_CARD, messageCard, ticketCard } from './cards.ts';
import { commandOfAction, HELP_TEXT, parseCommand, plainMessageText } from './commands.ts';
import type { BotConnector } from './connector.ts';
import { integrationCredentials } from './integrations.ts';
import { CONVERSATION_TYPES, type ConversationType, upsertReference } from './references.ts';

export type Activity = Record<string, unknown>;

export interface ActivityDeps extends ActionDeps {
  pool: Pool;
  logger: Logger;
  clock: Clock;
  connector: BotConnector;
}

export interface ActivityAnswer {
  status: number;
  body: unknown;
}

const str = (v: unknown, max: number): string | null =>
  typeof v === 'string' && v !== '' && v.length <= max ? v : null;
const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

interface Sender {
  userId: string;
  aadObjectId: string | null;
  name: string | null;
}

function senderOf(activity: Activity): Sender | undefined {
  const from = obj(activity['from']);
  const userId = str(from['id'], 512);
  if (!userId) return undefined;
  return { userId, aadObjectId: str(from['aadObjectId'], 200), name: str(from['name'], 200) };
}

/** Stores the reference and resolves the person (teams identity first, then entra); undefined when unknown. */
async function rememberAndResolve(
  deps: ActivityDeps,
  tenantId: string,
  activity: Activity,
  sender: Sender,
): Promise<string | undefined> {
  const conversation = obj(activity['conversation']);
  const conversationId = str(conversation['id'], 1024);
  const type = (conversation['conversationType'] ?? 'personal') as ConversationType;
  const serviceUrl = str(activity['serviceUrl'], 2048);
  const storable = conversationId && serviceUrl && (CONVERSATION_TYPES as readonly string[]).includes(type);
  return withTenant(deps.pool, tenantId, async (tx) => {
    if (storable)
      await upsertReference(tx, {
        userId: sender.userId,
        aadObjectId: sender.aadObjectId,
        conversationId,
        conversationType: type,
        serviceUrl,
        entraTenantId:
          str(conversation['tenantId'], 200) ?? str(obj(obj(activity['channelData'])['tenant'])['id'], 200),
        channelId: str(activity['channelId'], 64) ?? 'msteams',
        at: deps.clock.now(),
      });
    const person =
      (await resolvePerson(tx, { kind: 'teams', externalId: sender.userId })) ??
      (sender.aadObjectId
        ? await resolvePerson(tx, { kind: 'entra', externalId: sender.aadObjectId })
        : undefined);
    return person?.id;
  });
}

/**
 * The author of a message a message action was chosen on (messagePayload.from.user: `id`, the Entra
 * object id of an `aadUser`, and `displayName`), as a person through the identities when linked.
 */
async function messageAuthor(
  deps: ActivityDeps,
  tenantId: string,
  user: Record<string, unknown>,
): Promise<{ personId: string | undefined; name: string | undefined }> {
  const id = str(user['id'], 200);
  const name = str(user['displayName'], 200) ?? undefined;
  if (!id) return { personId: undefined, name };
  const person = await withTenantRead(
    deps.pool,
    tenantId,
    async (tx) =>
      (await resolvePerson(tx, { kind: 'entra', externalId: id })) ??
      (await resolvePerson(tx, { kind: 'teams', externalId: id })),
  );
  return { personId: person?.id, name };
}

const invokeAnswer = (result: ActionResult): ActivityAnswer => ({
  status: 200,
  body: {
    statusCode: 200,
    type: ADAPTIVE_CARD,
    value: result.ticket
      ? ticketCard(result.ticket, result.message, { attention: result.outcome !== 'success' })
      : messageCard(result.message, { attention: result.outcome !== 'success' }),
  },
});

/** Answers in the conversation (a reply to the activity); a failure is logged, never raised. */
async function replyInConversation(deps: ActivityDeps, tenantId: string, activity: Activity, text: string) {
  try {
    const credentials = await withTenantRead(deps.pool, tenantId, (tx) =>
      integrationCredentials(tx, deps.secretKey),
    );
    const conversationId = str(obj(activity['conversation'])['id'], 1024);
    const serviceUrl = str(activity['serviceUrl'], 2048);
    if (!credentials || !conversationId || !serviceUrl) return;
    await deps.connector.sendActivity({
      credentials,
      serviceUrl,
      conversationId,
      replyToId: str(activity['id'], 200) ?? undefined,
      activity: {
        type: 'message',
        text,
        textFormat: 'markdown',
        replyToId: activity['id'],
        from: activity['recipient'],
        recipient: activity['from'],
        conversation: activity['conversation'],
      },
    });
  } catch (err) {
    deps.logger.warn({ err, tenantId }, 'the answer to a Teams message could not be sent');
  }
}

/**
 * Handles one verified activity of the tenant's bot; returns the HTTP answer. `requestId`: the
 * request that brought it, kept with the audit event of an action it carries out.
 */
export async function receiveActivity(
  deps: ActivityDeps,
  tenantId: string,
  activity: Activity,
  requestId?: string,
): Promise<ActivityAnswer> {
  const sender = senderOf(activity);
  if (!sender) return { status: 200, body: {} };
  const personId = await rememberAndResolve(deps, tenantId, activity, sender);
  const type = activity['type'];
  const text = typeof activity['text'] === 'string' ? activity['text'] : '';
  if (!personId)
    await recordUnmapped(
      deps.pool,
      tenantId,
      {
        kind: sender.aadObjectId ? 'entra' : 'teams',
        externalId: sender.aadObjectId ?? sender.userId,
        eventType: typeof type === 'string' ? type.slice(0, 64) : 'activity',
        ...(text ? { context: plainMessageText(text) } : {}),
        ...(sender.name ? { displayName: sender.name } : {}),
      },
      deps.logger,
    );

  const run = (command: ActionCommand, payload: unknown) =>
    runTeamsAction(deps, { tenantId, personId, command, payload, requestId });

  if (type === 'invoke') {
    const value = obj(activity['value']);
    if (activity['name'] === 'adaptiveCard/action') {
      const action = obj(value['action']);
      const command = commandOfAction(action['verb'], action['data']);
      if (!command || command.kind === 'help' || action['type'] !== 'Action.Execute')
        return {
          status: 200,
          body: {
            statusCode: 400,
            type: 'application/vnd.microsoft.error',
            value: { code: 'BadRequest', message: `unknown action ${String(action['verb']).slice(0, 40)}` },
          },
        };
      return invokeAnswer(await run(command, activity['value'] ?? null));
    }
    if (activity['name'] === 'composeExtension/submitAction' && value['commandId'] === 'createTicket') {
      // The message action "Create ticket" on a message: the message becomes the ticket, asked for
      // by its author when they are a known person, else by whoever chose the action.
      const payload = obj(value['messagePayload']);
      const message = plainMessageText(String(obj(payload['body'])['content'] ?? ''));
      const first = message.split('\n')[0] ?? '';
      const author = await messageAuthor(deps, tenantId, obj(obj(payload['from'])['user']));
      const posted = !author.personId && author.name ? `Posted in Teams by ${author.name}:\n\n` : '';
      const result = await run(
        {
          kind: 'create_ticket',
          subject: first.slice(0, 200),
          text: message ? `${posted}${message}` : undefined,
          requesterId: author.personId,
        },
        activity['value'] ?? null,
      );
      const ticket = result.ticket ? ` ${result.ticket.number}: ${result.ticket.subject}` : '';
      return { status: 200, body: { task: { type: 'message', value: `${result.message}${ticket}` } } };
    }
    // Invokes the bot does not implement (the Bot Framework convention).
    return { status: 501, body: {} };
  }

  if (type === 'message' && text) {
    const command = parseCommand(text);
    if (!command || command.kind === 'help') {
      await replyInConversation(deps, tenantId, activity, HELP_TEXT);
      return { status: 200, body: {} };
    }
    const result = await run(command, { text });
    const ticket = result.ticket
      ? ` ${result.ticket.number}: ${result.ticket.subject} (${result.ticket.status})`
      : '';
    await replyInConversation(deps, tenantId, activity, `${result.message}${ticket}`);
  }
  return { status: 200, body: {} };
}
