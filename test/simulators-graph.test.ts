// The Graph simulator's own behaviour (no database): subscription expiry and limits, reauthorize,
// lifecycle notifications, delta paging, delegated OAuth with PKCE, sendMail with MIME content and
// the internetMessageId filter, and faults — through plain fetch.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../simulators/graph.ts';

const USER = 'helpdesk@contoso.test';
let sim: GraphSimulator;
let hook: http.Server;
let hookUrl: string;
/** Notifications our endpoint received (validation requests are answered, not recorded). */
const received: { path: string; body: any }[] = [];
/** Validation requests, by path. */
const validations: string[] = [];
let token: string;

const mime = (subject: string) =>
  Buffer.from(`From: a@fabrikam.test\r\nTo: ${USER}\r\nSubject: ${subject}\r\n\r\nbody\r\n`);
const inMinutes = (m: number) => new Date(sim.now().getTime() + m * 60_000).toISOString();

async function appToken(): Promise<string> {
  const res = await fetch(`${sim.tokenUrl}/${sim.credentials.tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: sim.credentials.clientId,
      client_secret: sim.credentials.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

const api = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(path.startsWith('http') ? path : `${sim.apiBaseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const subscribe = async (extra: Record<string, unknown> = {}) => {
  const res = await api('POST', '/subscriptions', {
    changeType: 'created',
    resource: `users/${USER}/mailFolders('inbox')/messages`,
    notificationUrl: `${hookUrl}/notify`,
    lifecycleNotificationUrl: `${hookUrl}/lifecycle`,
    clientState: 'secret',
    expirationDateTime: inMinutes(60),
    ...extra,
  });
  return { status: res.status, body: (await res.json()) as any };
};

const control = (path: string, body?: unknown, method = 'POST') =>
  fetch(`${sim.url}/_control${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

beforeAll(async () => {
  hook = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const validationToken = url.searchParams.get('validationToken');
    if (validationToken !== null) {
      validations.push(url.pathname);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(validationToken);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    received.push({ path: url.pathname, body: JSON.parse(Buffer.concat(chunks).toString()) });
    res.writeHead(202).end();
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => hook.close(() => r()));
});
beforeEach(async () => {
  sim = await startGraphSimulator({ seed: 42 });
  token = await appToken();
  received.length = 0;
  validations.length = 0;
  return () => sim.close();
});

describe('subscriptions', () => {
  it('validates both notificationUrl and lifecycleNotificationUrl, and counts creation', async () => {
    const { status, body } = await subscribe();
    expect(status).toBe(201);
    expect(body).toMatchObject({
      resource: expect.any(String),
      changeType: 'created',
      clientState: 'secret',
    });
    expect(validations).toEqual(['/notify', '/lifecycle']);
    expect(sim.counts()).toEqual({ created: 1, renewed: 0, deleted: 0, reauthorized: 0 });
  });

  it('expires on the simulator clock: 404 afterwards and no notifications for it', async () => {
    const { body } = await subscribe({ expirationDateTime: inMinutes(30) });
    await sim.deliver(USER, mime('before'));
    expect(received.filter((r) => r.path === '/notify')).toHaveLength(1);
    expect((await control('/clock', { advanceSeconds: 31 * 60 })).status).toBe(204);
    expect(sim.now().getTime()).toBeGreaterThan(Date.now() + 30 * 60_000);
    for (const [method, path, b] of [
      ['GET', `/subscriptions/${body.id}`, undefined],
      ['PATCH', `/subscriptions/${body.id}`, { expirationDateTime: inMinutes(60) }],
      ['POST', `/subscriptions/${body.id}/reauthorize`, undefined],
      ['DELETE', `/subscriptions/${body.id}`, undefined],
    ] as const) {
      const res = await api(method, path, b);
      expect(res.status).toBe(404);
      expect(((await res.json()) as any).error.code).toBe('ResourceNotFound');
    }
    await sim.deliver(USER, mime('after'));
    expect(received.filter((r) => r.path === '/notify')).toHaveLength(1);
    expect(sim.subscriptions()).toHaveLength(0);
  });

  it(`refuses an expiration in the past or beyond the maximum, on create and on renewal`, async () => {
    expect(sim.maxExpirationMinutes).toBe(10_080);
    const tooFar = await subscribe({ expirationDateTime: inMinutes(sim.maxExpirationMinutes + 5) });
    expect(tooFar.status).toBe(400);
    expect(tooFar.body.error.code).toBe('ExtensionError');
    expect(tooFar.body.error.message).toContain(
      'Subscription expiration can only be 10080 minutes in the future.',
    );
    expect((await subscribe({ expirationDateTime: inMinutes(-1) })).status).toBe(400);
    const { body } = await subscribe({ expirationDateTime: inMinutes(sim.maxExpirationMinutes - 1) });
    expect(body.id).toBeDefined();
    const renew = await api('PATCH', `/subscriptions/${body.id}`, {
      expirationDateTime: inMinutes(sim.maxExpirationMinutes + 60),
    });
    expect(renew.status).toBe(400);
    expect(((await renew.json()) as any).error.code).toBe('ExtensionError');
    const ok = await api('PATCH', `/subscriptions/${body.id}`, { expirationDateTime: inMinutes(120) });
    expect(ok.status).toBe(200);
    expect(sim.counts().renewed).toBe(1);
  });

  it('counts renewals per subscription with their times, so double renewals show', async () => {
    const a = (await subscribe()).body.id as string;
    const b = (await subscribe()).body.id as string;
    await api('PATCH', `/subscriptions/${a}`, { expirationDateTime: inMinutes(600) });
    sim.advance(5);
    await api('PATCH', `/subscriptions/${a}`, { expirationDateTime: inMinutes(600) });
    await api('PATCH', `/subscriptions/${b}`, { expirationDateTime: inMinutes(600) });
    expect(sim.renewalsBySubscription()).toEqual(
      new Map([
        [a, 2],
        [b, 1],
      ]),
    );
    const times = sim.renewals().filter((r) => r.subscriptionId === a);
    expect(times[1]!.at.getTime() - times[0]!.at.getTime()).toBeGreaterThanOrEqual(5000);
    expect(sim.counts()).toMatchObject({ created: 2, renewed: 3 });
    expect((await api('DELETE', `/subscriptions/${b}`)).status).toBe(204);
    expect(sim.counts().deleted).toBe(1);
  });

  it('reauthorizationRequired marks the subscription until reauthorize (204), unknown is 404', async () => {
    const { body } = await subscribe();
    const res = await control(`/subscriptions/${body.id}/lifecycle`, { event: 'reauthorizationRequired' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 202 });
    const note = received.find((r) => r.path === '/lifecycle')!.body.value[0];
    expect(note).toMatchObject({
      subscriptionId: body.id,
      subscriptionExpirationDateTime: body.expirationDateTime,
      tenantId: sim.credentials.tenantId,
      clientState: 'secret',
      lifecycleEvent: 'reauthorizationRequired',
    });
    expect(sim.subscriptions()[0]!.reauthorizationRequired).toBe(true);
    expect((await api('POST', `/subscriptions/${body.id}/reauthorize`)).status).toBe(204);
    expect(sim.subscriptions()[0]!.reauthorizationRequired).toBe(false);
    expect(sim.counts().reauthorized).toBe(1);
    expect((await api('POST', `/subscriptions/nope/reauthorize`)).status).toBe(404);
  });

  it('subscriptionRemoved removes the subscription before notifying; missed only notifies', async () => {
    const { body } = await subscribe();
    expect((await control(`/subscriptions/${body.id}/lifecycle`, { event: 'missed' })).status).toBe(202);
    expect(sim.subscriptions()).toHaveLength(1);
    expect(
      (await control(`/subscriptions/${body.id}/lifecycle`, { event: 'subscriptionRemoved' })).status,
    ).toBe(202);
    expect(received.map((r) => r.body.value[0].lifecycleEvent)).toEqual(['missed', 'subscriptionRemoved']);
    expect((await api('GET', `/subscriptions/${body.id}`)).status).toBe(404);
    expect((await control(`/subscriptions/${body.id}/lifecycle`, { event: 'missed' })).status).toBe(404);
    expect((await control(`/subscriptions/x/lifecycle`, { event: 'bogus' })).status).toBe(400);
  });
});

describe('delta', () => {
  const page = async (url: string, size?: number) => {
    const res = await api('GET', url, undefined, size ? { prefer: `odata.maxpagesize=${size}` } : {});
    return { status: res.status, body: (await res.json()) as any };
  };

  it('pages the first sync, then returns only what arrived after the deltaLink, and 410 for a bad token', async () => {
    const first: string[] = [];
    for (let i = 0; i < 5; i++) first.push(await sim.deliver(USER, mime(`m${i}`), { notify: false }));
    let res = await page(`/users/${USER}/mailFolders/Inbox/messages/delta`, 2);
    const seen: string[] = [];
    let pages = 0;
    while (true) {
      expect(res.status).toBe(200);
      pages++;
      for (const item of res.body.value) {
        expect(item).toMatchObject({
          '@odata.type': '#microsoft.graph.message',
          receivedDateTime: expect.any(String),
        });
        seen.push(item.id);
      }
      if (!res.body['@odata.nextLink']) break;
      expect(res.body['@odata.nextLink']).toContain('$skiptoken=');
      res = await page(res.body['@odata.nextLink'], 2);
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(first);
    const deltaLink = res.body['@odata.deltaLink'] as string;
    expect(deltaLink).toContain('$deltatoken=');

    const again = await page(deltaLink);
    expect(again.body.value).toEqual([]);

    const later = await sim.deliver(USER, mime('later'), { notify: false });
    sim.remove(USER, first[0]!);
    const next = await page(deltaLink);
    expect(next.body.value.map((i: any) => i.id)).toEqual([later, first[0]]);
    expect(next.body.value[1]['@removed']).toEqual({ reason: 'deleted' });
    // Its own deltaLink starts from there.
    expect((await page(next.body['@odata.deltaLink'])).body.value).toEqual([]);

    const bad = await page(deltaLink.replace(/\$deltatoken=.*/, '$deltatoken=garbled'));
    expect(bad.status).toBe(410);
    expect(bad.body.error.code).toBe('SyncStateNotFound');
    const tampered = deltaLink.replace(
      /\$deltatoken=(.)/,
      (_m, c: string) => `$deltatoken=${c === 'A' ? 'B' : 'A'}`,
    );
    expect((await page(tampered)).status).toBe(410);
    sim.resetDeltaTokens();
    expect((await page(deltaLink)).status).toBe(410);
  });

  it("accepts mailFolders('Inbox') and lowercase inbox, with the default page size of 10", async () => {
    for (let i = 0; i < 12; i++) await sim.deliver(USER, mime(`n${i}`), { notify: false });
    const a = await page(`/users/${USER}/mailFolders('Inbox')/messages/delta`);
    expect(a.body.value).toHaveLength(10);
    expect(a.body['@odata.nextLink']).toContain("mailFolders('Inbox')");
    const b = await page(`/users/${USER}/mailFolders/inbox/messages/delta`);
    expect(b.body.value).toHaveLength(10);
    const rest = await page(a.body['@odata.nextLink']);
    expect(rest.body.value).toHaveLength(2);
    expect(rest.body['@odata.deltaLink']).toBeDefined();
  });
});

describe('delegated OAuth (authorization code with PKCE)', () => {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirectUri = 'http://127.0.0.1:9/callback';

  const authorize = async (extra: Record<string, string> = {}) => {
    const res = await fetch(
      `${sim.authorizeUrl}?${new URLSearchParams({
        client_id: sim.credentials.clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: 'offline_access Mail.Read User.Read',
        state: 'st4te',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        ...extra,
      })}`,
      { redirect: 'manual' },
    );
    return res;
  };
  const tokenRequest = async (form: Record<string, string>) => {
    const res = await fetch(sim.delegatedTokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: sim.credentials.clientId,
        client_secret: sim.credentials.clientSecret,
        ...form,
      }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const codeFor = async (extra: Record<string, string> = {}) => {
    const res = await authorize(extra);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
    expect(location.searchParams.get('state')).toBe('st4te');
    return location.searchParams.get('code')!;
  };

  it('authorize → code → token → refresh rotation; the old refresh token is refused; the token works for /v1.0', async () => {
    const code = await codeFor({ login_hint: 'dana@contoso.test' });
    const redeemed = await tokenRequest({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    expect(redeemed.status).toBe(200);
    expect(redeemed.body).toMatchObject({
      token_type: 'Bearer',
      expires_in: expect.any(Number),
      access_token: expect.any(String),
      refresh_token: expect.any(String),
    });
    expect(redeemed.body.scope).toContain('https://graph.microsoft.com/Mail.Read');
    // The code is single-use.
    const reuse = await tokenRequest({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    expect(reuse.body.error_description).toMatch(/^AADSTS54005/);

    token = redeemed.body.access_token;
    const me = await api('GET', '/me');
    expect(((await me.json()) as any).userPrincipalName).toBe('dana@contoso.test');
    expect((await api('GET', '/subscriptions')).status).toBe(200);

    const refreshed = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: redeemed.body.refresh_token,
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(redeemed.body.refresh_token);
    const old = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: redeemed.body.refresh_token,
    });
    expect(old.status).toBe(400);
    expect(old.body.error).toBe('invalid_grant');
    const newer = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: refreshed.body.refresh_token,
    });
    expect(newer.status).toBe(200);
    expect(sim.tokenRequests()).toEqual({ client_credentials: 1, authorization_code: 2, refresh_token: 3 });
  });

  it('checks the PKCE verifier, the redirect_uri, the client secret and the code lifetime', async () => {
    const wrongVerifier = await tokenRequest({
      grant_type: 'authorization_code',
      code: await codeFor(),
      redirect_uri: redirectUri,
      code_verifier: randomBytes(32).toString('base64url'),
    });
    expect(wrongVerifier.status).toBe(400);
    expect(wrongVerifier.body.error).toBe('invalid_grant');
    const wrongRedirect = await tokenRequest({
      grant_type: 'authorization_code',
      code: await codeFor(),
      redirect_uri: 'http://127.0.0.1:9/elsewhere',
      code_verifier: verifier,
    });
    expect(wrongRedirect.body.error).toBe('invalid_grant');
    const wrongSecret = await tokenRequest({
      grant_type: 'authorization_code',
      code: await codeFor(),
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_secret: 'nope',
    });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe('invalid_client');
    const stale = await codeFor();
    sim.advance(11 * 60);
    const expired = await tokenRequest({
      grant_type: 'authorization_code',
      code: stale,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    expect(expired.body.error).toBe('invalid_grant');
  });

  it('redirects with access_denied when consent is declined, and refuses an unknown client', async () => {
    sim.consentAs('consenting@contoso.test');
    sim.denyConsent();
    const denied = new URL((await authorize()).headers.get('location')!);
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('error_description')).toBeTruthy();
    expect(denied.searchParams.get('state')).toBe('st4te');
    expect(denied.searchParams.get('code')).toBeNull();
    // Only the next one: the following consent succeeds, as the consentAs user.
    const code = await codeFor();
    const t = await tokenRequest({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    token = t.body.access_token;
    expect(((await (await api('GET', '/me')).json()) as any).userPrincipalName).toBe(
      'consenting@contoso.test',
    );
    expect((await authorize({ client_id: 'someone-else' })).status).toBe(400);
  });

  it('after revokeRefreshTokens every refresh is invalid_grant (AADSTS700082)', async () => {
    const t = await tokenRequest({
      grant_type: 'authorization_code',
      code: await codeFor(),
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    sim.revokeRefreshTokens();
    const res = await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.body.refresh_token });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect(res.body.error_description).toMatch(/^AADSTS700082/);
    // The client-credentials grant is unaffected.
    expect(await appToken()).toBeTruthy();
  });

  it('accepts the organizations tenant and refuses an unknown one', async () => {
    const org = await fetch(
      `${sim.url}/token/organizations/oauth2/v2.0/authorize?${new URLSearchParams({
        client_id: sim.credentials.clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: 'Mail.Read',
      })}`,
      { redirect: 'manual' },
    );
    expect(org.status).toBe(302);
    const other = await fetch(`${sim.url}/token/elsewhere/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x' }),
    });
    expect(other.status).toBe(400);
  });
});

