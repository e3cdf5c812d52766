// `relaydesk user`: the real CLI process on the test database: an invitation for a new agent and a
// password reset, each a link that works in the API, mailed where the tenant has a mailbox, and bad
// input ending in one line and a non-zero exit.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../test/app.ts';
import { BIN, processEnv } from '../../test/relaydesk-process.ts';
import { linkBase } from './user.ts';

let t: TestApp;
let dataDir: string;

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...processEnv(),
    DATABASE_URL: t.db.url,
    RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
    RELAYDESK_PUBLIC_URL: 'https://desk.example',
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'user', ...args, '--data', dataDir],
      { env, encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

const tokenOf = (link: string) => new URL(link).searchParams.get('token')!;

beforeAll(async () => {
  t = await useTestApp();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-user-cli-'));
  const mailbox = await t.call(t.b.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: 'desk@b.test',
  });
  expect(mailbox.status).toBe(201);
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk user', () => {
  it('invites a new agent: prints a link that sets the password and signs in', async () => {
    const run = await cli([
      'invite',
      '--tenant',
      'Tenant A',
      '--email',
      'first.agent@example.com',
      '--name',
      'First Agent',
      '--role',
      'admin',
    ]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const [link, note] = run.stdout.trim().split('\n');
    expect(link).toMatch(/^https:\/\/desk\.example\/console\/accept\?token=[A-Za-z0-9_-]{43}$/);
    expect(note).toMatch(/^not mailed/);
    const person = await t.call(
      t.a.adminToken.token,
      'GET',
      '/api/v1/people/resolve?email=first.agent@example.com',
    );
    expect(person.body).toMatchObject({
      displayName: 'First Agent',
      kind: 'agent',
      status: 'invited',
      role: 'admin',
    });
    const accepted = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(link!),
      password: 'the first password',
    });
    expect(accepted.status).toBe(200);
    expect(accepted.body.session.person).toMatchObject({ id: person.body.id, role: 'admin' });
  });

  it('mails the invitation when the tenant has a mailbox', async () => {
    const run = await cli(['invite', '--tenant', 'Tenant B', '--email', 'mailed@example.com']);
    expect(run.status).toBe(0);
    expect(run.stdout.trim().split('\n')[1]).toMatch(
      /^mail queued to mailed@example.com \(`relaydesk deliveries list` shows whether it went\)/,
    );
    const { rows } = await t.db.admin.query(
      "SELECT payload->>'text' AS text FROM deliveries WHERE destination = 'mailed@example.com' AND payload->>'about' = 'account.invitation'",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].text).toContain(run.stdout.split('\n')[0]);
  });

  it('prints a reset link for an agent', async () => {
    const s = await t.signIn();
    const run = await cli(['reset-password', '--tenant', t.a.tenant.id, '--email', s.email]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const link = run.stdout.split('\n')[0]!;
    expect(link).toMatch(/^https:\/\/desk\.example\/console\/reset\?token=/);
    const done = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', {
      token: tokenOf(link),
      password: 'a password from the CLI',
    });
    expect(done.status).toBe(200);
    expect(done.body.session.person.id).toBe(s.personId);
  });

  it.each([
    [['invite', '--tenant', 'No Such Tenant', '--email', 'x@example.com'], 'tenant No Such Tenant not found'],
    [['invite', '--tenant', 'Tenant A', '--email', 'not an address'], 'is not a valid email address'],
    [['reset-password', '--tenant', 'Tenant A', '--email', 'nobody@example.com'], 'nobody in this tenant'],
  ])('refuses %j with one line and exit 2', async (args, message) => {
    const run = await cli(args);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['invite', '--tenant', 'Tenant A', '--email', 'x@example.com', '--role', 'owner'], "'owner' is invalid"],
    [['reset-password', '--tenant', 'Tenant A'], "required option '--email <address>' not specified"],
  ])('refuses %j as commander does (the error, then the help) with exit 2', async (args, message) => {
    const run = await cli(args);
    expect(run.status).toBe(2);
    expect(run.stderr.split('\n')[0]).toContain(message);
  });

  it('refuses to invite a contact', async () => {
    await t.call(t.a.adminToken.token, 'POST', '/api/v1/people', {
      displayName: 'Customer',
      kind: 'contact',
      email: 'customer@example.com',
    });
    const run = await cli(['invite', '--tenant', 'Tenant A', '--email', 'customer@example.com']);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('belongs to a contact');
  });

  it('makes links to the server itself without a public URL', () => {
    expect(linkBase({ publicUrl: undefined, host: '0.0.0.0', port: 3000 })).toBe('http://localhost:3000');
    expect(linkBase({ publicUrl: undefined, host: '::1', port: 3000 })).toBe('http://[::1]:3000');
    expect(linkBase({ publicUrl: 'https://desk.example', host: '0.0.0.0', port: 3000 })).toBe(
      'https://desk.example',
    );
  });
});
