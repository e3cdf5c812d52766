// Connecting a mailbox by OAuth as an operator would, end to end: the app listens on a real port,
// the Graph and Gmail simulators play the provider (authorize with PKCE, token endpoints with
// rotating refresh tokens), and the browser is played by fetch with redirect: 'manual'.
import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../../simulators/gmail.ts';
import { type GraphSimulator, startGraphSimulator } from '../../../simulators/graph.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { NOT_CONNECTED_REASON } from './health.ts';
import { mailboxCredentials } from './mailboxes.ts';
import { OAUTH_SCOPES } from './oauth.ts';

let t: TestApp;
let graph: GraphSimulator;
let gmail: GmailSimulator;
let appUrl: string;
let admin: string;
let counter = 0;

beforeAll(async () => {
  graph = await startGraphSimulator();
  gmail = await startGmailSimulator();
  t = await useTestApp({
    oauth: {
      microsoft: { clientId: graph.credentials.clientId, clientSecret: graph.credentials.clientSecret },
      google: { clientId: gmail.credentials.clientId, clientSecret: gmail.credentials.clientSecret },
    },
  });
  for (const q of [
    'inbound.process',
    'gmail.history',
    'mailbox.lifecycle',
    'mailbox.renew',
    'mailbox.reconcile',
  ])
    await t.queue.boss.createQueue(q);
  appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  // Known only once the app listens: the configuration is read at each request.
  t.config.publicUrl = appUrl;
  admin = t.a.adminToken.token;
});

afterAll(async () => {
  await graph?.close();
  await gmail?.close();
});

afterEach(() => {
  vi.restoreAllMocks();
  graph.clearFaults();
});

