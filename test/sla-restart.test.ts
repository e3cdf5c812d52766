// SLA thresholds across a restart: Relaydesk started on a fresh data directory with its embedded
// PostgreSQL, on a clock the test moves. A ticket is created under a policy whose thresholds come
// due 4, 8 and 12 s later; Relaydesk is stopped before any of them, the clock moves past all of
// them while nothing runs, and Relaydesk starts again on the same data: each threshold, the breach
// and the escalation level then fire exactly once, recorded with their due time and the (later)
// time they fired. Nothing here waits on the wall clock but for the scheduler's next pass.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRelaydesk, startRelaydesk } from '../src/app.ts';
import { runSlaPass } from '../src/modules/sla/scheduler.ts';
import { ManualClock } from '../src/platform/clock.ts';
import { withSystemTx } from '../src/platform/db/tx.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logging.ts';

let dataDir: string;
let running: RunningRelaydesk | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-sla-restart-'));
});

afterAll(async () => {
  await running?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const FIRINGS = ['threshold', 'breached', 'escalation'];

describe('SLA thresholds across a restart', { timeout: 120_000 }, () => {
  it('fires each threshold, breach and escalation level once after a restart, with its due and fired time', async () => {
    const config = loadConfig({}, { dataDir, host: '127.0.0.1', port: 0, logLevel: 'warn' });
    const logger = createLogger('warn');
    const clock = new ManualClock(new Date());
    running = await startRelaydesk({ config, logger, clock });
    const token = running.bootstrap!.adminToken.token;
    const api = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${running!.url}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as any };
    };

    // Calendar time; 50 % after 4 s, the breach after 8 s, an escalation level at 150 % (12 s).
    const policy = await api('POST', '/api/v1/sla-policies', {
      name: 'Seconds',
      position: 1,
      calendarId: null,
      targets: { normal: { firstResponse: 8 } },
      thresholds: [50, 100],
      escalations: [{ percent: 150, actions: [{ type: 'notify', role: 'admin' }] }],
    });
    expect(policy.status).toBe(201);
    const ticket = await api('POST', '/api/v1/tickets', {
      subject: 'Down while due',
      requester: { email: 'down@example.com' },
    });
    expect(ticket.status).toBe(201);
    const created = Math.floor(Date.parse(ticket.body.createdAt) / 1000);
    clock.set(new Date(created * 1000 + 1000));
    const before = await api('GET', `/api/v1/tickets/${ticket.body.id}/sla`);
    expect(before.body.metrics[0].thresholds.map((th: any) => [th.percent, th.firedAt])).toEqual([
      [50, null],
      [100, null],
      [150, null],
    ]);
    await running.stop();
    running = undefined;

    // While nothing runs, all three come due; then Relaydesk starts again on the same data.
    const restartedAt = (created + 13) * 1000;
    clock.set(new Date(restartedAt));
    running = await startRelaydesk({ config, logger, clock });
    expect(running.bootstrap).toBeUndefined();
    const firings = async () =>
      (await api('GET', `/api/v1/tickets/${ticket.body.id}/sla/events`)).body.items.filter((e: any) =>
        FIRINGS.includes(e.type),
      );
    // The restarted scheduler's first pass (it runs once a second) fires them.
    await expect.poll(async () => (await firings()).length, { timeout: 10_000, interval: 100 }).toBe(3);
    // More passes add nothing: the ticket is woken and evaluated again, twice.
    for (let i = 0; i < 2; i++) {
      await withSystemTx(running.db.pool, (tx) =>
        tx.query('UPDATE ticket_wakeups SET next_wake_at = now() WHERE ticket_id = $1', [ticket.body.id]),
      );
      await runSlaPass({ pool: running.db.pool }, clock.now().getTime() / 1000);
    }
    const events = (await firings()).sort((a: any, b: any) => a.data.percent - b.data.percent);
    expect(events.map((e: any) => [e.type, e.data.percent])).toEqual([
      ['threshold', 50],
      ['breached', 100],
      ['escalation', 150],
    ]);
    for (const [i, e] of events.entries()) {
      const due = Date.parse(e.data.dueAt);
      expect(due).toBe((created + [4, 8, 12][i]!) * 1000);
      expect(Date.parse(e.at)).toBe(due); // the event is at the instant the threshold was reached
      expect(Date.parse(e.data.firedAt)).toBe(restartedAt); // fired by the restarted process, at its time
    }

    // The read side reports each firing once, with its due time before its fired time.
    const sla = (await api('GET', `/api/v1/tickets/${ticket.body.id}/sla`)).body;
    const fr = sla.metrics.find((m: any) => m.metric === 'first_response');
    expect(fr.status).toBe('breached');
    expect(Date.parse(fr.breachedAt)).toBe((created + 8) * 1000);
    for (const th of fr.thresholds) expect(Date.parse(th.firedAt)).toBeGreaterThan(Date.parse(th.dueAt));
  });
});
