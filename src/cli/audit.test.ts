// The CLI's writes in the audit trail: the real `relaydesk` process on the test database mints and
// revokes tokens and merges people, and each leaves the event the API's same write would, with
// `actorVia: 'cli'` and no actor person, failures included; what names no tenant records nothing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../test/app.ts';
import { BIN, processEnv } from '../../test/relaydesk-process.ts';

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
