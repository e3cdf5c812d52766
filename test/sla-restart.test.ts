// SLA thresholds across a real restart: the real `relaydesk start` process on a fresh data directory
// with its embedded PostgreSQL. A ticket is created under a policy whose thresholds come due a few
// seconds later, the server is stopped (SIGTERM) before any of them, stays down past all of them and
// is started again: each threshold, the breach and the escalation level then fire exactly once,
// recorded with their due time and the (later) time they fired.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelaydeskProcess } from './relaydesk-process.ts';

let rd: RelaydeskProcess;

beforeAll(async () => {
  rd = await RelaydeskProcess.create('sla-restart');
});

afterAll(async () => {
  await rd.cleanup();
});

const sleepUntil = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms - Date.now())));
const FIRINGS = ['threshold', 'breached', 'escalation'];

describe('SLA thresholds across a restart', { timeout: 60_000 }, () => {
  it('fires each threshold, breach and escalation level once after a restart, with its due and fired time', async () => {
    rd.start();
    await rd.waitReady(60_000);
    await expect.poll(() => rd.output.includes('rd_')).toBe(true);
    const token = /(rd_[A-Za-z0-9_-]{43,})/.exec(rd.output)![1]!;

    // Calendar time; 50 % after 4 s, the breach after 8 s, an escalation level at 150 % (12 s).
    const policy = await rd.api(token, 'POST', '/api/v1/sla-policies', {
      name: 'Seconds',
      position: 1,
      calendarId: null,
      targets: { normal: { firstResponse: 8 } },
      thresholds: [50, 100],
      escalations: [{ percent: 150, actions: [{ type: 'notify', role: 'team_lead' }] }],
    });
    expect(policy.status).toBe(201);
    const ticket = await rd.api(token, 'POST', '/api/v1/tickets', {
      subject: 'Down while due',
      requester: { email: 'down@example.com' },
    });
    expect(ticket.status).toBe(201);
    const created = Math.floor(Date.parse(ticket.body.createdAt) / 1000);

    const before = await rd.api(token, 'GET', `/api/v1/tickets/${ticket.body.id}/sla`);
    expect(before.body.metrics[0].thresholds.map((th: any) => [th.percent, th.firedAt])).toEqual([
      [50, null],
      [100, null],
      [150, null],
    ]);
    expect(await rd.stop('SIGTERM')).toBe(0);
    const stoppedAt = Date.now();
    expect(stoppedAt).toBeLessThan((created + 4) * 1000); // down before the first one came due

    // Down until all three are past due, then up again.
    await sleepUntil((created + 13) * 1000);
    const restartedAt = Date.now();
    rd.start();
    await rd.waitReady(30_000);
    const firings = async () =>
      (await rd.api(token, 'GET', `/api/v1/tickets/${ticket.body.id}/sla/events`)).body.items.filter(
        (e: any) => FIRINGS.includes(e.type),
      );
    await expect.poll(async () => (await firings()).length, { timeout: 10_000, interval: 200 }).toBe(3);
    // Another few scheduler passes add nothing.
    await new Promise((r) => setTimeout(r, 2_500));
    const events = (await firings()).sort((a: any, b: any) => a.data.percent - b.data.percent);
    expect(events.map((e: any) => [e.type, e.data.percent])).toEqual([
      ['threshold', 50],
      ['breached', 100],
      ['escalation', 150],
    ]);
    for (const [i, e] of events.entries()) {
      const due = Date.parse(e.data.dueAt);
      const fired = Date.parse(e.data.firedAt);
      expect(due).toBe((created + [4, 8, 12][i]!) * 1000);
      expect(Date.parse(e.at)).toBe(due); // the event is at the instant the threshold was reached
      expect(fired).toBeGreaterThan(due);
      expect(fired).toBeGreaterThanOrEqual(restartedAt); // fired by the restarted process
    }

    // The read side reports each firing once, with its due time before its fired time.
    const sla = (await rd.api(token, 'GET', `/api/v1/tickets/${ticket.body.id}/sla`)).body;
    const fr = sla.metrics.find((m: any) => m.metric === 'first_response');
    expect(fr.status).toBe('breached');
    expect(Date.parse(fr.breachedAt)).toBe((created + 8) * 1000);
    for (const th of fr.thresholds) expect(Date.parse(th.firedAt)).toBeGreaterThan(Date.parse(th.dueAt));
    expect(await rd.stop('SIGTERM')).toBe(0);
  });
});
