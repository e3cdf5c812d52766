// `relaydesk demo` as a new user runs it: Relaydesk on an embedded PostgreSQL, the Graph, Gmail,
// SMTP, Bot Framework and Slack simulators and a webhook receiver beside it, sample mail through
// every ingress path, the outcome of each, an SLA breach told in Teams, Slack and a signed webhook, a
// Teams action changing the ticket, and Ctrl-C. With no --port it listens on a free port and says
// which; a second run on the same data directory reuses the demo tenant (and its agent, rule and
// policy).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, BIN, exitOf, processEnv } from './relaydesk-process.ts';

let dataDir: string;
let child: ChildProcess | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGINT');
    await exitOf(child);
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Runs the demo until it says it is ready; returns its output and how to stop it. */
async function runDemo(): Promise<{ output: string; base: string; stop(): Promise<number | null> }> {
  const demo = spawn(process.execPath, [BIN, 'demo', '--data', dataDir], {
    // PORT is the quick start's server: the demo must not take it.
    env: processEnv({ PORT: '1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = demo;
  let output = '';
  const exited = exitOf(demo);
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (output.includes('Ctrl-C stops the demo')) resolve();
    };
    demo.stdout.on('data', (d) => {
      output += d;
      check();
    });
    demo.stderr.on('data', (d) => (output += d));
    demo.once('close', (code) => reject(new Error(`demo exited with ${code}; output:\n${output}`)));
  });
  const base = /Relaydesk demo running at (http:\/\/127\.0\.0\.1:\d+) \(a free port/.exec(output)?.[1];
  expect(base, output).toBeDefined();
  return {
    output,
    base: base!,
    stop: async () => {
      demo.kill('SIGINT');
      return exited;
    },
  };
}

const outcome = (output: string, label: string) =>
  new RegExp(`${label}\\s+(\\S+)\\s+(.*)$`, 'm').exec(output)?.slice(1);
const tenantOf = (output: string) => /tenant "Relaydesk demo" \(([0-9a-f-]{36})\)/.exec(output)?.[1];

async function get(base: string, token: string, path: string): Promise<any> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, path).toBe(200);
  return res.json();
}

/**
 * The notification story in the output, and in the running demo's API: the urgent ticket `number`
 * breached, the breach went out to Teams, Slack and the webhook (sent, in the ledger), and the
 * Teams action left it pending, recorded in the audit trail as done by the agent through Teams.
 */
async function expectNotificationStory(output: string, base: string, token: string, number: string) {
  expect(output).toMatch(
    /Megan says "hi" to the bot in Teams\s+POST \/hooks\/teams 200: conversation reference kept/,
  );
  expect(outcome(output, `${number} "Payroll export fails"`)?.[0]).toBe('urgent,');
  expect(output).toMatch(new RegExp(`${number} breached\\s+sla\\.breached, first_response at `));
  expect(output).toMatch(
    new RegExp(
      `Teams simulator\\s+Adaptive Card "${number} breached its first_response target" in Megan's chat with the bot; buttons: Assign to me, Add note, Reply, Change status`,
    ),
  );
  expect(output).toMatch(
    new RegExp(
      `Slack simulator\\s+Block Kit message in #service-desk: "${number} breached its first_response target" \\(blocks: header, `,
    ),
  );
  expect(output).toMatch(new RegExp(`webhook receiver\\s+sla\\.breached for ${number}, signature verified`));
  for (const channel of ['teams', 'slack', 'webhook'])
    expect(output).toMatch(new RegExp(`delivery ledger: ${channel}\\s+sent `));
  expect(output).toMatch(/Teams invoke answered 200\s+refreshed card: "Status changed\."/);
  expect(output).toMatch(
    new RegExp(`${number} is now pending\\s+audit: teams\\.change_status success by Megan Bowen via teams`),
  );

  const urgent = await get(base, token, '/api/v1/tickets?priority=urgent&limit=200');
  const ticket = (urgent.items as { id: string; number: string }[]).find((x) => x.number === number);
  expect(ticket, number).toBeDefined();
  expect(await get(base, token, `/api/v1/tickets/${ticket!.id}`)).toMatchObject({ status: 'pending' });
  const sla = await get(base, token, `/api/v1/tickets/${ticket!.id}/sla`);
  expect(sla.metrics.find((m: { metric: string }) => m.metric === 'first_response')).toMatchObject({
    status: 'breached',
  });
  const deliveries = await get(base, token, `/api/v1/deliveries?ticketId=${ticket!.id}&limit=50`);
  const sent = (deliveries.items as { channel: string; purpose: string; status: string }[])
    .filter((d) => d.purpose === 'notification' && d.status === 'sent')
    .map((d) => d.channel);
  // The breach on all three, and the assignment (a default rule) in Teams before it.
  expect(sent.sort()).toEqual(['slack', 'teams', 'teams', 'webhook']);
  const audit = await get(
    base,
    token,
    `/api/v1/audit-events?action=teams.change_status&targetId=${ticket!.id}`,
  );
  expect(audit.items).toHaveLength(1);
  expect(audit.items[0]).toMatchObject({ actorVia: 'teams', outcome: 'success', targetType: 'ticket' });
}

