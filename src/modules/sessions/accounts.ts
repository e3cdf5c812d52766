// Getting a password: an admin (or the CLI) invites an agent, an agent who forgot theirs asks for a
// reset; either way a single-use link goes out by mail (the outbound module's notification mail,
// through the tenant's first mailbox), and following it sets the password and signs in.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead, withTenant } from '../../platform/db/tx.ts';
import { AppError, conflict, forbidden } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import { firstMailbox } from '../inbound/mailboxes.ts';
import { type NotificationMailDeps, queueNotificationMail } from '../outbound/notification-mail.ts';
import {
  acceptInvitation,
  assertEmail,
  createPerson,
  findPersonIdByEmail,
  getPerson,
  normalizeEmail,
  type PersonRole,
} from '../people/service.ts';
import {
  checkSecondFactor,
  clearFailures,
  lockCredentials,
  lockedError,
  recordFailure,
  setPasswordHash,
} from './credentials.ts';
import { findLink, issueLink, lastLinkAt, type LinkPurpose, useLink, voidLinks } from './links.ts';
import { hashPassword } from './passwords.ts';
import { endAllSessions } from './sessions.ts';
import { getAuthSettings } from './settings.ts';
import { invalidCredentials } from './sign-in.ts';

/** A reset is mailed at most this often per person, whoever keeps asking. */
const RESET_INTERVAL_MS = 60_000;

async function tenantName(tx: TenantTx): Promise<string> {
  const { rows } = await tx.query<{ name: string }>('SELECT name FROM tenants WHERE id = $1', [tx.tenantId]);
  return rows[0]?.name ?? '';
}

/** Mails a link through the tenant's first mailbox; false when there is none (or no queue). */
async function mailLink(
  tx: TenantTx,
  mail: NotificationMailDeps | undefined,
  input: { to: string; name: string; subject: string; text: string; about: string },
): Promise<boolean> {
  if (!mail || !(await firstMailbox(tx))) return false;
  await queueNotificationMail(tx, mail, {
    notificationId: uuidv7(),
    ticketId: null,
    to: { address: input.to, name: input.name },
    subject: input.subject,
    text: input.text,
    about: input.about,
  });
  return true;
}

export interface Invitation {
  expiresAt: Date;
  link: string;
  /** The link went out by mail (else only whoever invited has it). */
  mailed: boolean;
}

/**
 * Invites an agent who has no password yet (status invited, or active without one): a new link
 * (earlier ones stop working), mailed when a mailbox can send it.
 */
export async function inviteAgent(
  tx: TenantTx,
  input: {
    personId: string;
    /** Who invites (the admin's person), null for the CLI. */
    createdBy: string | null;
    baseUrl: string;
    now: Date;
    mail?: NotificationMailDeps | undefined;
  },
): Promise<Invitation> {
  const person = await getPerson(tx, input.personId);
  if (person.kind !== 'agent') throw conflict('only an agent can be invited; this person is a contact');
  if (person.status === 'suspended') throw conflict('the person is suspended');
  if (!person.email) throw conflict('the person has no email address to sign in with');
  const credentials = await lockCredentials(tx, person.id);
  if (person.status === 'active' && credentials?.passwordHash)
    throw conflict('the person already has a password (they can reset it: POST /password-reset)');
  if (!(await getAuthSettings(tx)).passwordSignIn)
    throw conflict('password sign-in is off for this tenant: agents sign in through single sign-on');
  const { link, expiresAt } = await issueLink(tx, {
    personId: person.id,
    purpose: 'invitation',
    createdBy: input.createdBy,
    baseUrl: input.baseUrl,
    now: input.now,
  });
  const tenant = await tenantName(tx);
  const mailed = await mailLink(tx, input.mail, {
    to: person.email,
    name: person.displayName,
    subject: `You are invited to the ${tenant} service desk`,
    text:
      `Hello ${person.displayName},\n\nyou are invited to the ${tenant} service desk on Relaydesk. ` +
      `Choose your password here (the link works once, until ${expiresAt.toISOString()}):\n\n${link}\n`,
    about: 'account.invitation',
  });
  return { expiresAt, link, mailed };
}

/**
 * Mails a reset link to each active agent with this address (in the tenant named, or in every
 * tenant), at most once a minute each. Says nothing of what it found: the caller answers 202 either way.
 */
