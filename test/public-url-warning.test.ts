// A process of any role that starts with Graph or Gmail mailboxes and no RELAYDESK_PUBLIC_URL says
// so in its log: a worker renews their subscriptions and an api process connects them by OAuth with
// its own setting, not only the scheduler. Each role is started in this process on the file's
// database (DATABASE_URL), as a split deployment runs it.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelaydesk } from '../src/app.ts';
import { loadConfig, type Role } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type TestApp, useTestApp } from './app.ts';

let t: TestApp;
let dataDir: string;

beforeAll(async () => {
  t = await useTestApp();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-public-url-'));
  const created = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address: 'support@contoso.test',
  });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** Starts and stops one process of the role; answers the messages it logged at warn and above. */
async function startupWarnings(role: Role, env: Record<string, string> = {}): Promise<string[]> {
  const config = loadConfig(
    { DATABASE_URL: t.db.url, RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'), ...env },
    { dataDir, host: '127.0.0.1', port: 0, logLevel: 'warn', role },
  );
  const lines: string[] = [];
  const logger = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const running = await startRelaydesk({ config, logger });
  await running.stop();
  return lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
}

const WARNING = /^RELAYDESK_PUBLIC_URL is not set: Graph mailboxes cannot be subscribed/;

describe('the start-up warning without RELAYDESK_PUBLIC_URL', () => {
  it.each<Role>(['api', 'worker', 'scheduler'])('is given by a process of role %s', async (role) => {
    expect((await startupWarnings(role)).filter((m) => WARNING.test(m))).toHaveLength(1);
  });

  it('is not given with the setting', async () => {
    const warnings = await startupWarnings('worker', { RELAYDESK_PUBLIC_URL: 'https://desk.contoso.test' });
    expect(warnings.filter((m) => WARNING.test(m))).toEqual([]);
  });
});
