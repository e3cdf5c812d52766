// Connecting a mailbox by OAuth: POST /api/v1/mailboxes/{id}/connect (an admin asks for the
// provider's authorization URL) and GET /oauth/callback (public: the provider sends the browser
// back here; the single-use state is the proof). The callback answers a small HTML page, for the
// person in the browser.
import { escapeHtml } from '../../platform/html.ts';
import { Type } from 'typebox';
import { withTenant } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { ProblemSchema, IdParams, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule, type ServerDeps } from '../../platform/http/server.ts';
import {
  type ConnectionResult,
  finishConnection,
  isConsolePath,
  type OAuthDeps,
  OAUTH_SCOPES,
  startConnection,
} from './oauth.ts';
import { upkeepDepsOf } from './upkeep-routes.ts';
import { renewNow } from './upkeep.ts';

const oauthDepsOf = (deps: ServerDeps): OAuthDeps => {
  if (!deps.secretKey) throw new AppError('internal_error', 'no secret key configured');
  return {
    pool: deps.pool,
    secretKey: deps.secretKey,
    clock: deps.clock,
    // Read at each request: the configuration object is the server's own.
    publicUrl: deps.config.publicUrl,
    oauth: deps.config.oauth,
  };
};

const PROVIDER_NAMES = { graph: 'Microsoft 365', gmail: 'Gmail', imap: 'IMAP', mime: 'MIME' } as const;

/** The page the browser user sees: plain words, escaped, no scripts, nothing loaded from anywhere. */
export function connectionPage(result: ConnectionResult): string {
  const who = result.mailbox
    ? `${escapeHtml(result.mailbox.address)} (${PROVIDER_NAMES[result.mailbox.kind]})`
    : 'the mailbox';
  let title: string;
  const lines: string[] = [];
  if (result.connected) {
    title = 'Mailbox connected';
    lines.push(`${who} is connected to Relaydesk.`);
    lines.push(`Its health: ${escapeHtml(result.health)}.`);
    if (result.subscribeProblem)
      lines.push(
        `Subscribing to its new mail did not work yet: ${escapeHtml(result.subscribeProblem)}. ` +
          'Relaydesk keeps trying; the mailbox health says when it works.',
      );
    else lines.push('New mail will arrive in Relaydesk.');
  } else {
    title = 'Mailbox not connected';
    lines.push(`${who} was not connected: ${escapeHtml(result.reason)}.`);
    lines.push('Nothing was stored. Start connecting the mailbox again from Relaydesk.');
  }
  lines.push('You can close this page.');
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${title}</title></head>`,
    `<body><h1>${title}</h1>`,
    ...lines.map((l) => `<p>${l}</p>`),
    '</body></html>',
    '',
  ].join('\n');
}

const ConnectQuery = Type.Object(
  {
    returnTo: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description:
          'A path of the console (`/console/...`) to send the browser to after the callback, instead of ' +
          'its own page',
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * Where the callback sends the browser when connecting started from the console: the stored path
 * (checked again: it came from the database) on the public URL, with the outcome in the query.
 */
function consoleReturn(publicUrl: string | undefined, result: ConnectionResult): string | undefined {
  if (!publicUrl || !result.returnTo || !isConsolePath(result.returnTo)) return undefined;
  const target = new URL(`${publicUrl}${result.returnTo}`);
  target.searchParams.set('connect', result.connected ? 'connected' : 'failed');
  if (result.mailbox) target.searchParams.set('mailbox', result.mailbox.id);
  if (!result.connected)
    // Only a code, never the provider's free text: the console words it itself.
    target.searchParams.set(
      'error',
      result.error && /^[a-z_]{1,64}$/.test(result.error) ? result.error : 'refused',
    );
  return target.href;
}

const ConnectAnswer = Type.Object({
  authorizationUrl: Type.String({ description: "The provider's authorization URL to open in a browser" }),
  expiresAt: Timestamp,
});

/** POST /api/v1/mailboxes/{id}/connect. */
export const oauthRoutes: RouteModule = (app, deps) => {
  app.post(
    '/mailboxes/:id/connect',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Connect a Graph or Gmail mailbox by OAuth',
        description:
          'Starts connecting the mailbox as its owner would: answers 200 `{authorizationUrl, expiresAt}`, ' +
          "the provider's authorization URL (`settings.graph.authorizeUrl` or `settings.gmail.authorizeUrl`) " +
          'for a person who can sign in as the mailbox to open in a browser. It names the app registration ' +
          '(`client_id`), `redirect_uri` `{RELAYDESK_PUBLIC_URL}/oauth/callback` (register it with the ' +
          `provider), the scopes (Graph \`${OAUTH_SCOPES.graph}\`; Gmail \`${OAUTH_SCOPES.gmail}\` with ` +
          '`access_type=offline` and `prompt=consent`), a single-use `state`, a PKCE `code_challenge` ' +
          '(S256) and `login_hint` (the address). After consent the provider sends the browser to ' +
          '`/oauth/callback`, which stores the refresh token (encrypted, never returned) and subscribes ' +
          'the mailbox at once. The URL works once and expires after 10 minutes (`expiresAt`); asking ' +
          "again gives a new one. The app registration is the mailbox's own when `settings.oauth.clientId` " +
          "is set (its secret in `credentials.oauthClientSecret`), else the install's " +
          '(RELAYDESK_MICROSOFT_CLIENT_ID/_SECRET, RELAYDESK_GOOGLE_CLIENT_ID/_SECRET).\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not a mailbox of this tenant; ' +
          '400 `validation_failed` for a mailbox that is not `graph` or `gmail`, when RELAYDESK_PUBLIC_URL ' +
          'is not set, when there is no app registration to connect with (the message names the ' +
          'variables to set), or for a `returnTo` that is not a path under `/console`.',
        params: IdParams,
        querystring: ConnectQuery,
        response: { 200: ConnectAnswer, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return withTenant(deps.pool, principal.tenantId, (tx) =>
        startConnection(oauthDepsOf(deps), tx, {
          mailboxId: request.params.id,
          requestedBy: principal.personId,
          returnTo: request.query.returnTo,
        }),
      );
    },
  );
};

