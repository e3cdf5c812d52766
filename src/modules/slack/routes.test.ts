// PUT/GET/DELETE /api/v1/integrations/slack against the Slack simulator: the token is checked with
// auth.test, kept sealed and never answered; the base URL is checked; each tenant sees and changes
// only its own; only admins may.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type SlackSimulator, startSlackSimulator } from '../../../simulators/slack.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { DEFAULT_SLACK_API_BASE_URL, tokenHint } from './integration.ts';
import { slackIntegrationRoutes } from './routes.ts';
import { checkApiBaseUrl } from './service.ts';

const URL_PATH = '/api/v1/integrations/slack';
let t: TestApp;
let sim: SlackSimulator;
let adminA: string;
let adminB: string;

beforeAll(async () => {
  t = await useTestApp({ extraRoutes: [slackIntegrationRoutes] });
  sim = await startSlackSimulator();
  adminA = t.a.adminToken.token;
  adminB = t.b.adminToken.token;
});
afterAll(() => sim.close());
beforeEach(() => sim.clearFaults());

const connect = (token: string, botToken = sim.botToken, extra: Record<string, unknown> = {}) =>
  t.call(token, 'PUT', URL_PATH, { botToken, apiBaseUrl: sim.apiBaseUrl, ...extra });

describe('connecting', () => {
  it('checks the token with auth.test, keeps it sealed and shows only a hint of it', async () => {
    const before = await t.call(adminA, 'GET', URL_PATH);
    expect(before.status).toBe(200);
    expect(before.body).toEqual({
      configured: false,
      apiBaseUrl: DEFAULT_SLACK_API_BASE_URL,
      tokenHint: null,
      teamId: null,
      teamName: null,
      botUserId: null,
      updatedAt: null,
    });
    const authTests = sim.log.filter((l) => l.apiMethod === 'auth.test').length;
    const put = await connect(adminA);
    expect(put.status).toBe(200);
    expect(sim.log.filter((l) => l.apiMethod === 'auth.test').length).toBe(authTests + 1);
    const expected = {
      configured: true,
      apiBaseUrl: sim.apiBaseUrl,
      tokenHint: `xoxb-…${sim.botToken.slice(-4)}`,
      teamId: sim.team.id,
      teamName: sim.team.name,
      botUserId: sim.botUserId,
      updatedAt: expect.any(String),
    };
    expect(put.body).toEqual(expected);
    const got = await t.call(adminA, 'GET', URL_PATH);
    expect(got.body).toEqual(expected);
    for (const res of [put, got]) expect(JSON.stringify(res.body)).not.toContain(sim.botToken.slice(5, -4));
    // At rest it is sealed, not the token's bytes.
    const { rows } = await t.db.admin.query('SELECT bot_token FROM slack_integrations WHERE tenant_id = $1', [
      t.a.tenant.id,
    ]);
    expect(rows).toHaveLength(1);
    expect((rows[0].bot_token as Buffer).includes(Buffer.from(sim.botToken))).toBe(false);
    const audit = await t.db.admin.query(
      `SELECT action, outcome FROM audit_events WHERE tenant_id = $1 AND action LIKE 'integrations.slack.%'`,
      [t.a.tenant.id],
    );
    expect(audit.rows).toContainEqual({ action: 'integrations.slack.connect', outcome: 'success' });
  });

  it('refuses a token Slack refuses, with its error, and keeps the earlier one', async () => {
    await connect(adminA);
    const revoked = sim.issueToken();
    sim.revokeToken(revoked);
    const inactive = sim.issueToken();
    sim.deactivateToken(inactive);
    for (const [token, error] of [
      ['xoxb-1-2-unknowntoken', 'invalid_auth'],
      [revoked, 'token_revoked'],
      [inactive, 'account_inactive'],
    ] as const) {
      const res = await connect(adminA, token);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'provider_credentials_rejected', providerError: error });
      expect(res.body.detail).toContain(error);
      expect(JSON.stringify(res.body)).not.toContain(token.slice(5));
    }
    expect((await t.call(adminA, 'GET', URL_PATH)).body.tokenHint).toBe(`xoxb-…${sim.botToken.slice(-4)}`);
  });

  it('answers 503 provider_unavailable when Slack cannot be asked (outage, rate limit)', async () => {
    sim.fault({ pathPrefix: '/api/auth.test', status: 503 });
    const down = await connect(adminA);
    expect([down.status, down.body.code]).toEqual([503, 'provider_unavailable']);
    sim.fault({ pathPrefix: '/api/auth.test', status: 429, retryAfter: 3 });
    expect((await connect(adminA)).body.code).toBe('provider_unavailable');
  });

  it('validates the body and the base URL before asking Slack', async () => {
    const asked = sim.log.length;
    const cases: [unknown, string][] = [
      [{}, '/botToken'],
      [{ botToken: 'not-a-slack-token' }, '/botToken'],
      [{ botToken: 'xoxp-1234567890-abcdef' }, '/botToken'],
      [{ botToken: sim.botToken, extra: 1 }, '/extra'],
      [{ botToken: sim.botToken, apiBaseUrl: 'https://evil.example.com/api' }, '/apiBaseUrl'],
      [{ botToken: sim.botToken, apiBaseUrl: `${sim.apiBaseUrl}?x=1` }, '/apiBaseUrl'],
      [{ botToken: sim.botToken, apiBaseUrl: 'http://user:pw@127.0.0.1:1/api' }, '/apiBaseUrl'],
      [{ botToken: sim.botToken, apiBaseUrl: 'file:///etc/passwd' }, '/apiBaseUrl'],
    ];
    for (const [body, path] of cases) {
      const res = await t.call(adminA, 'PUT', URL_PATH, body);
      expect([res.status, res.body.code], JSON.stringify(body)).toEqual([400, 'validation_failed']);
      expect(res.body.errors.map((e: any) => e.path)).toContain(path);
      // A refused token is not echoed either.
      expect(JSON.stringify(res.body)).not.toMatch(new RegExp(`${sim.botToken}|1234567890`));
    }
    expect(sim.log.length).toBe(asked);
  });

  it("takes Slack's own origins and the default, and stores the base URL without a trailing slash", () => {
    expect(checkApiBaseUrl(undefined, [])).toBe('https://slack.com/api');
    expect(checkApiBaseUrl('https://slack.com/api/', [])).toBe('https://slack.com/api');
    expect(checkApiBaseUrl('https://slack-gov.com/api', [])).toBe('https://slack-gov.com/api');
    expect(() => checkApiBaseUrl('http://127.0.0.1:9/api', [])).toThrow(/RELAYDESK_PROVIDER_ORIGINS/);
    expect(checkApiBaseUrl('http://127.0.0.1:9/api', ['http://127.0.0.1:*'])).toBe('http://127.0.0.1:9/api');
  });

  it('hints at a token by its kind and last four characters only', () => {
    expect(tokenHint('xoxb-1234567890-0987654321-abcdEFGH')).toBe('xoxb-…EFGH');
    expect(tokenHint('xoxb-short')).toBe('xoxb-…');
  });
});