describe('sendMail with MIME content, and the internetMessageId filter', () => {
  const message = (messageId: string) =>
    Buffer.from(
      `From: ${USER}\r\nTo: b@fabrikam.test\r\nSubject: Re: hi\r\nMessage-ID: ${messageId}\r\n` +
        `In-Reply-To: <q@fabrikam.test>\r\n\r\n${'a long line of text '.repeat(20)}\r\n`,
    );
  const sendMail = (body: string, contentType = 'text/plain', auth = true) =>
    fetch(`${sim.apiBaseUrl}/users/${USER}/sendMail`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...(auth ? { authorization: `Bearer ${token}` } : {}) },
      body,
    });
  const byMessageId = async (id: string, select = '&$select=id') => {
    const filter = encodeURIComponent(`internetMessageId eq '${id}'`);
    const res = await api('GET', `/users/${USER}/messages?$filter=${filter}${select}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { value: Record<string, string>[] }).value;
  };

  it('answers 202 with no body to base64 MIME (line-wrapped, as documented) and records the decoded message', async () => {
    const wrapped = message('<r1@relaydesk.test>').toString('base64').replace(/.{76}/g, '$&\r\n');
    const res = await sendMail(wrapped);
    expect(res.status).toBe(202);
    expect(await res.text()).toBe('');
    expect(res.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(sim.sent()).toEqual([{ user: USER, raw: message('<r1@relaydesk.test>'), at: expect.any(Date) }]);

    expect(await byMessageId('<r1@relaydesk.test>')).toEqual([{ id: expect.any(String) }]);
    expect(await byMessageId('<r1@relaydesk.test>', '')).toEqual([
      { id: expect.any(String), internetMessageId: '<r1@relaydesk.test>' },
    ]);
    // Graph's internetMessageId keeps the angle brackets: the bare id is another value.
    expect(await byMessageId('r1@relaydesk.test')).toEqual([]);
    // Received messages are in the mailbox too.
    await sim.deliver(USER, message('<in1@fabrikam.test>'), { notify: false });
    expect(await byMessageId('<in1@fabrikam.test>')).toHaveLength(1);

    sim.clearSent();
    expect(sim.sent()).toEqual([]);
    expect(await byMessageId('<r1@relaydesk.test>')).toEqual([]);
  });

  it('refuses what is not base64 MIME, the JSON form, other filters and a missing token', async () => {
    for (const body of ['%%% not base64 %%%', Buffer.from('no headers here').toString('base64'), '']) {
      const res = await sendMail(body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error).toMatchObject({
        code: 'ErrorMimeContentInvalidBase64String',
        message: 'Invalid base64 string for MIME content.',
      });
    }
    expect((await sendMail(JSON.stringify({ message: {} }), 'application/json')).status).toBe(400);
    const unauthenticated = await sendMail(
      message('<r2@relaydesk.test>').toString('base64'),
      'text/plain',
      false,
    );
    expect(unauthenticated.status).toBe(401);
    expect(sim.sent()).toEqual([]);

    for (const query of [`?$filter=${encodeURIComponent("subject eq 'hi'")}`, '']) {
      const res = await api('GET', `/users/${USER}/messages${query}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error.code).toBe('BadRequest');
    }
  });

  it('faults apply: a 429 with Retry-After on POST leaves nothing sent and GET untouched', async () => {
    sim.fault({ pathPrefix: '/v1.0/users/', method: 'POST', status: 429, retryAfter: 2 });
    const res = await sendMail(message('<r3@relaydesk.test>').toString('base64'));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(((await res.json()) as any).error.code).toBe('TooManyRequests');
    expect(sim.sent()).toEqual([]);
    expect(await byMessageId('<r3@relaydesk.test>')).toEqual([]);
  });
});

