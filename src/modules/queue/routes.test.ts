import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';

let t: TestApp;

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue('test.mail__dlq');
  await t.queue.boss.createQueue('test.mail', { deadLetter: 'test.mail__dlq' });
  // Two dead-lettered jobs of tenant A, one of tenant B, one waiting job of tenant A.
  await t.queue.boss.send('test.mail__dlq', { tenantId: t.a.tenant.id, n: 1 });
  await t.queue.boss.send('test.mail__dlq', { tenantId: t.a.tenant.id, n: 2 });
  await t.queue.boss.send('test.mail__dlq', { tenantId: t.b.tenant.id, n: 3 });
  await t.queue.boss.send('test.mail', { tenantId: t.a.tenant.id, n: 4 });
});

describe('queue routes', () => {
  it("show a tenant only its own jobs' depth and dead letters", async () => {
    const statsA = await t.call(t.a.adminToken.token, 'GET', '/api/v1/queue/stats?queue=test.mail');
    expect(statsA.status).toBe(200);
    expect(statsA.body.items).toEqual([
      expect.objectContaining({ queue: 'test.mail', ready: 1, deadLettered: 2 }),
    ]);
    const statsB = await t.call(t.b.adminToken.token, 'GET', '/api/v1/queue/stats?queue=test.mail');
    expect(statsB.body.items).toEqual([expect.objectContaining({ ready: 0, deadLettered: 1 })]);
    const dlqB = await t.call(t.b.adminToken.token, 'GET', '/api/v1/queue/dlq');
    expect(dlqB.body.items.map((i: any) => i.payload.n)).toEqual([3]);
  });

  it("re-drives only the calling tenant's dead letters", async () => {
    const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/queue/dlq/redrive?queue=test.mail');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ redriven: 2 });
    const statsA = await t.call(t.a.adminToken.token, 'GET', '/api/v1/queue/stats?queue=test.mail');
    expect(statsA.body.items[0]).toMatchObject({ ready: 3, deadLettered: 0 });
    const dlqB = await t.call(t.b.adminToken.token, 'GET', '/api/v1/queue/dlq?queue=test.mail');
    expect(dlqB.body.items).toHaveLength(1);
  });

  it('is for admins only', async () => {
    const agent = (await t.call(t.a.adminToken.token, 'POST', '/api/v1/tokens', { role: 'agent' })).body
      .token;
    expect((await t.call(agent, 'GET', '/api/v1/queue/stats')).status).toBe(403);
    expect((await t.call(agent, 'POST', '/api/v1/queue/dlq/redrive')).status).toBe(403);
  });
});
