// A mailbox's provider endpoints are where the server sends requests, some with the mailbox's
// credentials: a tenant admin may point them only at the provider's own origins, or at origins the
// operator allows (RELAYDESK_PROVIDER_ORIGINS; the test app allows loopback for its simulators).
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { loadConfig } from '../../platform/config.ts';
import { assertProviderEndpoints } from './mailboxes.ts';

let t: TestApp;
let token: string;

beforeAll(async () => {
  t = await useTestApp();
  token = t.a.adminToken.token;
});

const mailboxCount = async () =>
  (await t.db.admin.query('SELECT count(*)::int AS n FROM mailboxes')).rows[0].n as number;

describe('provider endpoints of a mailbox', () => {
  it("accepts the providers' own origins, national clouds included", async () => {
    const graph = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: 'graph',
      address: 'gov@a.example',
      settings: {
        graph: {
          apiBaseUrl: 'https://graph.microsoft.us/v1.0',
          tokenUrl: 'https://login.microsoftonline.us',
        },
      },
    });
    expect(graph.status, JSON.stringify(graph.body)).toBe(201);
    const gmail = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: 'gmail',
      address: 'g@a.example',
      settings: { gmail: { jwksUrl: 'https://www.googleapis.com/oauth2/v3/certs' } },
    });
    expect(gmail.status).toBe(201);
  });

  it.each([
    ['graph', 'apiBaseUrl', 'http://169.254.169.254/latest/meta-data'],
    ['graph', 'tokenUrl', 'http://10.0.0.5:8080'],
    ['graph', 'apiBaseUrl', 'https://graph.microsoft.com.evil.example/v1.0'],
    ['graph', 'apiBaseUrl', 'http://graph.microsoft.com/v1.0'],
    ['graph', 'tokenUrl', 'https://attacker:pw@login.microsoftonline.com'],
    ['gmail', 'jwksUrl', 'http://localhost:5432/'],
    ['gmail', 'tokenUrl', 'file:///etc/passwd'],
    ['gmail', 'apiBaseUrl', 'https://gmail.googleapis.com/gmail/v1?x=1'],
    ['gmail', 'apiBaseUrl', 'not a url'],
    ['gmail', 'apiBaseUrl', 42],
  ])('refuses %s.%s = %j on creation and on change, storing nothing', async (provider, key, value) => {
    const before = await mailboxCount();
    const created = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: provider,
      address: `ssrf-${provider}@a.example`,
      settings: { [provider]: { [key]: value } },
    });
    expect(created.status).toBe(400);
    expect(created.headers['content-type']).toContain('application/problem+json');
    expect(created.body.code).toBe('validation_failed');
    expect(created.body.errors[0].path).toBe(`/settings/${provider}/${key}`);
    expect(await mailboxCount()).toBe(before);

    const box = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: provider,
      address: `ssrf-${provider}-${key}-${before}@a.example`,
    });
    expect(box.status).toBe(201);
    const changed = await t.call(token, 'PATCH', `/api/v1/mailboxes/${box.body.id}`, {
      settings: { [provider]: { [key]: value } },
    });
    expect(changed.status).toBe(400);
    expect(changed.body.code).toBe('validation_failed');
    const after = await t.call(token, 'GET', `/api/v1/mailboxes/${box.body.id}`);
    expect(after.body.settings[provider][key]).toBe(box.body.settings[provider][key]);
  });

  it('accepts an origin the operator allows (here loopback, for the simulators)', async () => {
    const res = await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: 'graph',
      address: 'sim@a.example',
      settings: { graph: { apiBaseUrl: 'http://127.0.0.1:4010/v1.0', tokenUrl: 'http://127.0.0.1:4011' } },
    });
    expect(res.status).toBe(201);
  });
});

describe('assertProviderEndpoints', () => {
  const at = (apiBaseUrl: string) => ({ graph: { apiBaseUrl } });
  it('allows no other origin by default', () => {
    expect(() => assertProviderEndpoints(at('http://127.0.0.1:4010/v1.0'), [])).toThrow(
      /RELAYDESK_PROVIDER_ORIGINS/,
    );
    expect(() => assertProviderEndpoints(at('https://graph.microsoft.com/v1.0'), [])).not.toThrow();
  });

  it('matches scheme, host and port of an allowed origin; * matches any port', () => {
    const rules = ['http://127.0.0.1:4010', 'https://graph-proxy.internal'];
    expect(() => assertProviderEndpoints(at('http://127.0.0.1:4010/v1.0'), rules)).not.toThrow();
    expect(() => assertProviderEndpoints(at('http://127.0.0.1:4011/v1.0'), rules)).toThrow();
    expect(() => assertProviderEndpoints(at('https://127.0.0.1:4010/v1.0'), rules)).toThrow();
    expect(() => assertProviderEndpoints(at('https://graph-proxy.internal/v1.0'), rules)).not.toThrow();
    expect(() => assertProviderEndpoints(at('https://graph-proxy.internal:8443/v1.0'), rules)).toThrow();
    expect(() =>
      assertProviderEndpoints(at('http://127.0.0.1:1/v1.0'), ['http://127.0.0.1:*']),
    ).not.toThrow();
  });

  it('is configured by RELAYDESK_PROVIDER_ORIGINS, whose entries must be origins', () => {
    expect(
      loadConfig({ RELAYDESK_PROVIDER_ORIGINS: ' http://127.0.0.1:*, https://proxy.example ' })
        .providerOrigins,
    ).toEqual(['http://127.0.0.1:*', 'https://proxy.example']);
    expect(loadConfig({}).providerOrigins).toEqual([]);
    expect(() => loadConfig({ RELAYDESK_PROVIDER_ORIGINS: 'http://a.example/path' })).toThrow(
      /RELAYDESK_PROVIDER_ORIGINS: "http:\/\/a.example\/path" is not an origin/,
    );
    expect(() => loadConfig({ RELAYDESK_PROVIDER_ORIGINS: 'ftp://a.example' })).toThrow(/is not an origin/);
  });
});