describe('access', () => {
  it('needs integrations:manage (admin)', async () => {
    const agent = await t.call(adminA, 'POST', '/api/v1/tokens', { role: 'agent', label: 'agent' });
    expect(agent.status).toBe(201);
    for (const method of ['GET', 'PUT', 'DELETE'] as const) {
      const res = await t.call(
        agent.body.token,
        method,
        URL_PATH,
        method === 'PUT' ? { botToken: sim.botToken } : undefined,
      );
      expect([method, res.status, res.body.code]).toEqual([method, 403, 'forbidden']);
    }
    expect((await t.call(undefined, 'GET', URL_PATH)).status).toBe(401);
  });

  it("keeps tenants apart: b neither sees nor changes nor removes a's integration", async () => {
    await connect(adminA);
    const aView = (await t.call(adminA, 'GET', URL_PATH)).body;
    expect(aView.configured).toBe(true);
    expect((await t.call(adminB, 'GET', URL_PATH)).body.configured).toBe(false);
    const del = await t.call(adminB, 'DELETE', URL_PATH);
    expect([del.status, del.body.code]).toEqual([404, 'not_found']);
    const other = sim.issueToken();
    expect((await connect(adminB, other)).body.tokenHint).toBe(`xoxb-…${other.slice(-4)}`);
    expect((await t.call(adminA, 'GET', URL_PATH)).body).toEqual(aView);
    expect((await t.call(adminB, 'DELETE', URL_PATH)).status).toBe(204);
    expect((await t.call(adminA, 'GET', URL_PATH)).body).toEqual(aView);
  });
});

describe('disconnecting', () => {
  it('forgets the token; a second DELETE is 404', async () => {
    await connect(adminA);
    const del = await t.call(adminA, 'DELETE', URL_PATH);
    expect(del.status).toBe(204);
    expect((await t.call(adminA, 'GET', URL_PATH)).body.configured).toBe(false);
    const { rows } = await t.db.admin.query('SELECT 1 FROM slack_integrations WHERE tenant_id = $1', [
      t.a.tenant.id,
    ]);
    expect(rows).toEqual([]);
    expect((await t.call(adminA, 'DELETE', URL_PATH)).status).toBe(404);
  });
});
