// Signing in through single sign-on, in the browser (outside /api/v1): GET /auth/oidc/{provider}/start
// sends the browser to the provider, GET /auth/oidc/callback takes it back, starts the console
// session and goes on to the console. Every refusal is the same redirect to the sign-in page
// (`/console/login?error=sso_failed`); why is logged, never shown.
//
// The session is made by the sessions module's startSession, which this module does not import:
// the composition root passes it in (ssoSignInRoutes({ startSession })), so the two modules stay
// apart and tests can pass their own.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { AppError, isDatabaseUnavailable } from '../../platform/errors.ts';
import { OneOf } from '../../platform/http/schemas.ts';
import type { RouteModule, ServerDeps } from '../../platform/http/server.ts';
import { SSO_PROVIDERS } from './providers.ts';
import { auditSignIn, finishSignIn, type SignInDeps, startSignIn } from './sign-in.ts';
import { STATE_LIFETIME_MS } from './states.ts';

export interface SsoSessionInput {
  tenantId: string;
  personId: string;
  method: 'oidc';
}

/** Starts a console session for the person (sets its cookie on the reply): src/modules/sessions. */
export type StartSession = (
  pool: Pool,
  clock: Clock,
  reply: FastifyReply,
  input: SsoSessionInput,
) => Promise<unknown>;

export const SSO_FAILED_LOCATION = '/console/login?error=sso_failed';
/** This browser's sign-in in progress: its state, which the callback must match. */
export const STATE_COOKIE = 'rd_oidc_state';
const COOKIE_PATH = '/auth/oidc';

const signInDepsOf = (deps: ServerDeps): SignInDeps => {
  if (!deps.secretKey) throw new AppError('internal_error', 'no secret key configured');
  return {
    pool: deps.pool,
    secretKey: deps.secretKey,
    clock: deps.clock,
    logger: deps.logger,
    // Read at each request: the configuration object is the server's own.
    publicUrl: deps.config.publicUrl,
  };
};

/** Secure when the browser reaches the install over TLS (its public URL, or this request). */
const secure = (deps: ServerDeps, request: FastifyRequest): boolean =>
  request.protocol === 'https' || (deps.config.publicUrl ?? '').startsWith('https:');

function stateCookie(value: string, maxAgeSeconds: number, isSecure: boolean): string {
  return [
    `${STATE_COOKIE}=${value}`,
    `Path=${COOKIE_PATH}`,
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Lax',
    ...(isSecure ? ['Secure'] : []),
  ].join('; ');
}