export async function requestPasswordReset(
  deps: { pool: Pool; clock: Clock; logger: Logger; mail?: NotificationMailDeps | undefined },
  input: { email: string; tenant?: string | undefined; baseUrl: string | undefined },
): Promise<number> {
  const { rows } = await withSystemRead(deps.pool, (sys) =>
    sys.query<{ tenant_id: string; person_id: string }>(
      `SELECT e.tenant_id, e.person_id
         FROM person_emails e
         JOIN people p ON p.tenant_id = e.tenant_id AND p.id = e.person_id
         JOIN tenants t ON t.id = e.tenant_id
         LEFT JOIN auth_settings a ON a.tenant_id = e.tenant_id
        WHERE e.address_normalized = $1 AND p.kind = 'agent' AND p.status = 'active'
          AND coalesce(a.password_sign_in, true) AND ($2::text IS NULL OR lower(t.name) = lower($2))
        ORDER BY e.tenant_id LIMIT 10`,
      [normalizeEmail(input.email), input.tenant ?? null],
    ),
  );
  if (rows.length === 0) return 0;
  // The link must point at this install; a Host header is the caller's to choose, so without a
  // configured address no link is made (else anyone could have a reset link sent that leads to them).
  if (!input.baseUrl) {
    deps.logger.warn('password reset asked, but RELAYDESK_PUBLIC_URL is not set: no link was sent');
    return 0;
  }
  const now = deps.clock.now();
  let sent = 0;
  for (const row of rows) {
    await withTenant(deps.pool, row.tenant_id, async (tx) => {
      const last = await lastLinkAt(tx, row.person_id, 'password_reset');
      if (last && now.getTime() - last.getTime() < RESET_INTERVAL_MS) return;
      const issued = await issueReset(tx, {
        personId: row.person_id,
        baseUrl: input.baseUrl!,
        now,
        mail: deps.mail,
      });
      if (issued.mailed) sent++;
    });
  }
  return sent;
}

/** A reset link for the person (the API's reset form and the CLI), mailed when a mailbox can. */
export async function issueReset(
  tx: TenantTx,
  input: { personId: string; baseUrl: string; now: Date; mail?: NotificationMailDeps | undefined },
): Promise<Invitation> {
  const person = await getPerson(tx, input.personId);
  if (person.kind !== 'agent' || person.status !== 'active')
    throw conflict('only an active agent can reset a password');
  if (!person.email) throw conflict('the person has no email address to sign in with');
  const { link, expiresAt } = await issueLink(tx, {
    personId: person.id,
    purpose: 'password_reset',
    createdBy: null,
    baseUrl: input.baseUrl,
    now: input.now,
  });
  const tenant = await tenantName(tx);
  const mailed = await mailLink(tx, input.mail, {
    to: person.email,
    name: person.displayName,
    subject: `Reset your password for the ${tenant} service desk`,
    text:
      `Hello ${person.displayName},\n\nsomeone (you, we hope) asked to reset the password of ${person.email} ` +
      `for the ${tenant} service desk. Choose a new one here (the link works once, for an hour):\n\n${link}\n\n` +
      'If it was not you, ignore this mail: your password stays as it is.\n',
    about: 'account.password_reset',
  });
  return { expiresAt, link, mailed };
}

export interface CompleteLinkInput {
  token: string;
  purpose: LinkPurpose;
  password: string;
  /** Of an invitation: the name the person chose. */
  displayName?: string | undefined;
  /** An account with TOTP proves it here too, or the link would bypass the second factor. */
  totp?: string | undefined;
  recoveryCode?: string | undefined;
}

/**
 * Follows a link: sets the password (ending every other session and unused link of the person),
 * activates an invited person, and answers who to start a session for. The link is used up only
 * when all of that succeeds.
 */