async function graphMailbox(token = admin): Promise<{ id: string; address: string }> {
  const address = `helpdesk${++counter}@contoso.test`;
  const res = await t.call(token, 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address,
    settings: {
      graph: {
        apiBaseUrl: graph.apiBaseUrl,
        tokenUrl: graph.tokenUrl,
        authorizeUrl: graph.authorizeUrl,
        delegatedTokenUrl: graph.delegatedTokenUrl,
      },
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id, address };
}

async function gmailMailbox(): Promise<{ id: string; address: string }> {
  const address = `support${++counter}@example.test`;
  const res = await t.call(admin, 'POST', '/api/v1/mailboxes', {
    kind: 'gmail',
    address,
    settings: {
      gmail: {
        apiBaseUrl: gmail.apiBaseUrl,
        tokenUrl: gmail.tokenUrl,
        jwksUrl: gmail.jwksUrl,
        authorizeUrl: gmail.authorizeUrl,
        topic: 'projects/p/topics/t',
      },
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id, address };
}

async function connect(mailboxId: string, token = admin): Promise<URL> {
  const res = await t.call(token, 'POST', `/api/v1/mailboxes/${mailboxId}/connect`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return new URL(res.body.authorizationUrl);
}

/** The browser at the provider: consent given (or refused); where the provider sends it back. */
async function authorize(url: URL): Promise<URL> {
  const res = await fetch(url, { redirect: 'manual' });
  expect(res.status).toBe(302);
  return new URL(res.headers.get('location')!);
}

/** The browser back at our callback. */
async function callback(url: URL | string) {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text(), res };
}

const storedCredentials = (mailboxId: string, tenantId = t.a.tenant.id) =>
  withTenant(t.db.pool, tenantId, (tx) => mailboxCredentials(tx, t.secretKey, mailboxId));

const health = async (mailboxId: string) =>
  (await t.call(admin, 'GET', `/api/v1/mailboxes/${mailboxId}/health`)).body;

/** What was told of the mailbox's health (`mailbox.health_changed` events), oldest first. */
const healthChanges = async (mailboxId: string) =>
  (
    await t.db.admin.query(
      "SELECT data FROM events WHERE mailbox_id = $1 AND type = 'mailbox.health_changed' ORDER BY occurred_at, id",
      [mailboxId],
    )
  ).rows.map((r) => r.data);

/** The mailbox's changes of health status, oldest first. */
const historyOf = async (mailboxId: string) =>
  (
    await t.db.admin.query(
      'SELECT from_status, to_status, reason FROM mailbox_health_events WHERE mailbox_id = $1 ORDER BY id',
      [mailboxId],
    )
  ).rows;

const stateRow = async (state: string) =>
  (
    await t.db.admin.query(
      "SELECT tenant_id, mailbox_id, used_at, code_verifier FROM oauth_states WHERE state_hash = sha256(convert_to($1, 'UTF8'))",
      [state],
    )
  ).rows[0];

/** Refresh tokens the token endpoint hands out to the app, in order (a spy on the app's fetch). */
function watchIssuedRefreshTokens(tokenUrl: string): string[] {
  const issued: string[] = [];
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const res = await realFetch(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url === tokenUrl && res.ok) {
      const body = (await res.clone().json()) as { refresh_token?: string };
      if (body.refresh_token) issued.push(body.refresh_token);
    }
    return res;
  });
  return issued;
}

async function refreshAt(
  tokenUrl: string,
  refreshToken: string,
  client: { clientId: string; clientSecret: string },
) {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: client.clientId,
      client_secret: client.clientSecret,
    }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('connecting a Graph mailbox', () => {
  it('goes from connect through consent to a stored refresh token and a subscription', async () => {
    const mailbox = await graphMailbox();
    // Made without credentials, it carries no mail yet, and says so (upkeep leaves it alone).
    expect(await health(mailbox.id)).toMatchObject({
      status: 'needs_reauth',
      failureReason: expect.stringMatching(/^not connected yet: connect it/),
      subscriptionId: null,
      connected: false,
    });
    // Nothing to renew before it is connected: refused, and the state stays as it was.
    const renew = await t.call(admin, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`);
    expect(renew.status).toBe(400);
    expect(renew.body.detail).toContain('is not connected yet');
    expect(await health(mailbox.id)).toMatchObject({
      status: 'needs_reauth',
      failureReason: NOT_CONNECTED_REASON,
    });
    const before = graph.subscriptions().length;
    const url = await connect(mailbox.id);
    expect(url.origin + url.pathname).toBe(graph.authorizeUrl);
    const q = url.searchParams;
    expect(q.get('client_id')).toBe(graph.credentials.clientId);
    expect(q.get('response_type')).toBe('code');
    expect(q.get('redirect_uri')).toBe(`${appUrl}/oauth/callback`);
    expect(q.get('scope')).toBe(OAUTH_SCOPES.graph);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('login_hint')).toBe(mailbox.address);
    const state = q.get('state')!;
    // Stored hashed, with its verifier sealed: neither the state nor the verifier is in the row.
    const row = await stateRow(state);
    expect(row).toMatchObject({ tenant_id: t.a.tenant.id, mailbox_id: mailbox.id, used_at: null });
    expect(Buffer.from(row.code_verifier).toString('latin1')).not.toContain(state);

    const back = await authorize(url);
    expect(back.origin + back.pathname).toBe(`${appUrl}/oauth/callback`);
    expect(back.searchParams.get('state')).toBe(state);
    const page = await callback(back);
    expect(page.status, page.text).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.text).toContain('Mailbox connected');
    expect(page.text).toContain('healthy');
    expect(page.text).not.toMatch(/<script/i);
    expect(page.res.headers.get('content-security-policy')).toBe("default-src 'none'");

    const credentials = await storedCredentials(mailbox.id);
    expect(Object.keys(credentials!).sort()).toEqual(['clientId', 'refreshToken']);
    expect(credentials).toMatchObject({ clientId: graph.credentials.clientId });
    expect((await stateRow(state)).used_at).not.toBeNull();
    const h = await health(mailbox.id);
    expect(h).toMatchObject({ status: 'healthy', lastRenewalResult: 'created' });
    expect(graph.subscriptions()).toHaveLength(before + 1);
    const sub = graph.subscriptions().find((s) => s.id === h.subscriptionId)!;
    expect(sub.notificationUrl).toBe(`${appUrl}/hooks/graph/${mailbox.id}`);
    expect(sub.resource).toContain(`users/${mailbox.address}/`);
    const answer = await t.call(admin, 'GET', `/api/v1/mailboxes/${mailbox.id}`);
    expect(answer.body).toMatchObject({ hasCredentials: true, health: { connected: true } });
    expect(JSON.stringify(answer.body)).not.toContain(credentials!['refreshToken'] as string);
    // Connected for the first time: kept in its history, but no one is told of trouble ending.
    expect(await healthChanges(mailbox.id)).toEqual([]);
    expect(await historyOf(mailbox.id)).toEqual([
      { from_status: 'needs_reauth', to_status: 'renewing', reason: 'connected' },
      { from_status: 'renewing', to_status: 'healthy', reason: 'created' },
    ]);

    // Refused later and connected again: the way out of that is told (admins hear of it by default).
    await t.db.admin.query(
      `UPDATE mailbox_health SET status = 'needs_reauth', failure_reason = 'the refresh token was revoked'
        WHERE mailbox_id = $1`,
      [mailbox.id],
    );
    expect((await callback(await authorize(await connect(mailbox.id)))).status).toBe(200);
    expect(await health(mailbox.id)).toMatchObject({ status: 'healthy' });
    expect(await healthChanges(mailbox.id)).toEqual([
      expect.objectContaining({
        from: 'needs_reauth',
        status: 'renewing',
        error: null,
        reason: 'credentials changed',
      }),
    ]);

    // Its credentials taken away: not connected, and since mail flowed, that is told.
    const removed = await t.call(admin, 'PATCH', `/api/v1/mailboxes/${mailbox.id}`, { credentials: null });
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(await health(mailbox.id)).toMatchObject({
      status: 'needs_reauth',
      failureReason: NOT_CONNECTED_REASON,
      connected: false,
    });
    expect((await healthChanges(mailbox.id)).at(-1)).toMatchObject({
      from: 'healthy',
      status: 'needs_reauth',
    });
  });

  it('saves a rotated refresh token even when subscribing fails right after', async () => {
    const mailbox = await graphMailbox();
    const issued = watchIssuedRefreshTokens(graph.delegatedTokenUrl);
    graph.fault({ pathPrefix: '/v1.0/subscriptions', method: 'POST', status: 503, times: 1 });
    const page = await callback(await authorize(await connect(mailbox.id)));
    expect(page.status, page.text).toBe(200);
    expect(page.text).toContain('did not work yet');
    // The code gave one refresh token, the first refresh (before the subscription) rotated it.
    expect(issued).toHaveLength(2);
    const [fromCode, rotated] = issued as [string, string];
    expect((await storedCredentials(mailbox.id))!['refreshToken']).toBe(rotated);
    const old = await refreshAt(graph.delegatedTokenUrl, fromCode, graph.credentials);
    expect(old.status).toBe(400);
    expect(old.body['error']).toBe('invalid_grant');
    expect((await health(mailbox.id)).status).toBe('degraded');
    // What was saved is the live token (a rotated-away one is refused as already redeemed).
    vi.restoreAllMocks();
    expect((await refreshAt(graph.delegatedTokenUrl, rotated, graph.credentials)).status).toBe(200);
  });
});

describe('connecting a Gmail mailbox', () => {
  it('asks for offline access and ends with a refresh token and a watch', async () => {
    const mailbox = await gmailMailbox();
    const url = await connect(mailbox.id);
    expect(url.origin + url.pathname).toBe(gmail.authorizeUrl);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      client_id: gmail.credentials.clientId,
      response_type: 'code',
      redirect_uri: `${appUrl}/oauth/callback`,
      scope: 'https://www.googleapis.com/auth/gmail.modify',
      code_challenge_method: 'S256',
      login_hint: mailbox.address,
      access_type: 'offline',
      prompt: 'consent',
    });
    const page = await callback(await authorize(url));
    expect(page.status, page.text).toBe(200);
    expect(page.text).toContain('healthy');
    const credentials = await storedCredentials(mailbox.id);
    // The install's secret is not copied into the mailbox: it is read from the configuration.
    expect(Object.keys(credentials!).sort()).toEqual(['clientId', 'refreshToken']);
    expect(await health(mailbox.id)).toMatchObject({
      status: 'healthy',
      subscriptionId: 'projects/p/topics/t',
    });
    expect(gmail.watch(mailbox.address)?.topicName).toBe('projects/p/topics/t');
  });
});

describe('the callback refuses', () => {
  it('a state used already, storing nothing more', async () => {
    const mailbox = await gmailMailbox();
    const back = await authorize(await connect(mailbox.id));
    expect((await callback(back)).status).toBe(200);
    const sealed = async () =>
      (await t.db.admin.query('SELECT credentials FROM mailboxes WHERE id = $1', [mailbox.id])).rows[0]
        .credentials as Buffer;
    const first = await sealed();
    const again = await callback(back);
    expect(again.status).toBe(400);
    expect(again.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(again.text)).toMatchObject({ code: 'validation_failed' });
    expect(JSON.parse(again.text).detail).toContain('used already');
    expect((await sealed()).equals(first)).toBe(true);
  });

  it('an expired state (10 minutes on the injected clock)', async () => {
    const mailbox = await graphMailbox();
    const back = await authorize(await connect(mailbox.id));
    t.clock.advance(10 * 60_000 + 1000);
    try {
      const page = await callback(back);
      expect(page.status).toBe(400);
      expect(page.type).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(page.text).detail).toContain('expired');
    } finally {
      t.clock.advance(-(10 * 60_000 + 1000));
    }
    expect(await storedCredentials(mailbox.id)).toBeNull();
  });

  it('an unknown state', async () => {
    const page = await callback(`${appUrl}/oauth/callback?state=not-a-state&code=abc`);
    expect(page.status).toBe(400);
    expect(page.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(page.text)).toMatchObject({ code: 'validation_failed' });
  });

  it('stores nothing when consent is refused (access_denied), and says so in plain, escaped words', async () => {
    const mailbox = await graphMailbox();
    graph.denyConsent();
    const url = await connect(mailbox.id);
    const back = await authorize(url);
    expect(back.searchParams.get('error')).toBe('access_denied');
    const page = await callback(back);
    expect(page.status).toBe(400);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.text).toContain('Mailbox not connected');
    expect(page.text).toContain('access_denied');
    expect(await storedCredentials(mailbox.id)).toBeNull();
    expect((await stateRow(url.searchParams.get('state')!)).used_at).not.toBeNull();
    expect((await health(mailbox.id)).status).toBe('needs_reauth');

    // What the provider says is shown, never run.
    const other = await connect(mailbox.id);
    const hostile = new URL(`${appUrl}/oauth/callback`);
    hostile.searchParams.set('state', other.searchParams.get('state')!);
    hostile.searchParams.set('error', 'access_denied');
    hostile.searchParams.set('error_description', '<script>alert(1)</script>');
    const escaped = await callback(hostile);
    expect(escaped.status).toBe(400);
    expect(escaped.text).not.toContain('<script>');
    expect(escaped.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('stores nothing when the provider will not exchange the code (invalid_grant)', async () => {
    const mailbox = await graphMailbox();
    const back = await authorize(await connect(mailbox.id));
    back.searchParams.set('code', 'forged-code');
    const page = await callback(back);
    expect(page.status).toBe(400);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.text).toContain('invalid_grant');
    expect(await storedCredentials(mailbox.id)).toBeNull();
  });
});

describe('tenants', () => {
  it("cannot connect another tenant's mailbox", async () => {
    const mailbox = await graphMailbox();
    const res = await t.call(t.b.adminToken.token, 'POST', `/api/v1/mailboxes/${mailbox.id}/connect`);
    expect(res.status).toBe(404);
  });

  it("a state of tenant A writes only tenant A's mailbox, even where tenant B has one with the same id", async () => {
    const mailbox = await graphMailbox();
    // A twin in tenant B (keys are tenant-first, so the id alone names two rows).
    await t.db.admin.query(
      `INSERT INTO mailboxes (tenant_id, id, kind, address, address_normalized, settings)
       VALUES ($1, $2, 'graph', $3, $3, '{}')`,
      [t.b.tenant.id, mailbox.id, mailbox.address],
    );
    const page = await callback(await authorize(await connect(mailbox.id)));
    expect(page.status, page.text).toBe(200);
    expect(await storedCredentials(mailbox.id)).not.toBeNull();
    expect(await storedCredentials(mailbox.id, t.b.tenant.id)).toBeNull();
  });
});

describe('connect refuses', () => {
  it('without RELAYDESK_PUBLIC_URL', async () => {
    const mailbox = await graphMailbox();
    t.config.publicUrl = undefined;
    try {
      const res = await t.call(admin, 'POST', `/api/v1/mailboxes/${mailbox.id}/connect`);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'validation_failed' });
      expect(res.body.detail).toContain('RELAYDESK_PUBLIC_URL');
    } finally {
      t.config.publicUrl = appUrl;
    }
  });

  it('without an app registration, naming the variables to set', async () => {
    const mailbox = await graphMailbox();
    const saved = t.config.oauth;
    t.config.oauth = {};
    try {
      const res = await t.call(admin, 'POST', `/api/v1/mailboxes/${mailbox.id}/connect`);
      expect(res.status).toBe(400);
      expect(res.body.detail).toContain('RELAYDESK_MICROSOFT_CLIENT_ID');
    } finally {
      t.config.oauth = saved;
    }
  });

  it('a mailbox that is neither Graph nor Gmail', async () => {
    const res = await t.call(admin, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'raw@a.test' });
    const connected = await t.call(admin, 'POST', `/api/v1/mailboxes/${res.body.id}/connect`);
    expect(connected.status).toBe(400);
    expect(connected.body).toMatchObject({ code: 'validation_failed' });
  });

  it("connects with the mailbox's own app registration when it has one", async () => {
    const mailbox = await graphMailbox();
    const saved = t.config.oauth;
    t.config.oauth = {};
    try {
      const subscriptions = graph.subscriptions().length;
      const res = await t.call(admin, 'PATCH', `/api/v1/mailboxes/${mailbox.id}`, {
        settings: { oauth: { clientId: graph.credentials.clientId } },
        credentials: { oauthClientSecret: graph.credentials.clientSecret },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      // Its own app's secret alone connects nothing: still not connected, no subscription tried.
      expect(res.body).toMatchObject({
        hasCredentials: true,
        health: { status: 'needs_reauth', failureReason: NOT_CONNECTED_REASON, connected: false },
      });
      expect(graph.subscriptions()).toHaveLength(subscriptions);
      const page = await callback(await authorize(await connect(mailbox.id)));
      expect(page.status, page.text).toBe(200);
      expect(await storedCredentials(mailbox.id)).toMatchObject({
        clientId: graph.credentials.clientId,
        clientSecret: graph.credentials.clientSecret,
      });
      expect((await health(mailbox.id)).status).toBe('healthy');
      expect(await healthChanges(mailbox.id)).toEqual([]);
    } finally {
      t.config.oauth = saved;
    }
  });
});

describe('connecting from the console (returnTo)', () => {
  const connectFrom = (mailboxId: string, returnTo: string, token = admin) =>
    t.call(
      token,
      'POST',
      `/api/v1/mailboxes/${mailboxId}/connect?${new URLSearchParams({ returnTo }).toString()}`,
    );

  it('sends the browser back to the console path with the outcome, and the mailbox is healthy', async () => {
    const mailbox = await graphMailbox();
    // From a console session (cookie and CSRF token), as the mailboxes screen does it.
    const session = await t.signIn({ role: 'admin' });
    const res = await session.call(
      'POST',
      `/api/v1/mailboxes/${mailbox.id}/connect?returnTo=${encodeURIComponent('/console/mailboxes')}`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const page = await callback(await authorize(new URL(res.body.authorizationUrl)));
    expect(page.status, page.text).toBe(303);
    expect(page.res.headers.get('cache-control')).toBe('no-store');
    const location = new URL(page.res.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(`${appUrl}/console/mailboxes`);
    expect(Object.fromEntries(location.searchParams)).toEqual({ connect: 'connected', mailbox: mailbox.id });
    expect(await health(mailbox.id)).toMatchObject({ status: 'healthy' });
  });

  it('keeps the query of the path and says why it failed, as a code only', async () => {
    const mailbox = await graphMailbox();
    const res = await connectFrom(mailbox.id, '/console/mailboxes?view=all');
    graph.denyConsent();
    const page = await callback(await authorize(new URL(res.body.authorizationUrl)));
    expect(page.status).toBe(303);
    const location = new URL(page.res.headers.get('location')!);
    expect(Object.fromEntries(location.searchParams)).toEqual({
      view: 'all',
      connect: 'failed',
      mailbox: mailbox.id,
      error: 'access_denied',
    });
    expect(await storedCredentials(mailbox.id)).toBeNull();
  });

  it('refuses a returnTo that is not a console path, storing no state', async () => {
    const mailbox = await graphMailbox();
    for (const returnTo of [
      'https://evil.test/console/mailboxes',
      '//evil.test/console',
      '/console//evil.test',
      '/consoles',
      '/api/v1/tokens',
      '/console/\\evil',
      '/console/a b',
      '',
      `/console/${'a'.repeat(600)}`,
    ]) {
      const res = await connectFrom(mailbox.id, returnTo);
      expect(res.status, returnTo).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const { rows } = await t.db.admin.query(
      'SELECT count(*)::int AS n FROM oauth_states WHERE mailbox_id = $1',
      [mailbox.id],
    );
    expect(rows[0].n).toBe(0);
  });

  it("lets no other tenant start connecting a tenant's mailbox", async () => {
    const mailbox = await graphMailbox();
    const res = await connectFrom(mailbox.id, '/console/mailboxes', t.b.adminToken.token);
    expect(res.status).toBe(404);
  });
});

describe('a mailbox made before new ones started not connected', () => {
  it('is brought in line by migration 0034: healthy without credentials becomes needs_reauth, with the same reason', async () => {
    const sql = await readFile('migrations/0034_not_connected_mailboxes.sql', 'utf8');
    // Connecting compares the reason to tell a first connection from a mended one.
    expect(sql).toContain(`'${NOT_CONNECTED_REASON}'`);
    const old = await graphMailbox();
    const connected = await graphMailbox();
    expect((await callback(await authorize(await connect(connected.id)))).status).toBe(200);
    // As such a mailbox was before: healthy, with no credentials and no subscription.
    await t.db.admin.query(
      "UPDATE mailbox_health SET status = 'healthy', failure_reason = NULL WHERE mailbox_id = $1",
      [old.id],
    );
    await t.db.admin.query(sql);
    expect(await health(old.id)).toMatchObject({
      status: 'needs_reauth',
      failureReason: NOT_CONNECTED_REASON,
    });
    expect(await health(connected.id)).toMatchObject({ status: 'healthy' });
  });
});
