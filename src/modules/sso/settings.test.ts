// PUT/GET/DELETE /api/v1/integrations/oidc/{provider} and GET /api/v1/sso/providers: the secret is
// sealed and never answered, issuers and domains are checked, only admins may change anything, each
// tenant sees and changes only its own, and the public list tells nothing about other tenants.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { unseal } from '../../platform/crypto.ts';
import { checkDomains, checkIssuer, emailInDomains } from './providers.ts';

let t: TestApp;
let adminA: string;
let adminB: string;
const SECRET = 'sso-client-secret-4f9c2a7e1b3d';
const path = (provider: string) => `/api/v1/integrations/oidc/${provider}`;
const body = (extra: Record<string, unknown> = {}) => ({
  issuer: 'https://login.microsoftonline.com/4f7c2a1e-9b3d-4c8e-a6f0-2d5b8e1c7a93/v2.0',
  clientId: 'a1b2c3d4-0000-4000-8000-000000000001',
  clientSecret: SECRET,
  ...extra,
});

beforeAll(async () => {
  t = await useTestApp();
  adminA = t.a.adminToken.token;
  adminB = t.b.adminToken.token;
});

describe('checks', () => {
  it('takes https issuers, plain http only on loopback, and no Entra multi-tenant authority', () => {
    expect(checkIssuer('google', ' https://accounts.google.com ')).toBe('https://accounts.google.com');
    expect(checkIssuer('oidc', 'https://idp.example/realms/x/')).toBe('https://idp.example/realms/x/');
    for (const host of ['127.0.0.1:8080', 'localhost:1', '[::1]:9'])
      expect(checkIssuer('oidc', `http://${host}`)).toBe(`http://${host}`);
    for (const bad of [
      'http://idp.example',
      'http://10.0.0.1',
      'ftp://idp.example',
      'https://idp.example/?x=1',
      'https://idp.example/#f',
      'https://user:pw@idp.example',
      'not a url',
      '/relative',
    ])
      expect(() => checkIssuer('oidc', bad), bad).toThrow(/issuer/);
    for (const authority of ['common', 'organizations', 'consumers', 'Common'])
      expect(() => checkIssuer('entra', `https://login.microsoftonline.com/${authority}/v2.0`)).toThrow(
        /one directory/,
      );
    // The generic kind may be anything, Entra's own tenants included.
    expect(checkIssuer('oidc', 'https://login.microsoftonline.com/common/v2.0')).toContain('common');
  });

  it('takes domain names, lower-cased once each, and matches addresses exactly', () => {
    expect(checkDomains(['Contoso.com', '@fabrikam.test', 'contoso.com'])).toEqual([
      'contoso.com',
      'fabrikam.test',
    ]);
    for (const bad of ['*.contoso.com', 'a@b.c', 'contoso com', '-x.com', ''])
      expect(() => checkDomains([bad]), bad).toThrow(/domain/);
    expect(emailInDomains('Lee@Contoso.COM', ['contoso.com'])).toBe(true);
    expect(emailInDomains('lee@sub.contoso.com', ['contoso.com'])).toBe(false);
    expect(emailInDomains('lee@contoso.com.evil.test', ['contoso.com'])).toBe(false);
    expect(emailInDomains('contoso.com', ['contoso.com'])).toBe(false);
  });
});

