// GET /stream: the tenant's changes as server-sent events, for the console's live updates.
import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import { AppError } from '../../platform/errors.ts';
import { problemResponses } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { type StreamEvent, StreamHub } from './hub.ts';

export interface StreamOptions {
  /** How often a comment line keeps the connection (and proxies on the way) from idling out. */
  heartbeatMs?: number;
  /**
   * How long one stream lasts before the server ends it and the client reconnects (EventSource does
   * so by itself, after `retry`): each reconnection is authenticated again, so a revoked token or a
   * suspended person does not keep a stream for ever.
   */
  maxLifetimeMs?: number;
}

/** A stream whose client reads slower than its events come is ended (it reconnects and reloads). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const RETRY_MS = 3000;

const frame = (e: StreamEvent): string => `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;

export function streamRoutesWith(options: StreamOptions = {}): RouteModule {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxLifetimeMs = options.maxLifetimeMs ?? 10 * 60_000;
  return (app, deps) => {
    let hub: StreamHub | undefined;
    const open = new Set<ServerResponse>();
    // Open streams would keep app.close() waiting for ever: they are ended as closing begins.
    app.addHook('preClose', async () => {
      for (const res of open) res.end();
    });
    app.addHook('onClose', async () => {
      await hub?.stop();
    });

    app.get(
      '/stream',
      {
        config: { permission: 'tickets:read' },
        schema: {
          tags: ['tickets'],
          summary: 'Follow the changes of the tenant (server-sent events)',
          description:
            "A `text/event-stream` of the tenant's changes, for live updates (the console opens it with " +
            'EventSource). Events, each with one line of JSON in `data`:\n\n' +
            '- `ticket` `{"ticketId", "number", "change"}` when a ticket or its messages change; ' +
            '`change` is `created`, `updated`, `deleted` or `message` (a message or note was added). ' +
            'With `"change": "reload"` and null `ticketId` and `number`, too many changed at once (or ' +
            'the server may have missed some): reload what is shown.\n' +
            '- `presence` `{"ticketId", "people": [{"id", "displayName", "state"}]}` when someone opens ' +
            'or closes a ticket or starts or stops replying (see `PUT /tickets/{id}/presence`); ' +
            '`people` is everyone on it now, the receiver included.\n' +
            '- `mailbox` `{"mailboxId", "status", "previousStatus"}` when the health status of a ' +
            'mailbox changes (see `GET /mailboxes/{id}/health`).\n\n' +
            `A comment line (\`: heartbeat\`) comes every ${heartbeatMs / 1000} seconds. Events name ` +
            'what changed, never its content: read it through the API. An event is sent once its change ' +
            'is committed; nothing is replayed, so a client reloads what it shows when it (re)connects. ' +
            `The server ends a stream after ${maxLifetimeMs / 60_000} minutes (and when it shuts down); ` +
            `EventSource reconnects after ${RETRY_MS / 1000} seconds by itself.\n\n` +
            'Needs `tickets:read` (every role). 503 `database_unavailable` when the change feed cannot ' +
            'be opened now.',
          response: {
            200: Type.String({ description: 'text/event-stream' }),
            ...problemResponses,
          },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        if (!deps.databaseUrl)
          throw new AppError('database_unavailable', 'The change feed is not configured');
        const headers = {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
        };
        // HEAD (which Fastify routes here too) asks for the headers alone. Node sends a HEAD answer's
        // headers only when it ends, and a stream never ends: it would hang until its lifetime ran out.
        if (request.method === 'HEAD') return reply.code(200).headers(headers).send('');
        hub ??= new StreamHub({
          connectionString: deps.databaseUrl,
          pool: deps.pool,
          clock: deps.clock,
          logger: deps.logger,
        });
        await hub.ready();
        const feed = hub;
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          ...headers,
          connection: 'keep-alive',
          // Proxies that buffer responses (nginx) would hold the events back.
          'x-accel-buffering': 'no',
        });
        res.write(`retry: ${RETRY_MS}\n: connected\n\n`);
        open.add(res);
        const write = (text: string) => {
          if (res.writableEnded) return;
          res.write(text);
          if (res.writableLength > MAX_BUFFERED_BYTES) res.end();
        };
        const unsubscribe = feed.subscribe(principal.tenantId, (e) => write(frame(e)));
        const heartbeat = setInterval(() => write(': heartbeat\n\n'), heartbeatMs);
        const lifetime = setTimeout(() => res.end(), maxLifetimeMs);
        const done = () => {
          clearInterval(heartbeat);
          clearTimeout(lifetime);
          unsubscribe();
          open.delete(res);
        };
        res.on('close', done);
        res.on('finish', done);
      },
    );
  };
}

export const streamRoutes: RouteModule = streamRoutesWith();
