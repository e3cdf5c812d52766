// The CLI's writes in the audit trail: the real `relaydesk` process on the test database mints and
// revokes tokens, merges people, creates and deletes tenants, creates and connects mailboxes,
// invites agents and resets passwords, retries deliveries and ingests mail, and each leaves the
// event the API's same write would, with `actorVia: 'cli'` and no actor person, failures included,
// its payload hash that of the input as the API redacts it (written out here by hand), the secrets
// nowhere in the trail; what names no tenant records nothing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../test/app.ts';
import { BIN, processEnv } from '../../test/relaydesk-process.ts';
import { outboundSendJob } from '../modules/outbound/job-refs.ts';
import { sendDelivery } from '../modules/outbound/send.ts';
import { Transports } from '../modules/outbound/transports.ts';
import { createLogger } from '../platform/logging.ts';

let t: TestApp;
let dataDir: string;
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...processEnv(),
    DATABASE_URL: t.db.url,
    RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args, '--data', dataDir],
      { env, encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

interface Row {
  actor_id: string | null;
  actor_via: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  error_code: string | null;
  request_id: string | null;
  payload_hash: string;
}

/** Every event the CLI recorded, oldest first, with the tenant it is in. */
async function cliEvents(): Promise<(Row & { tenant_id: string })[]> {
  const { rows } = await t.db.admin.query(
    `SELECT tenant_id, actor_id, actor_via, action, target_type, target_id, outcome, error_code, request_id,
            payload_hash
       FROM audit_events WHERE actor_via = 'cli' ORDER BY at, id`,
  );
  return rows;
}

/** The events recorded since `before` (a count of cliEvents). */
const since = async (before: number) => (await cliEvents()).slice(before);

/** The whole audit trail as text: no secret may be anywhere in it. */
async function wholeTrail(): Promise<string> {
  const { rows } = await t.db.admin.query('SELECT row_to_json(e)::text AS row FROM audit_events e');
  return JSON.stringify(rows);
}

/** What every CLI event holds the same way. */
const cliEvent = { actor_id: null, actor_via: 'cli', request_id: null };

beforeAll(async () => {
  t = await useTestApp();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-audit-cli-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk token', () => {
  it('create records tokens.create on the new token, hashing what was asked and never the token', async () => {
    const before = (await cliEvents()).length;
    const run = await cli(['token', 'create', '--tenant', 'Tenant A', '--role', 'viewer', '--label', 'dash']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const [id, role, token] = run.stdout.trim().split('\t');
    expect(role).toBe('viewer');
    expect(await since(before)).toEqual([
      {
        tenant_id: t.a.tenant.id,
        actor_id: null,
        actor_via: 'cli',
        action: 'tokens.create',
        target_type: 'tokens',
        target_id: id,
        outcome: 'success',
        error_code: null,
        request_id: null,
        // What POST /tokens {role, label} hashes.
        payload_hash: sha256('{"label":"dash","role":"viewer"}'),
      },
    ]);
    const { rows } = await t.db.admin.query('SELECT row_to_json(e)::text AS row FROM audit_events e');
    expect(JSON.stringify(rows)).not.toContain(token!.slice(3));
  });

  it('create for a person hashes the person asked for', async () => {
    const person = await makePerson(t, t.a.adminToken.token);
    const before = (await cliEvents()).length;
    const run = await cli([
      'token',
      'create',
      '--tenant',
      t.a.tenant.id,
      '--role',
      'agent',
      '--person',
      person.id,
    ]);
    expect(run.status).toBe(0);
    const [id] = run.stdout.trim().split('\t');
    expect(await since(before)).toMatchObject([
      {
        action: 'tokens.create',
        target_id: id,
        outcome: 'success',
        payload_hash: sha256(`{"label":"","personId":"${person.id}","role":"agent"}`),
      },
    ]);
  });

  it('revoke records tokens.delete on the token, as DELETE /tokens/:id does (no body: null)', async () => {
    const minted = await t.call(t.a.adminToken.token, 'POST', '/api/v1/tokens', { role: 'viewer' });
    expect(minted.status).toBe(201);
    const before = (await cliEvents()).length;
    const run = await cli(['token', 'revoke', minted.body.id]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await since(before)).toEqual([
      {
        tenant_id: t.a.tenant.id,
        actor_id: null,
        actor_via: 'cli',
        action: 'tokens.delete',
        target_type: 'tokens',
        target_id: minted.body.id,
        outcome: 'success',
        error_code: null,
        request_id: null,
        payload_hash: sha256('null'),
      },
    ]);
    expect((await t.call(minted.body.token, 'GET', '/api/v1/me')).status).toBe(401);
  });

  it('revoke by preview records the same, on the token the preview named', async () => {
    const minted = await t.call(t.b.adminToken.token, 'POST', '/api/v1/tokens', { role: 'viewer' });
    expect(minted.status).toBe(201);
    const before = (await cliEvents()).length;
    const run = await cli(['token', 'revoke', minted.body.preview]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await since(before)).toMatchObject([
      {
        tenant_id: t.b.tenant.id,
        actor_via: 'cli',
        action: 'tokens.delete',
        target_id: minted.body.id,
        outcome: 'success',
        payload_hash: sha256('null'),
      },
    ]);
  });

  it('records nothing where no tenant is named: an unknown tenant, an unknown token', async () => {
    const before = (await cliEvents()).length;
    const unknownTenant = await cli(['token', 'create', '--tenant', 'No Such Tenant', '--role', 'viewer']);
    expect(unknownTenant.status).toBe(2);
    const unknownToken = await cli(['token', 'revoke', '01890000-0000-7000-8000-000000000000']);
    expect(unknownToken.status).not.toBe(0);
    expect(await since(before)).toEqual([]);
  });

  it('create refuses a --person that is not one of the tenant: one clear line, exit 2, no database error', async () => {
    for (const [person, said] of [
      ['nope', `--person must be a person's id (UUID), got "nope"`],
      ['01890000-0000-7000-8000-000000000000', 'person not found (not_found)'],
    ] as const) {
      const run = await cli([
        'token',
        'create',
        '--tenant',
        'Tenant A',
        '--role',
        'viewer',
        '--person',
        person,
      ]);
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(said);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('relaydesk people merge', () => {
  it('records people.merge on the target, hashing the source as POST /people/:id/merge does', async () => {
    const target = await makePerson(t, t.b.adminToken.token);
    const source = await makePerson(t, t.b.adminToken.token);
    const before = (await cliEvents()).length;
    const run = await cli(['people', 'merge', '--tenant', 'Tenant B', source.id, target.id]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await since(before)).toEqual([
      {
        tenant_id: t.b.tenant.id,
        actor_id: null,
        actor_via: 'cli',
        action: 'people.merge',
        target_type: 'people',
        target_id: target.id,
        outcome: 'success',
        error_code: null,
        request_id: null,
        payload_hash: sha256(`{"sourceId":"${source.id}"}`),
      },
    ]);
    expect((await t.call(t.b.adminToken.token, 'GET', `/api/v1/people/${source.id}`)).status).toBe(404);
  });

  it('records a refused merge as failed with its code', async () => {
    const person = await makePerson(t, t.a.adminToken.token);
    const missing = '01890000-0000-7000-8000-00000000beef';
    const before = (await cliEvents()).length;
    const self = await cli(['people', 'merge', '--tenant', 'Tenant A', person.id, person.id]);
    expect(self.status).toBe(2);
    const gone = await cli(['people', 'merge', '--tenant', 'Tenant A', missing, person.id]);
    expect(gone.status).not.toBe(0);
    expect(
      (await since(before)).map((e) => [e.tenant_id, e.action, e.target_id, e.outcome, e.error_code]),
    ).toEqual([
      [t.a.tenant.id, 'people.merge', person.id, 'failed', 'merge_into_self'],
      [t.a.tenant.id, 'people.merge', person.id, 'failed', 'not_found'],
    ]);
  });
});

describe('relaydesk tenant', () => {
  it('create records tenants.create in the tenant made, hashing the name and never its admin token', async () => {
    const before = (await cliEvents()).length;
    const run = await cli(['tenant', 'create', 'Audited Tenant']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const [tenantLine, tokenLine] = run.stdout.trim().split('\n');
    const id = tenantLine!.split('\t')[1]!;
    const token = tokenLine!.split('\t')[1]!;
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: id,
        action: 'tenants.create',
        target_type: 'tenants',
        target_id: id,
        outcome: 'success',
        error_code: null,
        payload_hash: sha256('{"name":"Audited Tenant"}'),
      },
    ]);
    expect(await wholeTrail()).not.toContain(token.slice(3));
    // A name taken makes no tenant: there is no trail to record the refusal in.
    const again = await cli(['tenant', 'create', 'Audited Tenant']);
    expect(again.status).not.toBe(0);
    expect(await since(before + 1)).toEqual([]);
  });

  it("delete leaves no event: the tenant's trail goes with it, and no other tenant's trail holds it", async () => {
    const made = await cli(['tenant', 'create', 'Short Lived']);
    expect(made.status).toBe(0);
    const id = made.stdout.split('\t')[1]!;
    const before = (await cliEvents()).length;
    const run = await cli(['tenant', 'delete', id, '--yes']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const { rows } = await t.db.admin.query(
      'SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1',
      [id],
    );
    expect(rows[0].n).toBe(0);
    // Its tenants.create went with it; nothing new anywhere else.
    expect((await cliEvents()).length).toBe(before - 1);
    expect(await wholeTrail()).not.toContain(id);
  });
});

describe('relaydesk mailbox', () => {
  it('create records mailboxes.create on the new mailbox, every credential redacted as POST /mailboxes does', async () => {
    const password = 'imap-secret-Zq81x';
    const before = (await cliEvents()).length;
    const run = await cli([
      'mailbox',
      'create',
      '--tenant',
      'Tenant A',
      '--kind',
      'imap',
      '--address',
      'audited-imap@a.test',
      '--display-name',
      'Audited',
      '--settings',
      '{"imap":{"host":"imap.example.org"}}',
      '--credentials',
      JSON.stringify({ password }),
    ]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const id = run.stdout.split('\n')[0]!.split('\t')[1];
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: t.a.tenant.id,
        action: 'mailboxes.create',
        target_type: 'mailboxes',
        target_id: id,
        outcome: 'success',
        error_code: null,
        payload_hash: sha256(
          '{"address":"audited-imap@a.test","credentials":{"password":"[redacted]"},"displayName":"Audited",' +
            '"kind":"imap","settings":{"imap":{"host":"imap.example.org"}}}',
        ),
      },
    ]);
    expect(await wholeTrail()).not.toContain(password);
    expect((await since(before))[0]!.payload_hash).not.toBe(
      sha256(
        `{"address":"audited-imap@a.test","credentials":{"password":"${password}"},"displayName":"Audited",` +
          '"kind":"imap","settings":{"imap":{"host":"imap.example.org"}}}',
      ),
    );
  });

  it('a refused create is recorded as failed with its code, the credentials still redacted', async () => {
    const before = (await cliEvents()).length;
    const run = await cli([
      'mailbox',
      'create',
      '--tenant',
      'Tenant A',
      '--kind',
      'imap',
      '--address',
      'audited-imap@a.test',
      '--settings',
      '{"imap":{"host":"imap.example.org"}}',
      '--credentials-file',
      await credentialsFile({ password: 'another-secret-77' }),
    ]);
    expect(run.status).toBe(1);
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: t.a.tenant.id,
        action: 'mailboxes.create',
        target_type: 'mailboxes',
        target_id: null,
        outcome: 'failed',
        error_code: 'conflict',
        payload_hash: sha256(
          '{"address":"audited-imap@a.test","credentials":{"password":"[redacted]"},"kind":"imap",' +
            '"settings":{"imap":{"host":"imap.example.org"}}}',
        ),
      },
    ]);
    expect(await wholeTrail()).not.toContain('another-secret-77');
  });

  it('renew and connect record mailboxes.renew and mailboxes.connect, refusals as failed', async () => {
    const mime = await t.call(t.b.adminToken.token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'audited-mime@b.test',
    });
    expect(mime.status).toBe(201);
    const before = (await cliEvents()).length;
    const renew = await cli(['mailbox', 'renew', 'audited-mime@b.test', '--tenant', 'Tenant B']);
    expect(renew.status).toBe(2);
    const connect = await cli(['mailbox', 'connect', 'audited-mime@b.test', '--tenant', 'Tenant B']);
    expect(connect.status).toBe(2);
    // `mailbox test` changes nothing and is not recorded.
    expect((await cli(['mailbox', 'test', mime.body.id, '--tenant', 'Tenant B'])).status).toBe(0);
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: t.b.tenant.id,
        action: 'mailboxes.renew',
        target_type: 'mailboxes',
        target_id: mime.body.id,
        outcome: 'failed',
        // The CLI's own refusal (a MIME mailbox has no subscription): no catalogue code.
        error_code: null,
        payload_hash: sha256('null'),
      },
      {
        ...cliEvent,
        tenant_id: t.b.tenant.id,
        action: 'mailboxes.connect',
        target_type: 'mailboxes',
        target_id: mime.body.id,
        outcome: 'failed',
        error_code: 'validation_failed',
        payload_hash: sha256('null'),
      },
    ]);
  });
});