/** The state cookie's value from the Cookie header, if any. */
function boundStateOf(request: FastifyRequest): string | undefined {
  for (const part of String(request.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === STATE_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Answers of these routes are for a browser in the middle of signing in: never cached, no referrer. */
const browserHeaders = (reply: FastifyReply) =>
  reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');

const Redirect = (description: string) => Type.Null({ description });

export const ssoSignInRoutes =
  ({ startSession }: { startSession: StartSession }): RouteModule =>
  (app, deps) => {
    app.get(
      '/auth/oidc/:provider/start',
      {
        config: { public: true },
        schema: {
          tags: ['sso'],
          summary: 'Start signing in to the console through single sign-on',
          security: [],
          description:
            "Where the sign-in page's single sign-on button goes. Sends the browser (302) to the " +
            "provider's authorization endpoint (authorization code flow, scopes `openid email profile`, " +
            'a single-use `state`, a `nonce` and a PKCE `code_challenge`, S256), and sets the cookie ' +
            `\`${STATE_COOKIE}\` (HttpOnly, SameSite=Lax, 10 minutes) that ties the sign-in to this ` +
            'browser. The provider sends the browser back to `/auth/oidc/callback` within 10 minutes.\n\n' +
            "`tenant` is the tenant's name (or id); without it, the install's only tenant. `returnTo` is " +
            'where the console goes once signed in: a path under `/console` on this origin (anything ' +
            'else is ignored: `/console/`).\n\n' +
            `When the tenant is unknown, the provider is not set up or not enabled, RELAYDESK_PUBLIC_URL ` +
            "is not set or the provider's metadata cannot be read: 302 to `" +
            SSO_FAILED_LOCATION +
            '` (why is logged). 400 `validation_failed` for a provider kind that is not one.',
          params: Type.Object({ provider: OneOf(SSO_PROVIDERS) }, { additionalProperties: false }),
          querystring: Type.Object(
            {
              tenant: Type.Optional(
                Type.String({ minLength: 1, maxLength: 200, description: "The tenant's name (or id)" }),
              ),
              returnTo: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 2000,
                  description: 'A path under /console to go to once signed in',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            302: Redirect("To the provider's authorization endpoint, or to the sign-in page when refused"),
          },
        },
      },
      async (request, reply) => {
        const started = await startSignIn(signInDepsOf(deps), {
          provider: request.params.provider,
          tenant: request.query.tenant,
          returnTo: request.query.returnTo,
        });
        browserHeaders(reply);
        if (!started.ok) {
          request.log.warn(
            { tenant: started.tenantId, provider: request.params.provider, reason: started.reason },
            'single sign-on not started',
          );
          return reply.redirect(SSO_FAILED_LOCATION, 302);
        }
        reply.header(
          'set-cookie',
          stateCookie(started.state, STATE_LIFETIME_MS / 1000, secure(deps, request)),
        );
        return reply.redirect(started.authorizationUrl, 302);
      },
    );

    app.get(
      '/auth/oidc/callback',
      {
        config: { public: true },
        schema: {
          tags: ['sso'],
          summary: 'Where the provider sends the browser back after single sign-on',
          security: [],
          description:
            'The redirect URI to register with the provider: `{RELAYDESK_PUBLIC_URL}/auth/oidc/callback`. ' +
            'The provider sends the browser here with `code`, `state` (and `iss`), or with `error`. The ' +
            `state must be one this install handed out to this browser (its \`${STATE_COOKIE}\` cookie), ` +
            'not used before and not expired; it is spent whatever follows. The code is redeemed with ' +
            "the PKCE verifier and the client's secret, and the id_token is checked (signature against " +
            "the provider's keys, issuer, audience, expiry, nonce).\n\n" +
            'The person is the agent with this identity (kind `entra`, `google` or `oidc`; for Entra the ' +
            "object id `oid`, otherwise the subject `sub`), else the agent owning the token's verified " +
            'email, who then gets the identity linked (`auto_merge`). When the provider has allowed ' +
            'domains, the verified email must be in one. An invited agent becomes active. Then a console ' +
            'session starts (the `rd_session` cookie) and the browser goes (302) to the `returnTo` of ' +
            'the start.\n\n' +
            `Refused (302 to \`${SSO_FAILED_LOCATION}\`, why is logged and audited as \`sso.sign_in\`): ` +
            'an unknown, used, expired or foreign state, an error from the provider, an answer that does ' +
            'not verify, a domain not allowed, a contact, a suspended person, or a person nobody knows ' +
            '(whose identity then appears in the unmapped-identity triage). Nothing else is stored.',
          querystring: Type.Object(
            {
              state: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
              code: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
              iss: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
              error: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
              error_description: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
            },
            // Providers add parameters of their own (Google: scope, authuser, prompt, hd; Entra: session_state).
            { additionalProperties: true },
          ),
          response: {
            302: Redirect('To the console (signed in), or to the sign-in page when refused'),
          },
        },
      },
      async (request, reply) => {
        const signIn = signInDepsOf(deps);
        const url = request.url;
        const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
        const finished = await finishSignIn(signIn, {
          state: request.query.state,
          query,
          boundState: boundStateOf(request),
        });
        browserHeaders(reply);
        reply.header('set-cookie', stateCookie('', 0, secure(deps, request)));
        if (!finished.ok) {
          request.log.warn({ reason: finished.reason }, 'single sign-on refused');
          return reply.redirect(SSO_FAILED_LOCATION, 302);
        }
        try {
          await startSession(deps.pool, deps.clock, reply, {
            tenantId: finished.tenantId,
            personId: finished.personId,
            method: 'oidc',
          });
        } catch (err) {
          if (isDatabaseUnavailable(err) || !(err instanceof AppError)) throw err;
          // The sessions module refused (e.g. the person was suspended a moment ago).
          request.log.warn({ tenant: finished.tenantId, code: err.code }, 'single sign-on: no session');
          await auditSignIn(signIn, {
            tenantId: finished.tenantId,
            provider: finished.provider,
            personId: undefined,
          });
          return reply.redirect(SSO_FAILED_LOCATION, 302);
        }
        await auditSignIn(signIn, {
          tenantId: finished.tenantId,
          provider: finished.provider,
          personId: finished.personId,
        });
        return reply.redirect(finished.returnTo, 302);
      },
    );
  };
