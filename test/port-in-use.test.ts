// `relaydesk start` on a port that is taken: a clear message, exit 2, and no PostgreSQL left behind.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, BIN, exitOf, freePort, processEnv } from './relaydesk-process.ts';

let dataDir: string | undefined;
const blocker = net.createServer();

afterAll(async () => {
  blocker.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk start on a port in use', { timeout: 90_000 }, () => {
  it('says which address is taken and how to choose another, exits 2 and stops its PostgreSQL', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-port-test-'));
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    const child = spawn(process.execPath, [BIN, 'start', '--data', dataDir, '--port', String(port)], {
      env: processEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toContain(`relaydesk: 127.0.0.1:${port} is already in use`);
    expect(stderr).toContain('--port N or PORT=N');
    const pid = await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').then(
      (text) => Number(text.split('\n')[0]),
      () => 0,
    );
    if (pid) expect(alive(pid)).toBe(false);
  });
});