describe('relaydesk user', () => {
  it('invite records people.invitation.create on the agent made, never the link', async () => {
    const before = (await cliEvents()).length;
    const run = await cli([
      'user',
      'invite',
      '--tenant',
      'Tenant A',
      '--email',
      'audited.agent@example.com',
      '--name',
      'Audited Agent',
      '--role',
      'viewer',
    ]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const link = run.stdout.split('\n')[0]!;
    const person = await t.call(
      t.a.adminToken.token,
      'GET',
      '/api/v1/people/resolve?email=audited.agent@example.com',
    );
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: t.a.tenant.id,
        action: 'people.invitation.create',
        target_type: 'people',
        target_id: person.body.id,
        outcome: 'success',
        error_code: null,
        payload_hash: sha256(
          '{"displayName":"Audited Agent","email":"audited.agent@example.com","role":"viewer"}',
        ),
      },
    ]);
    expect(await wholeTrail()).not.toContain(new URL(link).searchParams.get('token'));
  });

  it('reset-password records password_reset.create on the agent, hashing {email}; an unknown one failed', async () => {
    const agent = await t.signIn();
    const before = (await cliEvents()).length;
    const run = await cli(['user', 'reset-password', '--tenant', 'Tenant A', '--email', agent.email]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const link = run.stdout.split('\n')[0]!;
    const unknown = await cli([
      'user',
      'reset-password',
      '--tenant',
      'Tenant A',
      '--email',
      'nobody@example.com',
    ]);
    expect(unknown.status).not.toBe(0);
    expect(await since(before)).toEqual([
      {
        ...cliEvent,
        tenant_id: t.a.tenant.id,
        action: 'password_reset.create',
        target_type: 'people',
        target_id: agent.personId,
        outcome: 'success',
        error_code: null,
        payload_hash: sha256(`{"email":"${agent.email}"}`),
      },
      {
        ...cliEvent,
        tenant_id: t.a.tenant.id,
        action: 'password_reset.create',
        target_type: 'people',
        target_id: null,
        outcome: 'failed',
        error_code: 'not_found',
        payload_hash: sha256('{"email":"nobody@example.com"}'),
      },
    ]);
    const trail = await wholeTrail();
    expect(trail).not.toContain(new URL(link).searchParams.get('token'));
    expect(trail).not.toContain(agent.password);
  });
});

