// The Bot Framework simulator's own behaviour (no database): OpenID metadata and JWKS with
// endorsements, the client-credentials token endpoint, signed and forged activity tokens, and the
// connector with its recorded sends and injected faults — through plain fetch and jose.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type BotFrameworkSimulator, startBotFrameworkSimulator } from '../simulators/botframework.ts';

let sim: BotFrameworkSimulator;

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields),
});

async function token(bot = sim.bot, scope = 'https://api.botframework.com/.default') {
  return fetch(
    sim.tokenUrl,
    form({ grant_type: 'client_credentials', client_id: bot.appId, client_secret: bot.appPassword, scope }),
  );
}

async function accessToken(): Promise<string> {
  return ((await (await token()).json()) as { access_token: string }).access_token;
}

const postActivity = (
  conversationId: string,
  bearer: string | undefined,
  body: unknown = { type: 'message', text: 'hi' },
) =>
  fetch(`${sim.serviceUrl}v3/conversations/${encodeURIComponent(conversationId)}/activities`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  sim = await startBotFrameworkSimulator();
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.clearSent();
  sim.clearFaults();
});

describe('OpenID metadata and keys', () => {
  it('names the JWKS, whose keys carry endorsements', async () => {
    const metadata = (await (await fetch(sim.openIdMetadataUrl)).json()) as Record<string, any>;
    expect(metadata).toMatchObject({ issuer: 'https://api.botframework.com', jwks_uri: sim.jwksUrl });
    expect(metadata['id_token_signing_alg_values_supported']).toEqual(['RS256']);
    const before = sim.jwksRequests();
    const jwks = (await (await fetch(metadata['jwks_uri'])).json()) as { keys: any[] };
    expect(sim.jwksRequests()).toBe(before + 1);
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2);
    for (const k of jwks.keys)
      expect(k).toMatchObject({ kty: 'RSA', kid: expect.any(String), endorsements: expect.any(Array) });
    expect(jwks.keys.some((k) => k.endorsements.includes('msteams'))).toBe(true);
    expect(jwks.keys.some((k) => !k.endorsements.includes('msteams'))).toBe(true);
  });

  it('signs activity tokens that verify against its JWKS, and a rotated key is published', async () => {
    const activity = sim.message(sim.user(), 'hi');
    const jwks = async () => createLocalJWKSet((await (await fetch(sim.jwksUrl)).json()) as never);
    const verify = async (headers: Record<string, string>) =>
      jwtVerify(headers['authorization']!.slice(7), await jwks(), {
        issuer: 'https://api.botframework.com',
        audience: sim.bot.appId,
        algorithms: ['RS256'],
      });
    const { payload } = await verify(await sim.signedHeaders(activity));
    expect(payload['serviceurl']).toBe(activity['serviceUrl']);
    const kid = await sim.rotateKey();
    const rotated = await sim.signedHeaders(activity);
    expect(decodeProtectedHeader(rotated['authorization']!.slice(7)).kid).toBe(kid);
    await verify(rotated);
  });

  it('forges tokens that fail the way they say', async () => {
    const activity = sim.message(sim.user(), 'hi');
    const jwks = createLocalJWKSet((await (await fetch(sim.jwksUrl)).json()) as never);
    const claims = async (forge: Parameters<BotFrameworkSimulator['signedHeaders']>[1]) => {
      const auth = (await sim.signedHeaders(activity, forge))['authorization'];
      return auth;
    };
    expect(await claims({ forge: 'none' })).toBeUndefined();
    const verify = async (forge: any, options: Record<string, unknown> = {}) =>
      jwtVerify((await claims({ forge }))!.slice(7), jwks, {
        issuer: 'https://api.botframework.com',
        audience: sim.bot.appId,
        algorithms: ['RS256'],
        ...options,
      }).then(
        () => 'verified',
        (err: { code?: string }) => err.code,
      );
    expect(await verify('wrong-issuer')).toBe('ERR_JWT_CLAIM_VALIDATION_FAILED');
    expect(await verify('wrong-audience')).toBe('ERR_JWT_CLAIM_VALIDATION_FAILED');
    expect(await verify('bad-signature')).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    expect(await verify('expired')).toBe('ERR_JWT_EXPIRED');
    expect(await verify('unknown-key')).toBe('ERR_JWKS_NO_MATCHING_KEY');
    expect(await verify('alg-none')).toBe('ERR_JOSE_ALG_NOT_ALLOWED');
    // Valid signatures, wrong for Teams in what a generic verifier does not check.
    expect(await verify('no-endorsement')).toBe('verified');
    expect(await verify('serviceurl-mismatch')).toBe('verified');
  });
});

