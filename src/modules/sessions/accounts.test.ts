// Invitations and password resets against the real database: links by mail through the tenant's
// mailbox (or in the answer without one), single use, expiry, what following them does, and that
// a reset form tells nothing about who exists.
import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { SESSION_COOKIE } from '../../platform/http/auth.ts';
import { outboundSendJob } from '../outbound/job-refs.ts';

let t: TestApp;
const adminA = () => t.a.adminToken.token;
const adminB = () => t.b.adminToken.token;
const PASSWORD = 'a long enough password';

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue(outboundSendJob.name);
  // Tenant b can send mail; tenant a cannot.
  const mailbox = await t.call(adminB(), 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: 'desk@b.test',
  });
  expect(mailbox.status).toBe(201);
});

const tokenOf = (link: string) => new URL(link).searchParams.get('token')!;

/** The mail the ledger holds for this address and purpose, newest first. */
async function mailsTo(address: string, about: string): Promise<{ subject: string; text: string }[]> {
  const { rows } = await t.db.admin.query(
    `SELECT payload FROM deliveries WHERE destination = $1 AND payload->>'about' = $2 ORDER BY created_at DESC`,
    [address, about],
  );
  return rows.map((r) => r.payload);
}

const linkIn = (text: string) => /(https?:\/\/\S+token=[A-Za-z0-9_-]+)/.exec(text)![1]!;