const CallbackQuery = Type.Object(
  {
    state: Type.String({ minLength: 1, maxLength: 512, description: 'The state of the authorization URL' }),
    code: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: 'The authorization code, after consent' }),
    ),
    error: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: 'The refusal, e.g. access_denied' }),
    ),
    error_description: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  // Providers add parameters of their own (Google: scope, authuser, prompt, hd; Microsoft: session_state).
  { additionalProperties: true },
);

/** GET /oauth/callback (outside /api/v1: the provider redirects the browser here). */
export const oauthCallbackRoutes: RouteModule = (app, deps) => {
  const { queue } = deps;
  const subscribe = async (tenantId: string, mailboxId: string): Promise<string | undefined> => {
    const outcome = await renewNow(upkeepDepsOf(deps), tenantId, mailboxId, (job, payload, options) => {
      if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
      return queue.send(job, payload, options ?? {});
    });
    return outcome?.result === 'failed' ? outcome.reason : undefined;
  };

  app.get(
    '/oauth/callback',
    {
      config: { public: true },
      schema: {
        tags: ['inbound'],
        summary: 'Where the provider sends the browser back after connecting a mailbox',
        security: [],
        description:
          'The `redirect_uri` of `POST /api/v1/mailboxes/{id}/connect`: the provider (Microsoft, Google) ' +
          'sends the browser here with `code` and `state` after consent, or `error` (e.g. ' +
          '`access_denied`), `error_description` and `state`. It takes no API token: the single-use ' +
          '`state` is the proof, and says which mailbox of which tenant is being connected.\n\n' +
          'With a code: exchanges it for tokens (the authorization code grant, with the PKCE verifier ' +
          'and the client secret), stores the refresh token on the mailbox, encrypted (Graph ' +
          '`{refreshToken, clientId}`, Gmail `{refreshToken, clientId}`, with `clientSecret` when the ' +
          'mailbox has its own app registration), marks the state used in the same transaction, and ' +
          'subscribes the mailbox at once. Answers 200 with a small HTML page saying it is connected and ' +
          "the mailbox's health status (and why subscribing did not work yet, when it did not). When " +
          'connecting started with a `returnTo`, answers 303 to that console path instead (with ' +
          '`connect=connected`, or `connect=failed` and `error`, and `mailbox`), whatever the outcome.\n\n' +
          'When the provider refused (`error`, or a code it would not exchange: `invalid_grant`), ' +
          'answers 400 with an HTML page saying so; nothing is stored and the state is spent.\n\n' +
          'Errors: 400 `validation_failed` (problem+json) for a state that is unknown, used already or ' +
          'expired (10 minutes after connecting started), or a callback with neither `code` nor `error`; ' +
          'nothing is stored.',
        querystring: CallbackQuery,
        response: {
          200: {
            description: 'The mailbox is connected: an HTML page for the browser user',
            content: { 'text/html': { schema: Type.String() } },
          },
          303: Type.Null({ description: 'Back to the console path connecting started from' }),
          400: ProblemSchema,
          503: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const result = await finishConnection(
        oauthDepsOf(deps),
        { state: q.state, code: q.code, error: q.error, errorDescription: q.error_description },
        subscribe,
      );
      const back = consoleReturn(deps.config.publicUrl, result);
      if (back)
        return reply
          .header('cache-control', 'no-store')
          .header('referrer-policy', 'no-referrer')
          .redirect(back, 303);
      return reply
        .code(result.connected ? 200 : 400)
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .header('content-security-policy', "default-src 'none'")
        .type('text/html; charset=utf-8')
        .send(connectionPage(result));
    },
  );
};
