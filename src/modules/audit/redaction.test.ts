// Secrets in requests stay out of the audit trail: what a route names in `auditRedact` is replaced by
// "[redacted]" before the request is hashed (an unsalted SHA-256 of a body holding a password is a
// fast hash of the password, one guess at a time). Each write that carries a secret is sent through
// the real API, and its stored event is checked against the hash of the body as redacted, written out
// here by hand; every route of the API is checked to declare the secrets its body schema names.
import { randomUUID } from 'node:crypto';
import type { RouteOptions } from 'fastify';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { ROUTES } from '../../app.ts';
import { buildServer } from '../../platform/http/server.ts';
import { tokenAuthenticator } from '../tokens/service.ts';
import { payloadHash } from './audit.ts';
import { auditRecordingsSettled, REDACTED, redactFields } from './request-audit.ts';

let t: TestApp;
const adminA = () => t.a.adminToken.token;

beforeAll(async () => {
  t = await useTestApp();
});

/**
 * Sends the write, then checks its event: the hash is that of `redacted` (the body with its secrets
 * replaced, as the caller writes it out), not that of the body, and no secret is anywhere in the trail.
 */
async function expectRedacted(
  method: 'POST' | 'PUT' | 'PATCH',
  url: string,
  body: Record<string, unknown>,
  redacted: unknown,
  secrets: string[],
  expected: { status: number; action: string; outcome?: string; errorCode?: string },
): Promise<void> {
  const res = await t.call(adminA(), method, url, body);
  expect(res.status, JSON.stringify(res.body)).toBe(expected.status);
  const event = await newestEvent(expected.action);
  expect(event).toMatchObject({
    outcome: expected.outcome ?? 'success',
    error_code: expected.errorCode ?? null,
  });
  expect(event.payload_hash).toBe(payloadHash(redacted));
  expect(event.payload_hash).not.toBe(payloadHash(body));
  for (const secret of secrets) expect(event.row).not.toContain(secret);
  // Nor anywhere else in the trail.
  const { rows } = await t.db.admin.query('SELECT row_to_json(e)::text AS row FROM audit_events e');
  for (const secret of secrets) expect(JSON.stringify(rows)).not.toContain(secret);
}

/** Tenant a's newest event of this action, as stored (the tests of this file run one at a time). */
async function newestEvent(
  action: string,
): Promise<{ outcome: string; error_code: string | null; payload_hash: string; row: string }> {
  await auditRecordingsSettled();
  const { rows } = await t.db.admin.query(
    `SELECT outcome, error_code, payload_hash, row_to_json(e)::text AS row
       FROM audit_events e WHERE tenant_id = $1 AND action = $2 ORDER BY at DESC, id DESC LIMIT 1`,
    [t.a.tenant.id, action],
  );
  expect(rows, action).toHaveLength(1);
  return rows[0];
}

describe('redactFields', () => {
  it('replaces a top-level field, a nested one and every field under a `*`', () => {
    const body = {
      address: 'a@example.com',
      appPassword: 'p1',
      credentials: { password: 'p2', clientId: 'c', nested: { refreshToken: 'r' } },
      settings: { imap: { host: 'imap.example.com', password: 'p3' } },
    };
    expect(redactFields(body, ['appPassword', 'credentials.*', 'settings.imap.password'])).toEqual({
      address: 'a@example.com',
      appPassword: REDACTED,
      credentials: { password: REDACTED, clientId: REDACTED, nested: REDACTED },
      settings: { imap: { host: 'imap.example.com', password: REDACTED } },
    });
    // The body itself is left as it was.
    expect(body.credentials.password).toBe('p2');
  });

  it('leaves what is absent absent and null null, and replaces a scalar where an object belongs', () => {
    expect(redactFields({ displayName: 'x' }, ['credentials.*', 'appPassword'])).toEqual({
      displayName: 'x',
    });
    expect(redactFields({ credentials: null }, ['credentials.*'])).toEqual({ credentials: null });
    expect(redactFields({ credentials: {} }, ['credentials.*'])).toEqual({ credentials: {} });
    expect(redactFields({ credentials: 'hunter2' }, ['credentials.*'])).toEqual({ credentials: REDACTED });
    expect(redactFields({ credentials: 42 }, ['credentials.password'])).toEqual({ credentials: REDACTED });
    expect(redactFields({ credentials: ['a', { b: 'c' }] }, ['credentials.*'])).toEqual({
      credentials: [REDACTED, REDACTED],
    });
    // A field named is replaced whatever it holds.
    expect(redactFields({ password: null, code: { a: 1 } }, ['password', 'code'])).toEqual({
      password: REDACTED,
      code: REDACTED,
    });
  });

  it('keeps a `__proto__` key a plain field', () => {
    const body = JSON.parse('{"__proto__": {"password": "p"}, "credentials": {"password": "q"}}');
    const redacted = redactFields(body, ['credentials.*', '__proto__.password']) as Record<string, unknown>;
    expect(Object.getPrototypeOf(redacted)).toBe(Object.prototype);
    expect(JSON.stringify(redacted)).toBe(
      '{"__proto__":{"password":"[redacted]"},"credentials":{"password":"[redacted]"}}',
    );
  });
});