describe('relaydesk demo', { timeout: 240_000 }, () => {
  let firstTenant: string | undefined;

  it('turns sample mail from each ingress path into tickets on a free port, prints each outcome, tells of an SLA breach in Teams, Slack and a webhook, lets a Teams action change the ticket, and stops on SIGINT', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-demo-test-'));
    const demo = await runDemo();
    const { output, base } = demo;
    expect(base).not.toBe('http://127.0.0.1:1');
    expect(outcome(output, 'a new request \\(Graph\\)')).toEqual([
      'created',
      'T-1 "VPN drops every few minutes"',
    ]);
    expect(outcome(output, 'the reply to it \\(Graph\\)')).toEqual([
      'appended',
      'T-1 "VPN drops every few minutes"',
    ]);
    expect(outcome(output, 'the same request delivered twice \\(Graph\\)')?.[0]).toBe('duplicate');
    expect(outcome(output, 'an out-of-office reply \\(Graph\\)')?.[0]).toBe('skipped');
    expect(outcome(output, 'a new request \\(Gmail push\\)')).toEqual([
      'created',
      'T-2 "New starter needs a laptop"',
    ]);
    expect(outcome(output, 'a new request \\(raw MIME API\\)')).toEqual([
      'created',
      'T-3 "Printer on floor 3 is offline"',
    ]);
    // An agent answers two of them by email: through Graph, and over SMTP.
    expect(output).toMatch(
      /reply on T-1 via Graph sendMail\s+sent\s+to dana@customer\.demo, Message-ID <rd\./,
    );
    expect(output).toMatch(/reply on T-3 via SMTP\s+sent\s+to ola@customer\.demo, Message-ID <rd\./);
    firstTenant = tenantOf(output);
    expect(firstTenant, output).toBeDefined();
    // The printed token works against the running demo.
    const token = /Admin token for the demo tenant: (rd_\S+)/.exec(output)![1]!;
    const res = await fetch(`${base}/api/v1/tickets`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    // The three from mail and the urgent one of the notification story.
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(4);
    await expectNotificationStory(output, base, token, 'T-4');
    const postmaster = Number(
      (await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0],
    );
    expect(alive(postmaster)).toBe(true);
    expect(await demo.stop()).toBe(0);
    // Its embedded PostgreSQL stopped with it.
    expect(alive(postmaster)).toBe(false);
  });

  it('reuses its tenant when run again on the same data directory', async () => {
    const demo = await runDemo();
    const { output, base } = demo;
    expect(tenantOf(output)).toBe(firstTenant);
    expect(output).toContain('from an earlier run on this data directory');
    // The same mail again, now as new tickets of the same tenant.
    expect(outcome(output, 'a new request \\(Graph\\)')).toEqual([
      'created',
      'T-5 "VPN drops every few minutes"',
    ]);
    expect(outcome(output, 'a new request \\(raw MIME API\\)')?.[0]).toBe('created');
    const token = /Admin token for the demo tenant: (rd_\S+)/.exec(output)![1]!;
    const res = await fetch(`${base}/api/v1/tickets`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(8);
    // The story again, with the agent, rule and policy of the first run and new simulators.
    await expectNotificationStory(output, base, token, 'T-8');
    expect(await demo.stop()).toBe(0);
  });
});