describe('provider settings', () => {
  it('are set up, shown without the secret, kept sealed, and removed', async () => {
    expect((await t.call(adminA, 'GET', path('entra'))).status).toBe(404);
    const put = await t.call(adminA, 'PUT', path('entra'), body({ allowedDomains: ['Contoso.com'] }));
    expect(put.status).toBe(200);
    const expected = {
      provider: 'entra',
      issuer: body().issuer,
      clientId: body().clientId,
      enabled: true,
      allowedDomains: ['contoso.com'],
      label: 'Microsoft',
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    };
    expect(put.body).toEqual(expected);
    const got = await t.call(adminA, 'GET', path('entra'));
    expect(got.body).toEqual(expected);
    for (const res of [put, got]) expect(JSON.stringify(res.body)).not.toContain(SECRET.slice(4, -4));
    const { rows } = await t.db.admin.query(
      'SELECT client_secret FROM sso_providers WHERE tenant_id = $1 AND provider = $2',
      [t.a.tenant.id, 'entra'],
    );
    expect(Buffer.from(rows[0].client_secret).toString('latin1')).not.toContain(SECRET);
    expect(unseal(t.secretKey, rows[0].client_secret).toString()).toBe(SECRET);

    // The audit trail has both changes, without the secret in what it hashed.
    expect((await t.call(adminA, 'DELETE', path('entra'))).status).toBe(204);
    expect((await t.call(adminA, 'GET', path('entra'))).status).toBe(404);
    expect((await t.call(adminA, 'DELETE', path('entra'))).status).toBe(404);
    const audit = await t.db.admin.query(
      `SELECT action, outcome, target_id FROM audit_events WHERE tenant_id = $1 AND action LIKE 'integrations.oidc.%'
        ORDER BY at`,
      [t.a.tenant.id],
    );
    expect(audit.rows).toEqual([
      { action: 'integrations.oidc.update', outcome: 'success', target_id: 'entra' },
      { action: 'integrations.oidc.delete', outcome: 'success', target_id: 'entra' },
      { action: 'integrations.oidc.delete', outcome: 'failed', target_id: 'entra' },
    ]);
  });

  it('keep the secret when it is left out, unless the issuer or client changes', async () => {
    expect((await t.call(adminA, 'PUT', path('google'), body({ clientSecret: undefined }))).status).toBe(400);
    const google = { issuer: 'https://accounts.google.com', clientId: 'g-1.apps.googleusercontent.com' };
    expect((await t.call(adminA, 'PUT', path('google'), { ...google, clientSecret: SECRET })).status).toBe(
      200,
    );
    const disabled = await t.call(adminA, 'PUT', path('google'), {
      ...google,
      enabled: false,
      label: 'Workspace',
    });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ enabled: false, label: 'Workspace', allowedDomains: [] });
    const { rows } = await t.db.admin.query(
      "SELECT client_secret FROM sso_providers WHERE tenant_id = $1 AND provider = 'google'",
      [t.a.tenant.id],
    );
    expect(unseal(t.secretKey, rows[0].client_secret).toString()).toBe(SECRET);
    const other = await t.call(adminA, 'PUT', path('google'), { ...google, clientId: 'g-2' });
    expect(other.status).toBe(400);
    expect(other.body.errors).toEqual([{ path: '/clientSecret', message: 'is required' }]);
    expect((await t.call(adminA, 'GET', path('google'))).body.clientId).toBe(google.clientId);
  });

  it('refuse what is not valid, with the field named', async () => {
    const refused = async (extra: Record<string, unknown>, provider = 'oidc') => {
      const res = await t.call(adminA, 'PUT', path(provider), body(extra));
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      return res.body;
    };
    expect((await refused({ issuer: 'http://idp.example.com' })).errors[0].path).toBe('/issuer');
    expect(
      (await refused({ issuer: 'https://login.microsoftonline.com/common/v2.0' }, 'entra')).errors[0].path,
    ).toBe('/issuer');
    expect((await refused({ allowedDomains: ['ok.test', '*.bad'] })).errors[0].path).toBe(
      '/allowedDomains/1',
    );
    await refused({ clientId: '' });
    await refused({ clientId: '   ' });
    await refused({ extra: true });
    await refused({ enabled: 'yes' });
    expect((await t.call(adminA, 'PUT', path('okta'), body())).status).toBe(400);
    expect((await t.call(adminA, 'GET', path('oidc'))).status).toBe(404);
  });

  it('are for admins only', async () => {
    const minted = await t.call(adminA, 'POST', '/api/v1/tokens', { role: 'agent', label: 'agent' });
    expect(minted.status).toBe(201);
    for (const [method, payload] of [
      ['GET', undefined],
      ['PUT', body()],
      ['DELETE', undefined],
    ] as const) {
      const res = await t.call(minted.body.token, method, path('oidc'), payload);
      expect(res.status, method).toBe(403);
    }
    expect((await t.call(undefined, 'GET', path('oidc'))).status).toBe(401);
  });

  it("are each tenant's own: another tenant cannot see, change or remove them", async () => {
    expect((await t.call(adminA, 'PUT', path('oidc'), body({ issuer: 'https://idp.a.test' }))).status).toBe(
      200,
    );
    expect((await t.call(adminB, 'GET', path('oidc'))).status).toBe(404);
    expect((await t.call(adminB, 'DELETE', path('oidc'))).status).toBe(404);
    expect((await t.call(adminB, 'PUT', path('oidc'), body({ issuer: 'https://idp.b.test' }))).status).toBe(
      200,
    );
    expect((await t.call(adminA, 'GET', path('oidc'))).body.issuer).toBe('https://idp.a.test');
    expect((await t.call(adminB, 'GET', path('oidc'))).body.issuer).toBe('https://idp.b.test');
    expect((await t.call(adminB, 'DELETE', path('oidc'))).status).toBe(204);
    expect((await t.call(adminA, 'GET', path('oidc'))).status).toBe(200);
  });
});

describe('the public list of providers', () => {
  it("lists a tenant's enabled providers only, the same empty list for a tenant that is not there", async () => {
    await t.call(adminA, 'PUT', path('oidc'), body({ issuer: 'https://idp.a.test', label: 'Okta' }));
    await t.call(adminA, 'PUT', path('entra'), body());
    await t.call(adminA, 'PUT', path('google'), {
      issuer: 'https://accounts.google.com',
      clientId: 'g',
      clientSecret: 's',
      enabled: false,
    });
    const list = (query: string) => t.call(undefined, 'GET', `/api/v1/sso/providers${query}`);
    const a = await list(`?tenant=${encodeURIComponent('tenant a')}`);
    expect(a.status).toBe(200);
    expect(a.body).toEqual({
      providers: [
        { provider: 'entra', label: 'Microsoft' },
        { provider: 'oidc', label: 'Okta' },
      ],
    });
    expect((await list(`?tenant=${t.a.tenant.id}`)).body).toEqual(a.body);
    expect((await list(`?tenant=${encodeURIComponent('Tenant B')}`)).body).toEqual({ providers: [] });
    expect((await list('?tenant=nobody')).body).toEqual({ providers: [] });
    // Two tenants and none named: none.
    expect((await list('')).body).toEqual({ providers: [] });
    expect(JSON.stringify(a.body)).not.toContain('idp.a.test');
    expect((await list('?other=1')).status).toBe(400);
  });
});
