import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { authenticate } from './service.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

describe('GET /api/v1/me', () => {
  it("describes the token's tenant, person, role and permissions", async () => {
    const res = await t.call(tokenA, 'GET', '/api/v1/me');
    expect(res.status).toBe(200);
    expect(res.body.tenant).toEqual({ id: t.a.tenant.id, name: 'Tenant A' });
    expect(res.body.person).toMatchObject({ id: t.a.adminPersonId, displayName: 'Tenant A', kind: 'agent' });
    expect(res.body.token).toMatchObject({ role: 'admin', preview: tokenA.slice(-4) });
    expect(res.body.permissions).toContain('tokens:manage');
  });
});

describe('tokens', () => {
  it('mints a token shown once, stores only its hash and lists it without the secret', async () => {
    const res = await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent', label: 'helpdesk bot' });
    expect(res.status).toBe(201);
    expect(res.body.token).toMatch(/^rd_[A-Za-z0-9_-]{43}$/);
    expect(res.body).toMatchObject({
      role: 'agent',
      label: 'helpdesk bot',
      preview: res.body.token.slice(-4),
      personId: t.a.adminPersonId,
    });
    const { rows } = await t.db.admin.query('SELECT token_hash, preview FROM api_tokens WHERE id = $1', [
      res.body.id,
    ]);
    expect(rows[0].token_hash).toHaveLength(32);
    expect(JSON.stringify(rows)).not.toContain(res.body.token);
    const list = await t.call(tokenA, 'GET', '/api/v1/tokens');
    expect(JSON.stringify(list.body)).not.toContain(res.body.token);
    expect(list.body.items.find((i: any) => i.id === res.body.id)).toMatchObject({
      role: 'agent',
      revokedAt: null,
    });
  });

  it('revokes a token: it stops working at once', async () => {
    const minted = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer' })).body;
    expect((await t.call(minted.token, 'GET', '/api/v1/me')).status).toBe(200);
    const revoked = await t.call(tokenA, 'DELETE', `/api/v1/tokens/${minted.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    const after = await t.call(minted.token, 'GET', '/api/v1/me');
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('unauthorized');
  });

  it('mints for another person of the tenant, never for a person of another tenant', async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent' });
    const res = await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent', personId: agent.id });
    expect(res.status).toBe(201);
    const me = await t.call(res.body.token, 'GET', '/api/v1/me');
    expect(me.body.person.id).toBe(agent.id);
    const cross = await t.call(tokenB, 'POST', '/api/v1/tokens', { role: 'agent', personId: agent.id });
    expect(cross.status).toBe(404);
  });

  it('only admins manage tokens; roles cannot escalate', async () => {
    const agentToken = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent' })).body.token;
    expect((await t.call(agentToken, 'POST', '/api/v1/tokens', { role: 'admin' })).status).toBe(403);
    expect((await t.call(agentToken, 'GET', '/api/v1/tokens')).status).toBe(403);
    expect((await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'root' })).status).toBe(400);
  });

  it("keeps tenants apart: B cannot list, read or revoke A's tokens", async () => {
    const minted = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer', label: 'a-only' })).body;
    const listB = await t.call(tokenB, 'GET', '/api/v1/tokens');
    expect(listB.body.items.map((i: any) => i.id)).not.toContain(minted.id);
    expect((await t.call(tokenB, 'GET', `/api/v1/tokens/${minted.id}`)).status).toBe(404);
    expect((await t.call(tokenB, 'DELETE', `/api/v1/tokens/${minted.id}`)).status).toBe(404);
    expect((await t.call(minted.token, 'GET', '/api/v1/me')).status).toBe(200);
  });

  it('refuses tokens of suspended people', async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent' });
    const token = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent', personId: agent.id })).body
      .token;
    await t.db.admin.query("UPDATE people SET status = 'suspended' WHERE id = $1", [agent.id]);
    expect((await t.call(token, 'GET', '/api/v1/me')).status).toBe(401);
  });

  it('records last use at most once a minute', async () => {
    const minted = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer' })).body;
    const read = async () =>
      (await t.db.admin.query('SELECT last_used_at FROM api_tokens WHERE id = $1', [minted.id])).rows[0]
        .last_used_at;
    expect(await read()).toBeNull();
    const now = Date.now();
    await authenticate(t.db.pool, minted.token, now);
    await expect.poll(read).not.toBeNull();
    const first = await read();
    for (let i = 0; i < 5; i++) await authenticate(t.db.pool, minted.token, now + 1000 * i);
    await new Promise((r) => setTimeout(r, 50));
    expect(await read()).toBe(first);
  });
});

describe('auth cache', () => {
  it('serves repeat requests from the cache and drops it the moment another process revokes or suspends', async () => {
    const { AuthCache } = await import('./auth-cache.ts');
    const cache = new AuthCache();
    await cache.start(t.db.url, (await import('../../platform/logging.ts')).createLogger('silent'));
    try {
      expect(cache.enabled).toBe(true);
      const minted = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer' })).body;
      const first = await authenticate(t.db.pool, minted.token, Date.now(), cache);
      // Cached: a change the triggers do not watch (last use) does not matter; the lookup needs no query.
      const spy = { calls: 0 };
      const countingPool = new Proxy(t.db.pool, {
        get: (target, prop) =>
          prop === 'query'
            ? (...args: unknown[]) => {
                spy.calls++;
                return (target.query as (...a: unknown[]) => unknown)(...args);
              }
            : Reflect.get(target, prop),
      });
      const second = await authenticate(countingPool, minted.token, Date.now(), cache);
      expect(second.tokenId).toBe(first.tokenId);
      expect(spy.calls).toBe(0);
      // Revoked elsewhere (plain SQL, as another process would): the notification empties the cache.
      await t.db.admin.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [minted.id]);
      await expect
        .poll(
          async () =>
            authenticate(t.db.pool, minted.token, Date.now(), cache).then(
              () => 'ok',
              (e) => e.code,
            ),
          { timeout: 5000 },
        )
        .toBe('unauthorized');
      // Suspending the person has the same effect.
      const person = await makePerson(t, tokenA, { kind: 'agent' });
      const agentToken = (
        await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent', personId: person.id })
      ).body.token;
      await authenticate(t.db.pool, agentToken, Date.now(), cache);
      await t.db.admin.query("UPDATE people SET status = 'suspended' WHERE id = $1", [person.id]);
      await expect
        .poll(
          async () =>
            authenticate(t.db.pool, agentToken, Date.now(), cache).then(
              () => 'ok',
              (e) => e.code,
            ),
          { timeout: 5000 },
        )
        .toBe('unauthorized');
    } finally {
      await cache.stop();
    }
    expect(cache.enabled).toBe(false);
  });
});