describe('invitations', () => {
  it('answer the link when no mailbox can send it; accepting it sets the password, activates and signs in', async () => {
    const person = await makePerson(t, adminA(), {
      kind: 'agent',
      status: 'invited',
      displayName: 'New Hire',
    });
    const invited = await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`, undefined, {
      host: 'desk.internal:8080',
    });
    expect(invited.status, JSON.stringify(invited.body)).toBe(202);
    // No public URL configured: the link leads where the admin's request came.
    expect(invited.body.link).toMatch(
      /^http:\/\/desk\.internal:8080\/console\/accept\?token=[A-Za-z0-9_-]{43}$/,
    );
    expect(Date.parse(invited.body.expiresAt) - t.clock.now().getTime()).toBeGreaterThan(
      7 * 86_400_000 - 60_000,
    );

    const accepted = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(invited.body.link),
      password: PASSWORD,
      displayName: 'Nia Hire',
    });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
    expect(accepted.body.session.person).toMatchObject({ id: person.id, displayName: 'Nia Hire' });
    expect(String(accepted.headers['set-cookie'])).toContain(`${SESSION_COOKIE}=`);
    const now = await t.call(adminA(), 'GET', `/api/v1/people/${person.id}`);
    expect(now.body.status).toBe('active');
    // The password works from now on; the link does not, twice.
    const signIn = await t.call(undefined, 'POST', '/api/v1/session', {
      email: person.email,
      password: PASSWORD,
    });
    expect(signIn.status).toBe(200);
    const again = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(invited.body.link),
      password: 'yet another password',
    });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('invalid_token');
    // Invited again: they have a password now.
    const twice = await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`);
    expect(twice.status).toBe(409);
  });

  it('go out by mail through the tenant mailbox, to the public URL, and not in the answer', async () => {
    t.config.publicUrl = 'https://desk.example';
    try {
      const person = await makePerson(t, adminB(), { kind: 'agent', status: 'invited' });
      const invited = await t.call(adminB(), 'POST', `/api/v1/people/${person.id}/invitation`);
      expect(invited.status).toBe(202);
      expect(invited.body.link).toBeUndefined();
      const [mail] = await mailsTo(person.email, 'account.invitation');
      expect(mail!.subject).toContain('Tenant B');
      const link = linkIn(mail!.text);
      expect(link).toMatch(/^https:\/\/desk\.example\/console\/accept\?token=/);
      const accepted = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
        token: tokenOf(link),
        password: PASSWORD,
      });
      expect(accepted.status).toBe(200);
      expect(accepted.body.session.tenant.name).toBe('Tenant B');
    } finally {
      t.config.publicUrl = undefined;
    }
  });

  it('stop working when a newer one is sent, after 7 days, and when the person is suspended', async () => {
    const person = await makePerson(t, adminA(), { kind: 'agent', status: 'invited' });
    const first = await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`);
    const second = await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`);
    const old = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(first.body.link),
      password: PASSWORD,
    });
    expect(old.body.code).toBe('invalid_token');

    t.clock.freeze();
    try {
      t.clock.advance(7 * 86_400_000 + 1000);
      const late = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
        token: tokenOf(second.body.link),
        password: PASSWORD,
      });
      expect(late.body.code).toBe('invalid_token');
    } finally {
      t.clock.unfreeze();
    }

    const third = await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`);
    await t.call(adminA(), 'PATCH', `/api/v1/people/${person.id}`, { status: 'suspended' });
    await t.call(adminA(), 'PATCH', `/api/v1/people/${person.id}`, { status: 'invited' });
    const afterSuspension = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(third.body.link),
      password: PASSWORD,
    });
    expect(afterSuspension.body.code).toBe('invalid_token');
    expect((await t.call(adminA(), 'GET', `/api/v1/people/${person.id}`)).body.status).toBe('invited');
  });

  it('are for agents without a password, and only admins invite admins', async () => {
    const contact = await makePerson(t, adminA(), { kind: 'contact' });
    expect((await t.call(adminA(), 'POST', `/api/v1/people/${contact.id}/invitation`)).status).toBe(409);
    const s = await t.signIn({ role: 'agent' });
    const admin = await makePerson(t, adminA(), { kind: 'agent', status: 'invited', role: 'admin' });
    const refused = await s.call('POST', `/api/v1/people/${admin.id}/invitation`);
    expect(refused.status).toBe(403);
    const agent = await makePerson(t, adminA(), { kind: 'agent', status: 'invited' });
    expect((await s.call('POST', `/api/v1/people/${agent.id}/invitation`)).status).toBe(202);
    // An active agent without a password may be invited too (and stays active).
    const active = await makePerson(t, adminA(), { kind: 'agent' });
    const link = (await t.call(adminA(), 'POST', `/api/v1/people/${active.id}/invitation`)).body.link;
    const accepted = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(link),
      password: PASSWORD,
    });
    expect(accepted.status).toBe(200);
    // Tenant b cannot invite tenant a's people, nor learn they exist.
    const cross = await t.call(adminB(), 'POST', `/api/v1/people/${agent.id}/invitation`);
    expect(cross.status).toBe(404);
  });

  it('refuse a password of fewer than 12 or more than 256 characters, and keep the link', async () => {
    const person = await makePerson(t, adminA(), { kind: 'agent', status: 'invited' });
    const link = (await t.call(adminA(), 'POST', `/api/v1/people/${person.id}/invitation`)).body.link;
    for (const password of ['short', 'x'.repeat(257)]) {
      const res = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
        token: tokenOf(link),
        password,
      });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const bogus = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: 'nope',
      password: PASSWORD,
    });
    expect(bogus.body.code).toBe('invalid_token');
    const ok = await t.call(undefined, 'POST', '/api/v1/invitations/accept', {
      token: tokenOf(link),
      password: PASSWORD,
    });
    expect(ok.status).toBe(200);
  });
});

describe('password resets', () => {
  it('answer 202 with nothing to tell, known address or not, and mail only the known one', async () => {
    t.config.publicUrl = 'https://desk.example';
    try {
      const s = await t.signIn({ tenant: t.b });
      const unknown = await t.call(undefined, 'POST', '/api/v1/password-reset', {
        email: 'ghost@nowhere.test',
      });
      const known = await t.call(undefined, 'POST', '/api/v1/password-reset', { email: s.email });
      expect(unknown.status).toBe(202);
      expect(known.status).toBe(202);
      expect(known.body).toEqual(unknown.body);
      expect(await mailsTo('ghost@nowhere.test', 'account.password_reset')).toEqual([]);
      const mails = await mailsTo(s.email, 'account.password_reset');
      expect(mails).toHaveLength(1);
      // Asked again within the minute: no second mail.
      await t.call(undefined, 'POST', '/api/v1/password-reset', { email: s.email });
      expect(await mailsTo(s.email, 'account.password_reset')).toHaveLength(1);

      const link = linkIn(mails[0]!.text);
      expect(link).toMatch(/^https:\/\/desk\.example\/console\/reset\?token=/);
      const other = await t.call(undefined, 'POST', '/api/v1/session', {
        email: s.email,
        password: s.password,
      });
      const otherSecret = /rd_session=([^;]+)/.exec(String(other.headers['set-cookie']))![1];
      const done = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', {
        token: tokenOf(link),
        password: 'my brand new password',
      });
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      expect(done.body.session.person.id).toBe(s.personId);
      // Every earlier session ended; the old password is gone, the new one works; the link is used.
      expect((await s.call('GET', '/api/v1/session')).status).toBe(401);
      const otherNow = await t.call(undefined, 'GET', '/api/v1/session', undefined, {
        cookie: `${SESSION_COOKIE}=${otherSecret}`,
      });
      expect(otherNow.status).toBe(401);
      const old = await t.call(undefined, 'POST', '/api/v1/session', {
        email: s.email,
        password: s.password,
      });
      expect(old.body.code).toBe('invalid_credentials');
      const fresh = await t.call(undefined, 'POST', '/api/v1/session', {
        email: s.email,
        password: 'my brand new password',
      });
      expect(fresh.status).toBe(200);
      const reused = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', {
        token: tokenOf(link),
        password: 'and another new password',
      });
      expect(reused.body.code).toBe('invalid_token');
    } finally {
      t.config.publicUrl = undefined;
    }
  });

  it('make no link without RELAYDESK_PUBLIC_URL (a Host header could lead it anywhere)', async () => {
    const s = await t.signIn({ tenant: t.b });
    const res = await t.call(
      undefined,
      'POST',
      '/api/v1/password-reset',
      { email: s.email },
      { host: 'evil.test' },
    );
    expect(res.status).toBe(202);
    expect(await mailsTo(s.email, 'account.password_reset')).toEqual([]);
  });

  it('expire after an hour', async () => {
    t.config.publicUrl = 'https://desk.example';
    t.clock.freeze();
    try {
      const s = await t.signIn({ tenant: t.b });
      await t.call(undefined, 'POST', '/api/v1/password-reset', { email: s.email, tenant: 'Tenant B' });
      const link = linkIn((await mailsTo(s.email, 'account.password_reset'))[0]!.text);
      t.clock.advance(3_600_000);
      const late = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', {
        token: tokenOf(link),
        password: 'my brand new password',
      });
      expect(late.status).toBe(400);
      expect(late.body.code).toBe('invalid_token');
    } finally {
      t.clock.unfreeze();
      t.config.publicUrl = undefined;
    }
  });

  it('are not sent for the tenant not named', async () => {
    t.config.publicUrl = 'https://desk.example';
    try {
      const s = await t.signIn({ tenant: t.b });
      await t.call(undefined, 'POST', '/api/v1/password-reset', { email: s.email, tenant: 'Tenant A' });
      expect(await mailsTo(s.email, 'account.password_reset')).toEqual([]);
    } finally {
      t.config.publicUrl = undefined;
    }
  });
});