describe('the token endpoint', () => {
  it('issues app tokens by client credentials for the Bot Framework scope only', async () => {
    const ok = await token();
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      token_type: 'Bearer',
      expires_in: 3599,
      access_token: expect.any(String),
    });
    const wrong = await token({ appId: sim.bot.appId, appPassword: 'nope' });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toBe('invalid_client');
    const scope = await token(sim.bot, 'https://graph.microsoft.com/.default');
    expect(scope.status).toBe(400);
    expect(((await scope.json()) as { error: string }).error).toBe('invalid_scope');
  });
});

describe('the connector', () => {
  it('records proactive sends and replies, refusing calls without a token', async () => {
    expect((await postActivity('a:conv', undefined)).status).toBe(401);
    expect((await postActivity('a:conv', 'made-up')).status).toBe(401);
    const bearer = await accessToken();
    const res = await postActivity('a:conv', bearer);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ id: expect.any(String) });
    const reply = await fetch(`${sim.serviceUrl}v3/conversations/a%3Aconv/activities/act-1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ type: 'message', text: 'answer' }),
    });
    expect(reply.status).toBe(201);
    expect(sim.sent().map((s) => [s.conversationId, s.replyToId, s.appId, s.activity['text']])).toEqual([
      ['a:conv', undefined, sim.bot.appId, 'hi'],
      ['a:conv', 'act-1', sim.bot.appId, 'answer'],
    ]);
  });

  it('answers injected faults with the documented error bodies, for the conversation given', async () => {
    const bearer = await accessToken();
    sim.fault({ conversationId: 'a:blocked', status: 403, code: 'ConversationBlockedByUser' });
    sim.fault({ conversationId: 'a:busy', status: 429, retryAfter: 3 });
    sim.fault({ status: 503, times: 2 });
    const blocked = await postActivity('a:blocked', bearer);
    expect(blocked.status).toBe(403);
    expect(await blocked.json()).toMatchObject({ error: { code: 'ConversationBlockedByUser' } });
    const busy = await postActivity('a:busy', bearer);
    expect(busy.status).toBe(429);
    expect(busy.headers.get('retry-after')).toBe('3');
    expect(await busy.json()).toMatchObject({ error: { code: 'Throttled' } });
    expect((await postActivity('a:x', bearer)).status).toBe(503);
    expect((await postActivity('a:y', bearer)).status).toBe(503);
    expect((await postActivity('a:z', bearer)).status).toBe(201);
    expect((await postActivity('a:blocked', bearer)).status).toBe(201);
    expect(sim.sent().map((s) => s.conversationId)).toEqual(['a:z', 'a:blocked']);
  });
});

describe('the channel side', () => {
  it('delivers signed activities to a bot endpoint over HTTP', async () => {
    const received: { headers: http.IncomingHttpHeaders; body: any }[] = [];
    const bot = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(data) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => bot.listen(0, '127.0.0.1', r));
    try {
      const user = sim.user();
      const invoke = sim.actionExecute(user, 'assignToMe', { ticketId: 't1' });
      const res = await sim.deliver(`http://127.0.0.1:${(bot.address() as AddressInfo).port}/`, invoke);
      expect(res).toEqual({ status: 200, body: { ok: true } });
      expect(received[0]!.headers.authorization).toMatch(/^Bearer ey/);
      expect(received[0]!.body).toMatchObject({
        type: 'invoke',
        name: 'adaptiveCard/action',
        channelId: 'msteams',
        serviceUrl: sim.serviceUrl,
        from: { id: user.id, aadObjectId: user.aadObjectId },
        recipient: { id: `28:${sim.bot.appId}` },
        value: { action: { type: 'Action.Execute', verb: 'assignToMe', data: { ticketId: 't1' } } },
      });
    } finally {
      await new Promise<void>((r) => bot.close(() => r()));
    }
  });
});
