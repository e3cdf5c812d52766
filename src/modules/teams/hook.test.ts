// The Teams integration routes and the activity endpoint: the connector's JWT rules (every forgery
// refused before anything is stored), conversation references, triage of unknown users, key
// rotation, tenant isolation and deletion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRecordingsSettled } from '../audit/request-audit.ts';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import {
  type Activity,
  type BotFrameworkSimulator,
  FORGERIES,
  type Forgery,
  startBotFrameworkSimulator,
} from '../../../simulators/botframework.ts';
import { deleteTenant } from '../tenants/service.ts';
import { createTenant } from '../tenants/service.ts';

let t: TestApp;
let sim: BotFrameworkSimulator;
let adminA: string;

const integrationOf = (bot: { appId: string; appPassword: string }) => ({
  appId: bot.appId,
  appPassword: bot.appPassword,
  tokenUrl: sim.tokenUrl,
  openIdMetadataUrl: sim.openIdMetadataUrl,
});

async function post(activity: Activity, options: { forge?: Forgery; appId?: string } = {}) {
  const headers = await sim.signedHeaders(activity, { ...options, at: t.clock.now() });
  return t.call(undefined, 'POST', '/hooks/teams', activity, headers);
}

async function count(table: string, where = 'true', values: unknown[] = []): Promise<number> {
  const { rows } = await t.db.admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE ${where}`,
    values,
  );
  return rows[0]!.n;
}

// Audit events are written just after each answer: every count first lets those in flight land, so
// an event of an earlier request is never taken for one this request stored.
const stored = async () => {
  await auditRecordingsSettled();
  return {
    references: await count('teams_conversation_references'),
    unmapped: await count('unmapped_identities'),
    audit: await count('audit_events'),
    tickets: await count('tickets'),
  };
};

beforeAll(async () => {
  t = await useTestApp();
  sim = await startBotFrameworkSimulator();
  adminA = t.a.adminToken.token;
  const res = await t.call(adminA, 'PUT', '/api/v1/integrations/teams', integrationOf(sim.bot));
  expect(res.status).toBe(200);
  // The PUT's audit event is written just after its answer: let it land before tests count rows.
  await auditRecordingsSettled();
});
afterAll(async () => {
  await sim.close();
});

describe('the integration routes', () => {
  it('keep the password sealed and never return it', async () => {
    const res = await t.call(adminA, 'GET', '/api/v1/integrations/teams');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ appId: sim.bot.appId, tokenUrl: sim.tokenUrl });
    expect(JSON.stringify(res.body)).not.toContain(sim.bot.appPassword);
    const { rows } = await t.db.admin.query<{ app_password: Buffer }>(
      'SELECT app_password FROM teams_integrations',
    );
    expect(rows[0]!.app_password.toString('latin1')).not.toContain(sim.bot.appPassword);
  });

  it('need integrations:manage (an agent token is refused)', async () => {
    const agent = await makePerson(t, adminA);
    const minted = await t.call(adminA, 'POST', '/api/v1/tokens', { personId: agent.id, role: 'agent' });
    expect(minted.status).toBe(201);
    expect((await t.call(minted.body.token, 'GET', '/api/v1/integrations/teams')).status).toBe(403);
    expect(
      (await t.call(minted.body.token, 'PUT', '/api/v1/integrations/teams', integrationOf(sim.bot))).status,
    ).toBe(403);
  });

  it('refuse endpoints outside the Bot Framework and the allowed origins', async () => {
    const res = await t.call(adminA, 'PUT', '/api/v1/integrations/teams', {
      ...integrationOf(sim.bot),
      tokenUrl: 'https://intranet.example.com/token',
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it('isolate tenants: b sees no integration, cannot take a’s app id, and has its own', async () => {
    const adminB = t.b.adminToken.token;
    expect((await t.call(adminB, 'GET', '/api/v1/integrations/teams')).status).toBe(404);
    const taken = await t.call(adminB, 'PUT', '/api/v1/integrations/teams', integrationOf(sim.bot));
    expect(taken.status).toBe(409);
    expect(taken.body.code).toBe('conflict');
    const own = await t.call(adminB, 'PUT', '/api/v1/integrations/teams', integrationOf(sim.addBot()));
    expect(own.status).toBe(200);
    // a's integration is untouched.
    expect((await t.call(adminA, 'GET', '/api/v1/integrations/teams')).body.appId).toBe(sim.bot.appId);
  });

  it('claim an app id once even when two tenants race for it', async () => {
    const c = await createTenant(t.db.pool, { name: 'Tenant C' });
    const d = await createTenant(t.db.pool, { name: 'Tenant D' });
    const bot = sim.addBot();
    const results = await Promise.all(
      [c, d].map((x) => t.call(x.adminToken.token, 'PUT', '/api/v1/integrations/teams', integrationOf(bot))),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(await count('teams_integrations', 'app_id = $1', [bot.appId])).toBe(1);
  });
});

describe('the activity endpoint', () => {
  it('answers 401 without a token and stores nothing', async () => {
    const before = await stored();
    const res = await post(sim.message(sim.user(), 'hello'), { forge: 'none' });
    expect(res.status).toBe(401);
    expect(await stored()).toEqual(before);
  });

  for (const forge of FORGERIES.filter((f) => f !== 'none'))
    it(`refuses a token with ${forge} (403) and stores nothing`, async () => {
      const before = await stored();
      const user = sim.user();
      const res = await post(sim.message(user, 'ticket Printer on fire'), { forge });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
      expect(await stored()).toEqual(before);
      expect(sim.sent()).toHaveLength(0);
    });

  it('refuses a token for a bot no tenant has (403)', async () => {
    const res = await post(
      sim.message(sim.user(), 'hello', { appId: '00000000-0000-4000-8000-000000000000' }),
    );
    expect(res.status).toBe(403);
  });

  it('stores the conversation reference of a valid activity and refreshes it', async () => {
    const user = sim.user();
    const activity = sim.message(user, 'hi');
    expect((await post({ ...activity, type: 'conversationUpdate' })).status).toBe(200);
    const first = await t.db.admin.query('SELECT * FROM teams_conversation_references WHERE user_id = $1', [
      user.id,
    ]);
    expect(first.rows).toHaveLength(1);
    expect(first.rows[0]).toMatchObject({
      tenant_id: t.a.tenant.id,
      conversation_id: activity['conversation'].id,
      conversation_type: 'personal',
      service_url: sim.serviceUrl,
      entra_tenant_id: sim.entraTenantId,
      aad_object_id: user.aadObjectId,
      stale_at: null,
    });
    // Stale, then a new activity from elsewhere: usable again, with the new serviceUrl.
    await t.db.admin.query('UPDATE teams_conversation_references SET stale_at = now() WHERE user_id = $1', [
      user.id,
    ]);
    t.clock.advance(60_000);
    const moved = { ...activity, id: 'second', type: 'conversationUpdate', serviceUrl: `${sim.url}/emea/` };
    expect((await post(moved)).status).toBe(200);
    const second = await t.db.admin.query('SELECT * FROM teams_conversation_references WHERE user_id = $1', [
      user.id,
    ]);
    expect(second.rows).toHaveLength(1);
    expect(second.rows[0].service_url).toBe(`${sim.url}/emea/`);
    expect(second.rows[0].stale_at).toBeNull();
    expect(new Date(second.rows[0].last_activity_at).getTime()).toBeGreaterThan(
      new Date(first.rows[0].last_activity_at).getTime(),
    );
    // The same again within a minute changes nothing: the row is not written (its version stays).
    const version = async () =>
      (
        await t.db.admin.query<{ xmin: string; last_activity_at: string }>(
          'SELECT xmin::text, last_activity_at FROM teams_conversation_references WHERE user_id = $1',
          [user.id],
        )
      ).rows[0]!;
    const before = await version();
    t.clock.advance(30_000);
    expect((await post({ ...moved, id: 'third' })).status).toBe(200);
    expect(await version()).toEqual(before);
    // A minute on, the last activity moves again.
    t.clock.advance(31_000);
    expect((await post({ ...moved, id: 'fourth' })).status).toBe(200);
    const after = await version();
    expect(after.xmin).not.toBe(before.xmin);
    expect(new Date(after.last_activity_at).getTime()).toBeGreaterThanOrEqual(
      new Date(before.last_activity_at).getTime() + 60_000,
    );
  });

  it('puts an unknown user in triage, and a linked one not', async () => {
    const stranger = sim.user({ name: 'Unknown Stranger' });
    expect((await post({ ...sim.message(stranger, 'hi'), type: 'conversationUpdate' })).status).toBe(200);
    const { rows } = await t.db.admin.query('SELECT * FROM unmapped_identities WHERE external_id = $1', [
      stranger.aadObjectId,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenant_id: t.a.tenant.id,
      kind: 'entra',
      display_name: 'Unknown Stranger',
    });

    const known = sim.user();
    const person = await makePerson(t, adminA);
    await t.call(adminA, 'POST', `/api/v1/people/${person.id}/identities`, {
      kind: 'teams',
      externalId: known.id,
    });
    expect((await post({ ...sim.message(known, 'hi'), type: 'conversationUpdate' })).status).toBe(200);
    expect(await count('unmapped_identities', 'external_id IN ($1, $2)', [known.id, known.aadObjectId])).toBe(
      0,
    );
  });

  it('fetches the keys again for an unknown key id (a rotation), and accepts the new key', async () => {
    // A routine fetch (the keys are a day old) …
    t.clock.advance(24 * 3600_000 + 1000);
    await post({ ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' });
    const fetched = sim.jwksRequests();
    // … and a key rotated in right after it: the new key id is looked for at once.
    await sim.rotateKey();
    const res = await post({ ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' });
    expect(res.status).toBe(200);
    expect(sim.jwksRequests()).toBe(fetched + 1);
    // Known now: no further fetch.
    await post({ ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' });
    expect(sim.jwksRequests()).toBe(fetched + 1);
    // Made-up key ids cost at most one fetch per minute, however many come.
    for (let i = 0; i < 3; i++)
      expect(
        (
          await post(
            { ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' },
            { forge: 'unknown-key' },
          )
        ).status,
      ).toBe(403);
    expect(sim.jwksRequests()).toBe(fetched + 1);
    t.clock.advance(61_000);
    expect(
      (await post({ ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' }, { forge: 'unknown-key' }))
        .status,
    ).toBe(403);
    expect(sim.jwksRequests()).toBe(fetched + 2);
  });

  it('fetches the keys again after a day', async () => {
    const fetched = sim.jwksRequests();
    t.clock.advance(24 * 3600_000 + 1000);
    const res = await post({ ...sim.message(sim.user(), 'hi'), type: 'conversationUpdate' });
    t.clock.advance(-(24 * 3600_000 + 1000));
    expect(res.status).toBe(200);
    expect(sim.jwksRequests()).toBe(fetched + 1);
  });

  it('routes each bot’s activities to its own tenant', async () => {
    const c = await createTenant(t.db.pool, { name: 'Tenant E' });
    const bot = sim.addBot();
    expect(
      (await t.call(c.adminToken.token, 'PUT', '/api/v1/integrations/teams', integrationOf(bot))).status,
    ).toBe(200);
    const user = sim.user();
    expect(
      (await post({ ...sim.message(user, 'hi', { appId: bot.appId }), type: 'conversationUpdate' })).status,
    ).toBe(200);
    const { rows } = await t.db.admin.query(
      'SELECT tenant_id FROM teams_conversation_references WHERE user_id = $1',
      [user.id],
    );
    expect(rows).toEqual([{ tenant_id: c.tenant.id }]);
  });

  it('loses its integration and references with the tenant', async () => {
    const c = await createTenant(t.db.pool, { name: 'Tenant F' });
    const bot = sim.addBot();
    await t.call(c.adminToken.token, 'PUT', '/api/v1/integrations/teams', integrationOf(bot));
    await post({ ...sim.message(sim.user(), 'hi', { appId: bot.appId }), type: 'conversationUpdate' });
    expect(await count('teams_conversation_references', 'tenant_id = $1', [c.tenant.id])).toBe(1);
    await deleteTenant(t.db.pool, c.tenant.id);
    expect(await count('teams_conversation_references', 'tenant_id = $1', [c.tenant.id])).toBe(0);
    expect(await count('teams_integrations', 'tenant_id = $1', [c.tenant.id])).toBe(0);
  });
});
