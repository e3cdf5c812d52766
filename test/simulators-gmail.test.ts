// The Gmail simulator's own behaviour (no database): watch/stop and expiry, history retention,
// messages.list search and paging, messages.send, OAuth with PKCE and refresh rotation, and faults —
// through plain fetch.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../simulators/gmail.ts';

const USER = 'support@example.test';
let sim: GmailSimulator;
let token: string;
let hook: http.Server;
let hookUrl: string;
let pushes = 0;

const mime = (subject: string, from = 'a@fabrikam.test') =>
  Buffer.from(`From: ${from}\r\nTo: ${USER}\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`);

const form = (url: string, body: Record<string, string>) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

const refresh = (refreshToken: string) =>
  form(sim.tokenUrl, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: sim.credentials.clientId,
    client_secret: sim.credentials.clientSecret,
  });

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${sim.apiBaseUrl}/users/${encodeURIComponent(USER)}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : undefined };
};

const control = (path: string, body?: unknown, method = 'POST') =>
  fetch(`${sim.url}/_control${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

beforeAll(async () => {
  hook = http.createServer((_req, res) => {
    pushes++;
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/push`;
});
afterAll(async () => {
  await new Promise<void>((r) => hook.close(() => r()));
});
beforeEach(async () => {
  sim = await startGmailSimulator({ seed: 1 });
  const t = await refresh(sim.credentials.refreshToken);
  expect(t.status).toBe(200);
  token = t.body.access_token;
  pushes = 0;
  return () => sim.close();
});

const pushOptions = { audience: 'https://relaydesk.test', email: 'push@sim.iam.gserviceaccount.com' };

