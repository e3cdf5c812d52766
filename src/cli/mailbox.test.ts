// `relaydesk mailbox`: the real CLI process on a real database (DATABASE_URL), a Gmail mailbox
// subscribed against the Gmail simulator, and every kind of bad input ending in one line and exit 2.
// The CLI runs asynchronously: the simulator answers from this process's event loop.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../simulators/gmail.ts';
import { type TestDatabase, useTestDatabase } from '../../test/db.ts';
import { BIN, processEnv } from '../../test/relaydesk-process.ts';
import { claimMailbox } from '../modules/inbound/health.ts';
import { createTenant } from '../modules/tenants/service.ts';
import { withTenant } from '../platform/db/tx.ts';

const USER = 'support@gmail-cli.test';
const secretKey = randomBytes(32).toString('base64');
let db: TestDatabase;
let sim: GmailSimulator;
let dataDir: string;
let tenantA: string;

beforeAll(async () => {
  db = await useTestDatabase({ poolSize: 2 });
  sim = await startGmailSimulator();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-mailbox-cli-'));
  tenantA = (await createTenant(db.pool, { name: 'Acme' })).tenant.id;
});

afterAll(async () => {
  await sim?.close();
  await rm(dataDir, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const e: NodeJS.ProcessEnv = {
    ...processEnv(),
    DATABASE_URL: db.url,
    RELAYDESK_SECRET_KEY: secretKey,
    RELAYDESK_PROVIDER_ORIGINS: 'http://127.0.0.1:*',
  };
  delete e['RELAYDESK_PUBLIC_URL'];
  Object.assign(e, env);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'mailbox', ...args, '--data', dataDir],
      { env: e, encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

/** A failure the way the CLI promises it: one line on stderr, the exit code, no stack trace. */
function expectRefused(run: Run, status: number, says: string | RegExp) {
  expect(run.status, run.stdout + run.stderr).toBe(status);
  expect(run.stderr).toMatch(says);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

const gmailSettings = () =>
  JSON.stringify({
    gmail: {
      apiBaseUrl: sim.apiBaseUrl,
      tokenUrl: sim.tokenUrl,
      jwksUrl: sim.jwksUrl,
      topic: 'projects/p/topics/relaydesk',
    },
  });

let gmailId: string;

/** The `mailboxes.renew` events the CLI recorded in tenant Acme, oldest first. */
async function renewEvents(): Promise<{ target_id: string; outcome: string; error_code: string | null }[]> {
  const { rows } = await db.admin.query(
    `SELECT target_id, outcome, error_code FROM audit_events
      WHERE tenant_id = $1 AND actor_via = 'cli' AND action = 'mailboxes.renew' ORDER BY at, id`,
    [tenantA],
  );
  return rows;
}

describe('relaydesk mailbox', { timeout: 120_000 }, () => {
  it('creates a Gmail mailbox in the only tenant and watches it at once', async () => {
    const credentialsFile = path.join(dataDir, 'gmail-credentials.json');
    await writeFile(credentialsFile, JSON.stringify(sim.credentials));
    const res = await cli([
      'create',
      '--kind',
      'gmail',
      '--address',
      USER,
      '--display-name',
      'Support',
      '--settings',
      gmailSettings(),
      '--credentials-file',
      credentialsFile,
    ]);
    expect(res.status, res.stderr).toBe(0);
    const lines = Object.fromEntries(
      res.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t')),
    );
    gmailId = lines['mailbox'];
    expect(gmailId).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines['health']).toBe('healthy');
    expect(lines['reason']).toBeUndefined();
    expect(Date.parse(lines['expires'])).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    expect(sim.watch(USER)?.topicName).toBe('projects/p/topics/relaydesk');
    // In the audit trail as mailboxes.create, without a credential's value.
    const { rows } = await db.admin.query(
      `SELECT action, target_id, outcome, row_to_json(e)::text AS row FROM audit_events e
        WHERE tenant_id = $1 AND actor_via = 'cli'`,
      [tenantA],
    );
    expect(rows.map((r) => [r.action, r.target_id, r.outcome])).toEqual([
      ['mailboxes.create', gmailId, 'success'],
    ]);
    for (const secret of Object.values(sim.credentials)) expect(rows[0].row).not.toContain(String(secret));
  });

  it('lists the mailboxes with their health as a table, and as JSON', async () => {
    const table = await cli(['list']);
    expect(table.status, table.stderr).toBe(0);
    const [header, row] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+KIND\s+ADDRESS\s+HEALTH\s+EXPIRES IN\s+LAST MESSAGE\s+LAST ERROR$/);
    expect(row).toMatch(new RegExp(`^${gmailId}\\s+gmail\\s+${USER}\\s+healthy\\s+6d 23h\\s+-\\s+-$`));
    const listed = JSON.parse((await cli(['list', '--json', '--tenant', 'Acme'])).stdout);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: gmailId, hasCredentials: true, health: { status: 'healthy' } });
  });

  it('shows a mailbox by address or id, with its settings and health and never its credentials', async () => {
    const shown = await cli(['show', USER.toUpperCase()]);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^id:\s+[0-9a-f-]{36}$/m);
    expect(shown.stdout).toMatch(/^credentials:\s+stored \(encrypted; never shown\)$/m);
    expect(shown.stdout).toMatch(/^health:\s+healthy$/m);
    expect(shown.stdout).toMatch(/^last renewal:\s+\S+Z \(\d+s ago\): created$/m);
    expect(shown.stdout).toContain('"topic": "projects/p/topics/relaydesk"');
    const asJson = await cli(['show', gmailId, '--json']);
    const body = JSON.parse(asJson.stdout);
    expect(body).toMatchObject({ address: USER, displayName: 'Support', hasCredentials: true });
    expect(body.health).toMatchObject({ status: 'healthy', lastRenewalResult: 'created' });
    for (const text of [shown.stdout, asJson.stdout]) {
      expect(text).not.toContain(sim.credentials.clientSecret);
      expect(text).not.toContain(sim.credentials.refreshToken);
    }
  });

  it('tests a mailbox step by step and renews it now', async () => {
    const tested = await cli(['test', gmailId]);
    expect(tested.status, tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/^✓ token: a token was issued\n✓ read: the mailbox .+ can be read/);
    const renewed = await cli(['renew', USER]);
    expect(renewed.status, renewed.stderr).toBe(0);
    expect(renewed.stdout).toMatch(/^status\thealthy\nresult\trenewed\nexpires\t\S+Z\n$/);
    // The renewal is recorded; the test, which changes nothing, is not.
    expect(await renewEvents()).toEqual([{ target_id: gmailId, outcome: 'success', error_code: null }]);
  });

  it("subscribes, tests and renews a mailbox connected with the install's app registration", async () => {
    // As connecting by OAuth with RELAYDESK_GOOGLE_* leaves it: a refresh token and no client secret
    // (the secret is the install's, taken from the configuration when the client is built).
    const app = {
      RELAYDESK_GOOGLE_CLIENT_ID: sim.credentials.clientId,
      RELAYDESK_GOOGLE_CLIENT_SECRET: sim.credentials.clientSecret,
    };
    const address = 'app@gmail-cli.test';
    const res = await cli(
      [
        'create',
        '--kind',
        'gmail',
        '--address',
        address,
        '--settings',
        gmailSettings(),
        '--credentials',
        JSON.stringify({ refreshToken: sim.credentials.refreshToken }),
      ],
      app,
    );
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^mailbox\t\S+\nhealth\thealthy\nexpires\t\S+Z\n$/);
    expect(sim.watch(address)?.topicName).toBe('projects/p/topics/relaydesk');
    const tested = await cli(['test', address], app);
    expect(tested.status, tested.stdout + tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/^✓ token: a token was issued\n/);
    const renewed = await cli(['renew', address], app);
    expect(renewed.status, renewed.stdout + renewed.stderr).toBe(0);
    expect(renewed.stdout).toMatch(/^status\thealthy\nresult\trenewed\n/);
  });

  it('says when another renewal holds the mailbox', async () => {
    await withTenant(db.pool, tenantA, (tx) => claimMailbox(tx, gmailId, new Date(), 60));
    expectRefused(await cli(['renew', gmailId]), 1, /another renewal of this mailbox is running/);
    // Recorded as the API's 409 is.
    expect((await renewEvents()).at(-1)).toEqual({
      target_id: gmailId,
      outcome: 'failed',
      error_code: 'conflict',
    });
    // Given back, as a finished renewal gives it back.
    await withTenant(db.pool, tenantA, (tx) =>
      tx.query(
        'UPDATE mailbox_health SET claim_id = NULL, claimed_until = NULL WHERE tenant_id = $1 AND mailbox_id = $2',
        [tenantA, gmailId],
      ),
    );
  });

  it('exits 1 with the provider refusal when the credentials are revoked', async () => {
    sim.revokeRefreshTokens();
    const renewed = await cli(['renew', gmailId]);
    expect(renewed.status).toBe(1);
    expect(renewed.stdout).toMatch(/^status\tneeds_reauth\nresult\tfailed\nreason\t.+/);
    expect(renewed.stderr).toMatch(/relaydesk: the renewal failed\n$/);
    // A renewal that ran and failed is recorded as failed (the reason is in the mailbox's health).
    expect((await renewEvents()).at(-1)).toEqual({ target_id: gmailId, outcome: 'failed', error_code: null });
    const tested = await cli(['test', gmailId]);
    expect(tested.status).toBe(1);
    expect(tested.stdout).toMatch(/^✗ token: refused: /);
    const table = await cli(['list']);
    expect(table.stdout).toMatch(
      new RegExp(`${gmailId}\\s+gmail\\s+${USER}\\s+needs_reauth\\s+6d 23h\\s+-\\s+\\S`),
    );
  });

  it('creates a Graph mailbox that cannot be subscribed without RELAYDESK_PUBLIC_URL, and says why', async () => {
    const res = await cli([
      'create',
      '--kind',
      'graph',
      '--address',
      'graph@cli.test',
      '--credentials',
      JSON.stringify({ tenantId: 't', clientId: 'c', clientSecret: 's' }),
    ]);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^mailbox\t\S+\nhealth\terror\nreason\tRELAYDESK_PUBLIC_URL is not set/);
  });

  it('prints the authorization URL that connects a mailbox by OAuth, and says what is missing', async () => {
    expectRefused(await cli(['connect', 'graph@cli.test']), 2, /RELAYDESK_PUBLIC_URL/);
    const res = await cli(['connect', 'graph@cli.test', '--public-url', 'https://desk.example/'], {
      RELAYDESK_MICROSOFT_CLIENT_ID: 'app-id',
      RELAYDESK_MICROSOFT_CLIENT_SECRET: 'app-secret',
    });
    expect(res.status, res.stderr).toBe(0);
    const url = new URL(res.stdout.trim().split('\n')[1]!);
    expect(url.origin + url.pathname).toBe('https://login.microsoftonline.com/common/oauth2/v2.0/authorize');
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      client_id: 'app-id',
      response_type: 'code',
      redirect_uri: 'https://desk.example/oauth/callback',
      code_challenge_method: 'S256',
      login_hint: 'graph@cli.test',
    });
    expect(url.searchParams.get('state')).toMatch(/^[\w-]{40,}$/);
    expectRefused(await cli(['connect', 'nobody@cli.test']), 2, /not found|no mailbox/i);
  });

  it('refuses bad input with one line and exit 2', async () => {
    expectRefused(
      await cli(['create', '--kind', 'pop3', '--address', 'x@cli.test']),
      2,
      /argument 'pop3' is invalid. Allowed choices are imap, graph, gmail, mime/,
    );
    expectRefused(
      await cli(['create', '--kind', 'mime', '--address', 'x@cli.test', '--settings', '{nope']),
      2,
      /--settings is not valid JSON/,
    );
    expectRefused(
      await cli(['create', '--kind', 'mime', '--address', 'x@cli.test', '--settings', '[1]']),
      2,
      /--settings must be a JSON object/,
    );
    expectRefused(
      await cli(['create', '--kind', 'mime', '--address', 'x@cli.test', '--credentials-file', '/no/such']),
      2,
      /cannot read \/no\/such: ENOENT/,
    );
    expectRefused(
      await cli(['create', '--kind', 'imap', '--address', 'x@cli.test']),
      2,
      /settings\.imap\.host is required .*\(validation_failed\)/,
    );
    expectRefused(
      await cli(['create', '--kind', 'mime', '--address', 'not an address']),
      2,
      /validation_failed/,
    );
    expectRefused(
      await cli(['create', '--kind', 'gmail', '--address', 'x@cli.test', '--settings', gmailSettings()], {
        RELAYDESK_PROVIDER_ORIGINS: '',
      }),
      2,
      /settings\.gmail\.apiBaseUrl must be on https:\/\/gmail\.googleapis\.com/,
    );
    expectRefused(
      await cli(['create', '--kind', 'mime', '--address', USER]),
      1,
      /a mailbox for .* already exists \(conflict\)/,
    );
    expectRefused(await cli(['show', 'nobody@cli.test']), 2, /no mailbox nobody@cli\.test in tenant Acme/);
    expectRefused(await cli(['test', randomUUID()]), 2, /no mailbox [0-9a-f-]{36} in tenant Acme/);
    const mime = await cli(['create', '--kind', 'mime', '--address', 'upload@cli.test']);
    expect(mime.stdout).toMatch(/^mailbox\t\S+\nhealth\thealthy\n$/);
    expectRefused(
      await cli(['renew', 'upload@cli.test']),
      2,
      /is a mime mailbox: it has no subscription to renew/,
    );
  });

  it("needs --tenant once there are several, and never shows another tenant's mailbox", async () => {
    await createTenant(db.pool, { name: 'Other' });
    expectRefused(await cli(['list']), 2, /there are 2 tenants: pass --tenant/);
    expectRefused(await cli(['show', gmailId, '--tenant', 'Other']), 2, /no mailbox .* in tenant Other/);
    expectRefused(await cli(['renew', USER, '--tenant', 'Other']), 2, /no mailbox .* in tenant Other/);
    expectRefused(await cli(['list', '--tenant', 'Nobody']), 2, /tenant Nobody not found/);
    const other = await cli(['list', '--tenant', 'Other', '--json']);
    expect(JSON.parse(other.stdout)).toEqual([]);
    expect((await cli(['show', gmailId, '--tenant', tenantA])).status).toBe(0);
  });
});