describe('relaydesk deliveries retry', () => {
  it('records deliveries.retry on the delivery named, a refusal with its code', async () => {
    await t.queue.boss.createQueue(outboundSendJob.name);
    const admin = t.a.adminToken.token;
    // A mailbox with no SMTP server: its reply fails for good.
    const mailbox = await t.call(admin, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'audited-retry@a.test',
    });
    const ticket = await t.call(admin, 'POST', '/api/v1/tickets', {
      subject: 'CLI retry',
      requester: { email: 'someone@example.org' },
    });
    const reply = await t.call(admin, 'POST', `/api/v1/tickets/${ticket.body.id}/messages`, {
      visibility: 'public',
      text: 'hello',
      mailboxId: mailbox.body.id,
    });
    const failedId = reply.body.delivery.id;
    const transports = new Transports({ pool: t.db.pool, secretKey: t.secretKey, clock: t.clock });
    await sendDelivery(
      { pool: t.db.pool, clock: t.clock, logger: createLogger('silent'), transports },
      { tenantId: t.a.tenant.id, deliveryId: failedId },
      { send: (job, payload, options) => t.queue.send(job, payload, options) },
    );
    const before = (await cliEvents()).length;
    const run = await cli(['deliveries', 'retry', failedId, '--tenant', 'Tenant A']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const again = await cli(['deliveries', 'retry', failedId, '--tenant', 'Tenant A']);
    expect(again.status).toBe(2);
    const cross = await cli(['deliveries', 'retry', failedId, '--tenant', 'Tenant B']);
    expect(cross.status).toBe(2);
    const event = (tenant: string, outcome: string, errorCode: string | null) => ({
      ...cliEvent,
      tenant_id: tenant,
      action: 'deliveries.retry',
      target_type: 'deliveries',
      target_id: failedId,
      outcome,
      error_code: errorCode,
      payload_hash: sha256('null'),
    });
    expect(await since(before)).toEqual([
      event(t.a.tenant.id, 'success', null),
      event(t.a.tenant.id, 'failed', 'validation_failed'),
      event(t.b.tenant.id, 'failed', 'not_found'),
    ]);
  });
});

