// `relaydesk start` on a port that is taken: a clear message, exit 2, nothing started or created
// (no PostgreSQL left behind, no tenant whose token nobody saw), and the next start on a free port
// is a normal first start that shows the token.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, exitOf, freePort, processEnv, RelaydeskProcess } from './relaydesk-process.ts';

let rd: RelaydeskProcess | undefined;
const blocker = net.createServer();

afterAll(async () => {
  blocker.close();
  await rd?.cleanup();
});

describe('relaydesk start on a port in use', { timeout: 120_000 }, () => {
  it('says which address is taken and how to choose another, exits 2 and starts nothing', async () => {
    rd = await RelaydeskProcess.create('port-test');
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    const child = spawn(process.execPath, [BIN, 'start', '--data', rd.dataDir, '--port', String(port)], {
      env: processEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toContain(`relaydesk: 127.0.0.1:${port} is already in use`);
    expect(stderr).toContain('--port N or PORT=N');
    // Checked before anything else: no PostgreSQL was started, no tenant or token made.
    expect(existsSync(path.join(rd.dataDir, 'pg'))).toBe(false);
    expect(existsSync(path.join(rd.dataDir, 'initial-admin-token'))).toBe(false);
  });

  it('then starts on a free port as a first start, showing the admin token', async () => {
    rd!.start();
    await rd!.waitForOutput(/rd_[A-Za-z0-9_-]{43}/, 90_000);
    expect(rd!.output).toContain(`Relaydesk is running at ${rd!.base}`);
    expect(rd!.output).toContain('Created tenant "default"');
    expect(await rd!.stop()).toBe(0);
  });
});
