// `relaydesk demo` as a new user runs it: Relaydesk on an embedded PostgreSQL, the Graph and Gmail
// simulators beside it, sample mail through every ingress path, the outcome of each, and Ctrl-C.
// With no --port it listens on a free port and says which; a second run on the same data directory
// reuses the demo tenant.
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

describe('relaydesk demo', { timeout: 240_000 }, () => {
  let firstTenant: string | undefined;

  it('turns sample mail from each ingress path into tickets on a free port, prints each outcome, and stops on SIGINT', async () => {
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
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(3);
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
      'T-4 "VPN drops every few minutes"',
    ]);
    expect(outcome(output, 'a new request \\(raw MIME API\\)')?.[0]).toBe('created');
    const token = /Admin token for the demo tenant: (rd_\S+)/.exec(output)![1]!;
    const res = await fetch(`${base}/api/v1/tickets`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(6);
    expect(await demo.stop()).toBe(0);
  });
});