describe('writes that carry a secret', () => {
  it('PUT /integrations/teams: the app password', async () => {
    const appId = randomUUID();
    const password = `teams-secret-${randomUUID()}`;
    await expectRedacted(
      'PUT',
      '/api/v1/integrations/teams',
      { appId, appPassword: password },
      { appId, appPassword: '[redacted]' },
      [password],
      { status: 200, action: 'integrations.teams.update' },
    );
  });

  it('PUT /integrations/teams refused: the app password all the same', async () => {
    const password = `teams-refused-${randomUUID()}`;
    const body = { appId: randomUUID(), appPassword: password, tokenUrl: 'https://evil.example/token' };
    await expectRedacted(
      'PUT',
      '/api/v1/integrations/teams',
      body,
      { ...body, appPassword: '[redacted]' },
      [password],
      { status: 400, action: 'integrations.teams.update', outcome: 'failed', errorCode: 'validation_failed' },
    );
  });

  it('POST /mailboxes: an IMAP password and an SMTP password', async () => {
    const imap = `imap-secret-${randomUUID()}`;
    const smtp = `smtp-secret-${randomUUID()}`;
    const body = {
      kind: 'imap',
      address: `imap-${randomUUID()}@support.example`,
      settings: { imap: { host: 'imap.example.com', user: 'desk' } },
      credentials: { password: imap, smtpPassword: smtp },
    };
    await expectRedacted(
      'POST',
      '/api/v1/mailboxes',
      body,
      { ...body, credentials: { password: '[redacted]', smtpPassword: '[redacted]' } },
      [imap, smtp],
      { status: 201, action: 'mailboxes.create' },
    );
  });

  it("POST /mailboxes: a Graph mailbox's own OAuth client secret", async () => {
    const secret = `oauth-secret-${randomUUID()}`;
    const body = {
      kind: 'graph',
      address: `graph-${randomUUID()}@support.example`,
      settings: { oauth: { clientId: 'own-app' } },
      credentials: { oauthClientSecret: secret },
    };
    await expectRedacted(
      'POST',
      '/api/v1/mailboxes',
      body,
      { ...body, credentials: { oauthClientSecret: '[redacted]' } },
      [secret],
      { status: 201, action: 'mailboxes.create' },
    );
  });

  it('POST /mailboxes refused: Gmail client secret and refresh token, and Graph app credentials', async () => {
    const clientSecret = `gmail-client-secret-${randomUUID()}`;
    const refreshToken = `gmail-refresh-${randomUUID()}`;
    // An address too short: refused by validation, recorded as failed, still without the secrets.
    const body = {
      kind: 'gmail',
      address: 'x',
      credentials: { clientId: 'gmail-client', clientSecret, refreshToken },
    };
    await expectRedacted(
      'POST',
      '/api/v1/mailboxes',
      body,
      {
        ...body,
        credentials: { clientId: '[redacted]', clientSecret: '[redacted]', refreshToken: '[redacted]' },
      },
      [clientSecret, refreshToken],
      { status: 400, action: 'mailboxes.create', outcome: 'failed', errorCode: 'validation_failed' },
    );
    const graphSecret = `graph-secret-${randomUUID()}`;
    const graph = {
      kind: 'graph',
      address: 'y',
      credentials: { tenantId: 'directory', clientId: 'graph-client', clientSecret: graphSecret },
    };
    await expectRedacted(
      'POST',
      '/api/v1/mailboxes',
      graph,
      {
        ...graph,
        credentials: { tenantId: '[redacted]', clientId: '[redacted]', clientSecret: '[redacted]' },
      },
      [graphSecret],
      { status: 400, action: 'mailboxes.create', outcome: 'failed', errorCode: 'validation_failed' },
    );
  });

  it('POST /mailboxes refused: a password sent as the credentials themselves', async () => {
    const password = `bare-secret-${randomUUID()}`;
    const body = { kind: 'imap', address: `bare-${randomUUID()}@support.example`, credentials: password };
    await expectRedacted(
      'POST',
      '/api/v1/mailboxes',
      body,
      { ...body, credentials: '[redacted]' },
      [password],
      { status: 400, action: 'mailboxes.create', outcome: 'failed', errorCode: 'validation_failed' },
    );
  });

  it('PATCH /mailboxes/:id: new credentials, then none', async () => {
    const created = await t.call(adminA(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: `mime-${randomUUID()}@support.example`,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const url = `/api/v1/mailboxes/${created.body.id}`;
    const smtp = `smtp-patch-${randomUUID()}`;
    await expectRedacted(
      'PATCH',
      url,
      {
        displayName: 'Desk',
        settings: { smtp: { host: 'smtp.example.com', port: 587, security: 'starttls', username: 'desk' } },
        credentials: { smtpPassword: smtp },
      },
      {
        displayName: 'Desk',
        settings: { smtp: { host: 'smtp.example.com', port: 587, security: 'starttls', username: 'desk' } },
        credentials: { smtpPassword: '[redacted]' },
      },
      [smtp],
      { status: 200, action: 'mailboxes.update' },
    );
    // Removing them says so: null is kept as it was sent.
    const res = await t.call(adminA(), 'PATCH', url, { credentials: null });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await newestEvent('mailboxes.update')).payload_hash).toBe(payloadHash({ credentials: null }));
  });
});