describe('relaydesk ingest', () => {
  it("records mailboxes.messages.create per file on the mailbox, hashing the file's type, size and SHA-256", async () => {
    const mailbox = await t.call(t.b.adminToken.token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'audited-ingest@b.test',
    });
    expect(mailbox.status).toBe(201);
    const raw = Buffer.from(
      'From: Sender <sender@example.org>\r\nTo: audited-ingest@b.test\r\nSubject: Audited ingest\r\n' +
        'Message-ID: <audited-ingest-1@example.org>\r\nDate: Mon, 1 Jun 2026 09:00:00 +0000\r\n\r\n' +
        'Hello, the secret word is plover-42.\r\n',
    );
    const file = path.join(dataDir, 'audited.eml');
    await writeFile(file, raw);
    const before = (await cliEvents()).length;
    const run = await cli(['ingest', file, '--tenant', 'Tenant B', '--mailbox', 'audited-ingest@b.test']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('\tcreated\t');
    const again = await cli(['ingest', file, '--tenant', 'Tenant B', '--mailbox', mailbox.body.id]);
    expect(again.stdout).toContain('\tduplicate\t');
    const fileSha = createHash('sha256').update(raw).digest('hex');
    const event = {
      ...cliEvent,
      tenant_id: t.b.tenant.id,
      action: 'mailboxes.messages.create',
      target_type: 'mailboxes',
      target_id: mailbox.body.id,
      outcome: 'success',
      error_code: null,
      // What POST /mailboxes/:id/messages hashes of the same bytes sent as message/rfc822.
      payload_hash: sha256(`{"bytes":${raw.length},"contentType":"message/rfc822","sha256":"${fileSha}"}`),
    };
    expect(await since(before)).toEqual([event, event]);
    expect(await wholeTrail()).not.toContain('plover');
  });
});

/** A credentials file in the data directory (kept out of the command line). */
async function credentialsFile(credentials: Record<string, unknown>): Promise<string> {
  const file = path.join(dataDir, `credentials-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(credentials));
  return file;
}