describe('watch', () => {
  it('answers historyId and an expiration 7 days ahead; refuses a missing topicName with Google’s error', async () => {
    sim.deliver(USER, mime('one'));
    const res = await api('POST', '/watch', { topicName: 'projects/sim/topics/gmail', labelIds: ['INBOX'] });
    expect(res.status).toBe(200);
    expect(res.body.historyId).toMatch(/^\d+$/);
    const expiration = Number(res.body.expiration);
    expect(typeof res.body.expiration).toBe('string');
    expect(Math.abs(expiration - (sim.now().getTime() + 7 * 86_400_000))).toBeLessThan(5000);
    expect(sim.watch(USER)).toMatchObject({ topicName: 'projects/sim/topics/gmail', labelIds: ['INBOX'] });

    const bad = await api('POST', '/watch', { labelIds: ['INBOX'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({
      code: 400,
      status: 'INVALID_ARGUMENT',
      errors: [expect.any(Object)],
    });
    expect(sim.counts()).toEqual({ watches: 1, stops: 0 });
  });

  it('stops pushing when the watch expires on the clock, or is stopped', async () => {
    await api('POST', '/watch', { topicName: 'projects/sim/topics/gmail' });
    expect(await sim.push(hookUrl, USER, pushOptions)).toBe(204);
    expect((await control('/clock', { advanceSeconds: 7 * 86_400 + 1 })).status).toBe(204);
    expect(sim.watch(USER)).toBeUndefined();
    expect(await sim.push(hookUrl, USER, pushOptions)).toBe(0);
    expect(pushes).toBe(1);

    await api('POST', '/watch', { topicName: 'projects/sim/topics/gmail' });
    expect(await sim.push(hookUrl, USER, pushOptions)).toBe(204);
    const stop = await api('POST', '/stop');
    expect(stop.status).toBe(204);
    expect(await sim.push(hookUrl, USER, pushOptions)).toBe(0);
    expect(sim.counts()).toEqual({ watches: 2, stops: 1 });
  });
});

describe('history and messages', () => {
  it('history.list is 404 with Google’s body for an id older than the kept history, and pages', async () => {
    const start = (await api('GET', '/profile')).body.historyId as string;
    const ids = [sim.deliver(USER, mime('a')), sim.deliver(USER, mime('b')), sim.deliver(USER, mime('c'))];
    const first = await api('GET', `/history?startHistoryId=${start}&maxResults=2`);
    expect(first.status).toBe(200);
    expect(first.body.history.map((h: any) => h.messagesAdded[0].message.id)).toEqual(ids.slice(0, 2));
    const second = await api(
      'GET',
      `/history?startHistoryId=${start}&maxResults=2&pageToken=${first.body.nextPageToken}`,
    );
    expect(second.body.history.map((h: any) => h.messagesAdded[0].message.id)).toEqual(ids.slice(2));
    expect(second.body.nextPageToken).toBeUndefined();

    sim.expireHistory(USER);
    const gone = await api('GET', `/history?startHistoryId=${start}`);
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({
      error: {
        code: 404,
        message: 'Requested entity was not found.',
        errors: [{ message: 'Requested entity was not found.', domain: 'global', reason: 'notFound' }],
        status: 'NOT_FOUND',
      },
    });
  });

  it('forgets history older than a week on the clock', async () => {
    const start = (await api('GET', '/profile')).body.historyId as string;
    sim.deliver(USER, mime('old'));
    sim.advance(8 * 86_400);
    expect((await api('GET', `/history?startHistoryId=${start}`)).status).toBe(404);
    const current = (await api('GET', '/profile')).body.historyId as string;
    expect((await api('GET', `/history?startHistoryId=${current}`)).status).toBe(200);
  });

  it('messages.list filters with q and pages with maxResults/pageToken, newest first', async () => {
    const old = sim.deliver(USER, mime('Printer jam'));
    sim.advance(10 * 86_400);
    const recent: string[] = [];
    for (let i = 0; i < 5; i++) {
      recent.push(sim.deliver(USER, mime(`Invoice ${i}`, i === 0 ? 'billing@contoso.test' : 'x@y.test')));
      sim.advance(60);
    }
    const all: string[] = [];
    let pageToken: string | undefined;
    do {
      const res = await api(
        'GET',
        `/messages?q=${encodeURIComponent('newer_than:7d')}&maxResults=2${pageToken ? `&pageToken=${pageToken}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.messages.length).toBeLessThanOrEqual(2);
      all.push(...res.body.messages.map((m: any) => m.id));
      pageToken = res.body.nextPageToken;
    } while (pageToken);
    expect(all).toEqual([...recent].reverse());
    expect(all).not.toContain(old);

    const subject = await api('GET', `/messages?q=${encodeURIComponent('subject:printer')}`);
    expect(subject.body.messages.map((m: any) => m.id)).toEqual([old]);
    const from = await api('GET', `/messages?q=${encodeURIComponent('from:billing@contoso.test')}`);
    expect(from.body.messages.map((m: any) => m.id)).toEqual([recent[0]]);
    const none = await api('GET', `/messages?q=${encodeURIComponent('subject:nothing-like-this')}`);
    expect(none.body).toEqual({ resultSizeEstimate: 0 });
    expect((await api('GET', `/messages?pageToken=made-up`)).status).toBe(400);
  });
});

describe('OAuth', () => {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirectUri = 'http://127.0.0.1:9/oauth/google';
  const authorize = (extra: Record<string, string> = {}) =>
    fetch(
      `${sim.authorizeUrl}?${new URLSearchParams({
        client_id: sim.credentials.clientId,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'https://www.googleapis.com/auth/gmail.readonly',
        state: 'xyz',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        access_type: 'offline',
        prompt: 'consent',
        ...extra,
      })}`,
      { redirect: 'manual' },
    );
  const exchange = (code: string, extra: Record<string, string> = {}) =>
    form(sim.tokenUrl, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: sim.credentials.clientId,
      client_secret: sim.credentials.clientSecret,
      ...extra,
    });
  const codeFrom = async (res: Response) => {
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(location.searchParams.get('state')).toBe('xyz');
    return location.searchParams.get('code')!;
  };

  it('authorize → code → token (PKCE) → refresh; rotation when turned on refuses the old token', async () => {
    const code = await codeFrom(await authorize({ login_hint: USER }));
    expect(
      (await exchange(code, { code_verifier: 'wrong-verifier-wrong-verifier-wrong-verifier' })).body,
    ).toEqual({
      error: 'invalid_grant',
      error_description: 'Invalid code verifier.',
    });
    const t = await exchange(code);
    expect(t.status).toBe(200);
    expect(t.body).toMatchObject({
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      expires_in: expect.any(Number),
      token_type: 'Bearer',
      scope: 'https://www.googleapis.com/auth/gmail.readonly',
    });
    expect((await exchange(code)).body.error).toBe('invalid_grant');
    token = t.body.access_token;
    // The token is the consenting user's: "me" is them.
    const me = await fetch(`${sim.apiBaseUrl}/users/me/profile`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(((await me.json()) as any).emailAddress).toBe(USER);

    // Google does not rotate by default.
    const plain = await refresh(t.body.refresh_token);
    expect(plain.status).toBe(200);
    expect(plain.body.refresh_token).toBeUndefined();

    sim.rotateRefreshTokens(true);
    const rotated = await refresh(t.body.refresh_token);
    expect(rotated.body.refresh_token).toMatch(/^1\/\//);
    expect(rotated.body.refresh_token).not.toBe(t.body.refresh_token);
    const old = await refresh(t.body.refresh_token);
    expect(old.status).toBe(400);
    expect(old.body.error).toBe('invalid_grant');
    expect((await refresh(rotated.body.refresh_token)).status).toBe(200);
    expect(sim.tokenRequests()).toEqual({ refresh_token: 5, authorization_code: 3 });
  });

  it('checks redirect_uri and denies consent on request', async () => {
    const code = await codeFrom(await authorize());
    expect((await exchange(code, { redirect_uri: 'http://127.0.0.1:9/other' })).body.error).toBe(
      'redirect_uri_mismatch',
    );
    sim.denyConsent();
    const denied = new URL((await authorize()).headers.get('location')!);
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe('xyz');
    expect((await authorize({ client_id: 'other.apps.googleusercontent.com' })).status).toBe(401);
  });

  it('after revokeRefreshTokens every refresh is invalid_grant "Token has been expired or revoked."', async () => {
    const t = await exchange(await codeFrom(await authorize()));
    sim.revokeRefreshTokens();
    for (const rt of [t.body.refresh_token, sim.credentials.refreshToken]) {
      const res = await refresh(rt);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'invalid_grant',
        error_description: 'Token has been expired or revoked.',
      });
    }
  });
});

describe('messages.send', () => {
  const reply = (headers: string) =>
    Buffer.from(`From: ${USER}\r\n${headers}Message-ID: <r1@relaydesk.test>\r\n\r\nreply\r\n`);
  const threaded = reply('To: a@fabrikam.test\r\nSubject: Re: one\r\nIn-Reply-To: <q1@fabrikam.test>\r\n');

  it('refuses a missing raw, raw that is not base64 and a message without recipients, as Gmail does', async () => {
    const cases: [unknown, string][] = [
      [{}, "'raw' RFC822 payload message string or uploading message via /upload/* URL required"],
      [{ raw: 'not base64!' }, "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed"],
      [{ raw: reply('Subject: nobody\r\n').toString('base64url') }, 'Recipient address required'],
    ];
    for (const [body, message] of cases) {
      const res = await api('POST', '/messages/send', body);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({
        code: 400,
        status: 'INVALID_ARGUMENT',
        message,
        errors: [{ reason: 'invalidArgument' }],
      });
    }
    const unauthenticated = await fetch(`${sim.apiBaseUrl}/users/${USER}/messages/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ raw: threaded.toString('base64url') }),
    });
    expect(unauthenticated.status).toBe(401);
    expect(sim.sent()).toEqual([]);
  });

  it('answers the Message labelled SENT; it is listed, found by rfc822msgid: and added to history like received mail', async () => {
    const start = (await api('GET', '/profile')).body.historyId;
    // Standard base64 is read as well as base64url.
    const res = await api('POST', '/messages/send', { raw: threaded.toString('base64') });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: expect.any(String), threadId: res.body.id, labelIds: ['SENT'] });
    expect(sim.sent()).toEqual([{ user: USER, raw: threaded, at: expect.any(Date) }]);

    for (const q of ['rfc822msgid:<r1@relaydesk.test>', 'rfc822msgid:r1@relaydesk.test'])
      expect((await api('GET', `/messages?q=${encodeURIComponent(q)}`)).body.messages).toEqual([
        { id: res.body.id, threadId: res.body.id },
      ]);
    expect((await api('GET', '/messages?q=rfc822msgid:r2@relaydesk.test')).body.messages).toBeUndefined();
    // Gmail reports sent messages in history.list like any other added message.
    const history = await api('GET', `/history?startHistoryId=${start}&historyTypes=messageAdded`);
    expect(history.body.history.flatMap((h: any) => h.messagesAdded)).toEqual([
      { message: { id: res.body.id, threadId: res.body.id, labelIds: ['SENT'] } },
    ]);

    sim.clearSent();
    expect(sim.sent()).toEqual([]);
  });

  it('adds to the given thread only with In-Reply-To or References and the same Subject', async () => {
    const threadId = sim.deliver(USER, mime('one'));
    const send = async (raw: Buffer) =>
      (await api('POST', '/messages/send', { raw: raw.toString('base64url'), threadId })).body.threadId;
    expect(await send(threaded)).toBe(threadId);
    expect(await send(reply('To: a@fabrikam.test\r\nSubject: Re: one\r\n'))).not.toBe(threadId);
    expect(
      await send(reply('To: a@fabrikam.test\r\nSubject: two\r\nReferences: <q1@fabrikam.test>\r\n')),
    ).not.toBe(threadId);
  });
});

describe('faults', () => {
  const statuses = async (seed: number) => {
    const s = await startGmailSimulator({ seed });
    try {
      s.fault({ pathPrefix: '/gmail/', status: 500, probability: 0.3, times: Infinity });
      const t = await form(s.tokenUrl, {
        grant_type: 'refresh_token',
        refresh_token: s.credentials.refreshToken,
        client_id: s.credentials.clientId,
        client_secret: s.credentials.clientSecret,
      });
      const out: number[] = [];
      for (let i = 0; i < 20; i++)
        out.push(
          (
            await fetch(`${s.apiBaseUrl}/users/${USER}/profile`, {
              headers: { authorization: `Bearer ${t.body.access_token}` },
            })
          ).status,
        );
      return out;
    } finally {
      await s.close();
    }
  };

  it('probability faults are deterministic for a seed', async () => {
    const a = await statuses(99);
    expect(await statuses(99)).toEqual(a);
    expect(a).toContain(500);
    expect(a).toContain(200);
  });

  it('counts requests that come back before Retry-After, and clears faults', async () => {
    expect(
      (await control('/faults', { pathPrefix: '/gmail/', status: 429, retryAfter: 10, times: 2 })).status,
    ).toBe(204);
    const first = await api('GET', '/profile');
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('10');
    expect(first.body.error.status).toBe('RESOURCE_EXHAUSTED');
    await api('GET', '/profile');
    expect(sim.retryAfterViolations()).toBe(1);
    sim.advance(11);
    expect((await api('GET', '/profile')).status).toBe(200);
    expect(sim.retryAfterViolations()).toBe(1);
    sim.fault({ pathPrefix: '/gmail/', status: 503, times: Infinity });
    sim.clearFaults();
    expect((await api('GET', '/profile')).status).toBe(200);
    await control('/faults', undefined, 'DELETE');
  });
});