/** The names a secret goes by in a request body. */
const SECRET_NAME = /(password|secret|token|credentials|code)$/i;

/** The paths (dotted, `*` for any field or item) of the secret-named fields a JSON schema allows. */
function secretPaths(schema: unknown, at: string[] = []): string[][] {
  if (!schema || typeof schema !== 'object') return [];
  const s = schema as Record<string, unknown>;
  const found: string[][] = [];
  for (const [name, sub] of Object.entries((s['properties'] as Record<string, unknown>) ?? {})) {
    if (SECRET_NAME.test(name)) found.push([...at, name]);
    found.push(...secretPaths(sub, [...at, name]));
  }
  for (const sub of Object.values((s['patternProperties'] as Record<string, unknown>) ?? {}))
    found.push(...secretPaths(sub, [...at, '*']));
  if (typeof s['additionalProperties'] === 'object')
    found.push(...secretPaths(s['additionalProperties'], [...at, '*']));
  if (s['items']) found.push(...secretPaths(s['items'], [...at, '*']));
  for (const key of ['anyOf', 'oneOf', 'allOf'])
    for (const sub of (s[key] as unknown[]) ?? []) found.push(...secretPaths(sub, at));
  return found;
}

/** Whether a redaction path replaces the field at `path`, or every field under it. */
function covers(redact: string, path: string[]): boolean {
  const r = redact.split('.');
  const matches = (n: number) => r.slice(0, n).every((seg, i) => seg === '*' || seg === path[i]);
  if (r.length <= path.length) return matches(r.length);
  return r.length === path.length + 1 && r.at(-1) === '*' && matches(path.length);
}

describe('every route', () => {
  it('names the secrets of its body in auditRedact, or records its own event (audit: false)', async () => {
    const routes: RouteOptions[] = [];
    const app = await buildServer(
      {
        config: { bodyLimit: 1024 * 1024, docs: false },
        pool: t.db.pool,
        logger: pino({ level: 'silent' }),
        queue: t.queue,
        secretKey: t.secretKey,
        clock: t.clock,
        authenticate: tokenAuthenticator({ pool: t.db.pool, clock: t.clock }),
      },
      [(api) => void api.addHook('onRoute', (route) => void routes.push(route)), ...ROUTES],
    );
    await app.close();
    const writes = routes.filter((r) =>
      [r.method].flat().some((m) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(String(m))),
    );
    expect(writes.length).toBeGreaterThan(50);
    const uncovered: string[] = [];
    const withSecrets: string[] = [];
    for (const route of writes) {
      const paths = secretPaths(route.schema?.body);
      if (paths.length === 0) continue;
      withSecrets.push(`${String(route.method)} ${route.url}`);
      const config = (route.config ?? {}) as { audit?: unknown; auditRedact?: string[] };
      if (config.audit === false) continue;
      for (const path of paths)
        if (!(config.auditRedact ?? []).some((r) => covers(r, path)))
          uncovered.push(`${String(route.method)} ${route.url}: ${path.join('.')}`);
    }
    expect(uncovered).toEqual([]);
    // The check found the routes it is about (a schema walk that saw nothing would pass anything).
    expect(withSecrets).toEqual(
      expect.arrayContaining([
        'PUT /api/v1/integrations/teams',
        'POST /api/v1/mailboxes',
        'PATCH /api/v1/mailboxes/:id',
        'POST /api/v1/session',
        'PUT /api/v1/integrations/slack',
        'PUT /api/v1/integrations/oidc/:provider',
      ]),
    );
  });
});
