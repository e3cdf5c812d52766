// `relaydesk demo` as a new user runs it: Relaydesk on an embedded PostgreSQL, the Graph and Gmail
// simulators beside it, sample mail through every ingress path, the outcome of each, and Ctrl-C.
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, BIN, exitOf, freePort, processEnv } from './relaydesk-process.ts';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

let dataDir: string | undefined;

afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk demo', { timeout: 120_000 }, () => {
  it('turns sample mail from each ingress path into tickets, prints each outcome, and stops on SIGINT', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-demo-test-'));
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'demo', '--data', dataDir, '--port', String(port)], {
      env: processEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = exitOf(child);
    await expect
      .poll(() => output.includes('Ctrl-C stops the demo') || child.exitCode !== null, { timeout: 100_000 })
      .toBe(true);
    expect(child.exitCode, output).toBeNull();
    const outcome = (label: string) => new RegExp(`${label}\\s+(\\S+)\\s+(.*)$`, 'm').exec(output)?.slice(1);
    expect(outcome('a new request \\(Graph\\)')).toEqual(['created', 'T-1 "VPN drops every few minutes"']);
    expect(outcome('the reply to it \\(Graph\\)')).toEqual(['appended', 'T-1 "VPN drops every few minutes"']);
    expect(outcome('the same request delivered twice \\(Graph\\)')?.[0]).toBe('duplicate');
    expect(outcome('an out-of-office reply \\(Graph\\)')?.[0]).toBe('skipped');
    expect(outcome('a new request \\(Gmail push\\)')).toEqual([
      'created',
      'T-2 "New starter needs a laptop"',
    ]);
    expect(outcome('a new request \\(raw MIME API\\)')).toEqual([
      'created',
      'T-3 "Printer on floor 3 is offline"',
    ]);
    // The printed token works against the running demo.
    const token = /Admin token for the demo tenant \(shown once\): (rd_\S+)/.exec(output)![1]!;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/tickets`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(3);
    const postmaster = Number(
      (await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0],
    );
    expect(alive(postmaster)).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    // Its embedded PostgreSQL stopped with it.
    expect(alive(postmaster)).toBe(false);
  });
});