export async function completeLink(
  deps: { pool: Pool; clock: Clock; secretKey: Buffer; accountFailures: number },
  input: CompleteLinkInput,
): Promise<{ tenantId: string; personId: string }> {
  const now = deps.clock.now();
  const found = await findLink(deps.pool, input.token, input.purpose, now);
  const hash = await hashPassword(input.password);
  const outcome = await withTenant(deps.pool, found.tenantId, async (tx) => {
    const person = await getPerson(tx, found.personId);
    const allowed = input.purpose === 'invitation' ? ['invited', 'active'] : ['active'];
    if (person.kind !== 'agent' || !allowed.includes(person.status))
      throw new AppError('invalid_token', 'The link is not valid any more');
    if (!(await getAuthSettings(tx)).passwordSignIn)
      throw forbidden('Password sign-in is off for this tenant: sign in through single sign-on');
    const credentials = await lockCredentials(tx, person.id);
    if (credentials?.lockedUntil && credentials.lockedUntil > now) return { locked: credentials.lockedUntil };
    if (credentials?.totpEnabled) {
      const result = await checkSecondFactor(tx, {
        secretKey: deps.secretKey,
        personId: person.id,
        credentials,
        totp: input.totp,
        recoveryCode: input.recoveryCode,
        now,
      });
      if (result === 'missing') return 'missing' as const;
      if (result === 'wrong') {
        await recordFailure(tx, person.id, now, deps.accountFailures);
        return 'wrong' as const;
      }
    }
    await useLink(tx, found.id, now);
    if (input.purpose === 'invitation')
      await acceptInvitation(tx, person.id, { displayName: input.displayName, actor: `person:${person.id}` });
    await setPasswordHash(tx, person.id, hash, now);
    await clearFailures(tx, person.id, now);
    await endAllSessions(tx, person.id);
    await voidLinks(tx, person.id);
    return 'ok' as const;
  });
  if (outcome === 'missing')
    throw new AppError(
      'second_factor_required',
      'This account has a second factor: send the code of your authenticator app (totp) or a recovery code',
    );
  if (outcome === 'wrong') throw invalidCredentials();
  if (outcome !== 'ok') throw lockedError(outcome.locked, now);
  return { tenantId: found.tenantId, personId: found.personId };
}

/**
 * Sets an agent's password directly (test set-ups and tools; people set theirs through a link).
 * The hash is made before the transaction is asked for, as scrypt takes a while.
 */
export async function setAgentPassword(
  pool: Pool,
  input: { tenantId: string; personId: string; password: string; now: Date },
): Promise<void> {
  const hash = await hashPassword(input.password);
  await withTenant(pool, input.tenantId, async (tx) => {
    const person = await getPerson(tx, input.personId);
    if (person.kind !== 'agent') throw conflict('only an agent has a password');
    await setPasswordHash(tx, person.id, hash, input.now);
  });
}

/**
 * Invites the agent with this address, created (status `invited`) when the tenant has nobody with
 * it: what `relaydesk user invite` does. A contact with the address is refused (conflict).
 */
export async function inviteByEmail(
  tx: TenantTx,
  input: {
    email: string;
    /** For a new agent (default: the address's local part). */
    displayName?: string | undefined;
    /** For a new agent (default agent). */
    role?: PersonRole | undefined;
    baseUrl: string;
    now: Date;
    mail?: NotificationMailDeps | undefined;
  },
): Promise<Invitation & { personId: string; created: boolean }> {
  const email = assertEmail(input.email);
  let personId = await findPersonIdByEmail(tx, email);
  const created = personId === undefined;
  if (personId === undefined) {
    const person = await createPerson(tx, {
      displayName: input.displayName?.trim() || email.split('@')[0] || email,
      kind: 'agent',
      status: 'invited',
      emails: [email],
      role: input.role ?? 'agent',
      actor: 'system:cli',
    });
    personId = person.id;
  } else if ((await getPerson(tx, personId)).kind !== 'agent') {
    throw conflict(`${email} belongs to a contact; make them an agent first (PATCH /people/{id} kind)`);
  }
  const invitation = await inviteAgent(tx, {
    personId,
    createdBy: null,
    baseUrl: input.baseUrl,
    now: input.now,
    mail: input.mail,
  });
  return { ...invitation, personId, created };
}

/** A reset link for the active agent with this address: what `relaydesk user reset-password` does. */
export async function resetByEmail(
  tx: TenantTx,
  input: { email: string; baseUrl: string; now: Date; mail?: NotificationMailDeps | undefined },
): Promise<Invitation & { personId: string }> {
  const email = assertEmail(input.email);
  const personId = await findPersonIdByEmail(tx, email);
  if (personId === undefined)
    throw new AppError('not_found', `nobody in this tenant has the address ${email}`);
  if (!(await getAuthSettings(tx)).passwordSignIn)
    throw conflict('password sign-in is off for this tenant: agents sign in through single sign-on');
  return {
    ...(await issueReset(tx, { personId, baseUrl: input.baseUrl, now: input.now, mail: input.mail })),
    personId,
  };
}