describe('faults', () => {
  const outcomes = async (seed: number) => {
    const s = await startGraphSimulator({ seed });
    try {
      s.fault({ pathPrefix: '/v1.0/users/', status: 503, probability: 0.5, times: Infinity });
      const t = await (
        await fetch(`${s.tokenUrl}/${s.credentials.tenantId}/oauth2/v2.0/token`, {
          method: 'POST',
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: s.credentials.clientId,
            client_secret: s.credentials.clientSecret,
          }),
        })
      ).json();
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++)
        statuses.push(
          (
            await fetch(`${s.apiBaseUrl}/users/${USER}/messages/none/$value`, {
              headers: { authorization: `Bearer ${(t as any).access_token}` },
            })
          ).status,
        );
      return statuses;
    } finally {
      await s.close();
    }
  };

  it('applies probabilistic faults deterministically for a seed', async () => {
    const a = await outcomes(7);
    expect(await outcomes(7)).toEqual(a);
    expect(a.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(a.filter((s) => s === 404).length).toBeGreaterThan(0);
  });

  it('clears faults by control route, and counts requests that ignore Retry-After', async () => {
    const path = `/users/${USER}/messages/x/$value`;
    expect(
      (await control('/faults', { pathPrefix: '/v1.0/users/', status: 429, retryAfter: 30, times: null }))
        .status,
    ).toBe(204);
    expect((await api('GET', path)).status).toBe(429);
    const retried = await api('GET', path);
    expect(retried.status).toBe(429);
    expect(retried.headers.get('retry-after')).toBe('30');
    expect(sim.retryAfterViolations()).toBe(1);
    // Another path is not a violation.
    await api('GET', `/users/${USER}/messages/y/$value`);
    expect(sim.retryAfterViolations()).toBe(1);
    expect((await control('/faults', undefined, 'DELETE')).status).toBe(204);
    sim.advance(31);
    expect((await api('GET', path)).status).toBe(404);
    expect(sim.retryAfterViolations()).toBe(1);
  });
});
