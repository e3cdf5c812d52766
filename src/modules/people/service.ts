// People: agents and contacts of a tenant, with their profile, email addresses (one primary) and
// external identities. Every change writes its identity event in the same transaction (events.ts).
import type { TenantTx } from '../../platform/db/tx.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { type Actor, recordEvent } from './events.ts';

export const PERSON_KINDS = ['agent', 'contact'] as const;
export type PersonKind = (typeof PERSON_KINDS)[number];
export const PERSON_STATUSES = ['invited', 'active', 'suspended'] as const;
export type PersonStatus = (typeof PERSON_STATUSES)[number];
export const CHANNELS = ['email', 'teams', 'slack', 'webhook'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Largest accepted `metadata`, as serialised JSON. */
export const METADATA_LIMIT_BYTES = 16 * 1024;

export const PERSON_ROLES = ['admin', 'agent', 'viewer'] as const;
export type PersonRole = (typeof PERSON_ROLES)[number];
/** Channels a person can be reached on (webhooks reach systems). */
export const PERSON_CHANNELS = ['teams', 'slack', 'email'] as const;

export interface NotificationSettings {
  /** Channels to try, in order, after the preferred one. */
  fallback?: (typeof PERSON_CHANNELS)[number][];
  /** A daily window in the person's time zone ("22:00" to "07:00") that holds non-urgent notifications. */
  quietHours?: { start: string; end: string };
}

export interface Person {
  id: string;
  displayName: string;
  kind: PersonKind;
  status: PersonStatus;
  timeZone: string | null;
  preferredChannel: Channel | null;
  metadata: Record<string, unknown>;
  /** Of an agent: what they may do acting as themselves (admin, agent, viewer); null for a contact. */
  role: PersonRole | null;
  /** How notifications reach them beside `preferredChannel`: a fallback order and quiet hours. */
  notifications: NotificationSettings;
  /** The primary address, or null when the person has none. */
  email: string | null;
  emails: { address: string; primary: boolean }[];
  identities: { kind: string; externalId: string }[];
  createdAt: string;
  updatedAt: string;
}

// Deliberately tolerant (real mail has quoted local parts and dotless intranet domains); the
// address is an identifier to match, not something we validate deliverability of.
const EMAIL_RE = /^("[^"\r\n]+"|[^\s@<>(),;:"[\]\\]+)@[^\s@<>(),;:"[\]\\]+$/;

/** Matching form of an address: trimmed and lower-cased (a +tag stays; it is significant). */
export const normalizeEmail = (address: string): string => address.trim().toLowerCase();

export function assertEmail(address: string, path = '/email'): string {
  const trimmed = address.trim();
  if (trimmed.length > 254 || !EMAIL_RE.test(trimmed)) {
    throw validation(`"${trimmed.slice(0, 100)}" is not a valid email address`, [
      { path, message: 'must be an email address' },
    ]);
  }
  return trimmed;
}

/** The canonical IANA name of `zone`, or a validation error. */
export function assertTimeZone(zone: string, path = '/timeZone'): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone.trim() }).resolvedOptions().timeZone;
  } catch {
    throw validation(`"${zone.slice(0, 64)}" is not an IANA time zone`, [
      { path, message: 'must be an IANA time zone such as Europe/Berlin' },
    ]);
  }
}

function assertMetadata(metadata: unknown): Record<string, unknown> {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw validation('metadata must be a JSON object', [{ path: '/metadata', message: 'must be an object' }]);
  }
  const size = Buffer.byteLength(JSON.stringify(metadata));
  if (size > METADATA_LIMIT_BYTES) {
    throw validation(`metadata is ${size} bytes; the limit is ${METADATA_LIMIT_BYTES}`, [
      { path: '/metadata', message: `must be at most ${METADATA_LIMIT_BYTES} bytes as JSON` },
    ]);
  }
  return metadata as Record<string, unknown>;
}

function assertDisplayName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '') {
    throw validation('displayName must not be empty', [
      { path: '/displayName', message: 'must not be empty' },
    ]);
  }
  return trimmed;
}

interface PersonRow {
  id: string;
  display_name: string;
  kind: PersonKind;
  status: PersonStatus;
  time_zone: string | null;
  preferred_channel: Channel | null;
  metadata: Record<string, unknown>;
  role: PersonRole | null;
  notification_settings: NotificationSettings;
  created_at: string;
  updated_at: string;
  emails: { address: string; primary: boolean }[] | null;
  identities: { kind: string; externalId: string }[] | null;
}

export const SELECT_PERSON = `
  SELECT p.id, p.display_name, p.kind, p.status, p.time_zone, p.preferred_channel, p.metadata,
         p.role, p.notification_settings, p.created_at, p.updated_at,
         (SELECT json_agg(json_build_object('address', e.address, 'primary', e.is_primary)
                          ORDER BY e.is_primary DESC, e.created_at, e.address_normalized)
            FROM person_emails e WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id) AS emails,
         (SELECT json_agg(json_build_object('kind', i.kind, 'externalId', i.external_id)
                          ORDER BY i.kind, i.external_id)
            FROM person_identities i WHERE i.tenant_id = p.tenant_id AND i.person_id = p.id) AS identities
    FROM people p`;

export function toPerson(row: PersonRow): Person {
  const emails = row.emails ?? [];
  return {
    id: row.id,
    displayName: row.display_name,
    kind: row.kind,
    status: row.status,
    timeZone: row.time_zone,
    preferredChannel: row.preferred_channel,
    metadata: row.metadata,
    role: row.role,
    notifications: row.notification_settings,
    email: emails.find((e) => e.primary)?.address ?? null,
    emails,
    identities: row.identities ?? [],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function findPerson(tx: TenantTx, id: string): Promise<Person | undefined> {
  const { rows } = await tx.query<PersonRow>(`${SELECT_PERSON} WHERE p.tenant_id = $1 AND p.id = $2`, [
    tx.tenantId,
    id,
  ]);
  return rows[0] ? toPerson(rows[0]) : undefined;
}

export async function getPerson(tx: TenantTx, id: string): Promise<Person> {
  const person = await findPerson(tx, id);
  if (!person) throw notFound('person');
  return person;
}

export async function findPersonIdByEmail(tx: TenantTx, address: string): Promise<string | undefined> {
  const { rows } = await tx.query<{ person_id: string }>(
    'SELECT person_id FROM person_emails WHERE tenant_id = $1 AND address_normalized = $2',
    [tx.tenantId, normalizeEmail(address)],
  );
  return rows[0]?.person_id;
}

/** Adds addresses to a person (the first becomes primary when `primaryFirst`), one event each. */
export async function insertEmails(
  tx: TenantTx,
  personId: string,
  emails: string[],
  actor: Actor,
  primaryFirst: boolean,
): Promise<void> {
  for (const [i, address] of emails.entries()) {
    const { rowCount } = await tx.query(
      `INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, address_normalized) DO NOTHING`,
      [tx.tenantId, normalizeEmail(address), address, personId, primaryFirst && i === 0],
    );
    if (rowCount === 0) {
      throw conflict(`the email address ${address} belongs to another person`, {
        field: 'email',
        value: address,
      });
    }
    await recordEvent(tx, {
      personId,
      type: 'email_added',
      actor,
      after: { address, primary: primaryFirst && i === 0 },
    });
  }
}

function checkEmails(emails: string[]): string[] {
  const checked = emails.map((e, i) => assertEmail(e, `/emails/${i}`));
  const normalized = checked.map(normalizeEmail);
  if (new Set(normalized).size !== normalized.length)
    throw validation('the same email address is listed twice');
  return checked;
}

export interface CreatePersonInput {
  displayName: string;
  kind: PersonKind;
  status?: PersonStatus;
  /** Addresses in order; the first becomes primary. */
  emails?: string[];
  timeZone?: string | null;
  preferredChannel?: Channel | null;
  metadata?: Record<string, unknown>;
  /** Of an agent: what they may do acting as themselves (default `agent`). */
  role?: PersonRole;
  notifications?: NotificationSettings;
  actor: Actor;
}

export async function createPerson(tx: TenantTx, input: CreatePersonInput): Promise<Person> {
  const displayName = assertDisplayName(input.displayName);
  const emails = checkEmails(input.emails ?? []);
  const timeZone = input.timeZone ? assertTimeZone(input.timeZone) : null;
  const metadata = assertMetadata(input.metadata ?? {});
  if (input.role !== undefined && input.kind !== 'agent')
    throw validation('only an agent has a role', [{ path: '/role', message: 'not an agent' }]);
  const id = uuidv7();
  await tx.query(
    `INSERT INTO people (tenant_id, id, display_name, kind, status, time_zone, preferred_channel, metadata, role,
                         notification_settings)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $4 = 'agent' THEN coalesce($9, 'agent') END, $10)`,
    [
      tx.tenantId,
      id,
      displayName,
      input.kind,
      input.status ?? 'active',
      timeZone,
      input.preferredChannel ?? null,
      JSON.stringify(metadata),
      input.role ?? null,
      JSON.stringify(checkNotificationSettings(input.notifications ?? {})),
    ],
  );
  await recordEvent(tx, {
    personId: id,
    type: 'profile_changed',
    actor: input.actor,
    before: null,
    after: {
      displayName,
      kind: input.kind,
      status: input.status ?? 'active',
      timeZone,
      preferredChannel: input.preferredChannel ?? null,
      metadata,
    },
  });
  await insertEmails(tx, id, emails, input.actor, true);
  return getPerson(tx, id);
}

/**
 * Finds the person with this address or creates a contact for it. Safe under concurrency: two
 * requests creating the same new address end with one person (the loser re-reads the winner's).
 */
export async function findOrCreateContact(
  tx: TenantTx,
  address: string,
  options: { name?: string | undefined; actor: Actor },
): Promise<string> {
  const email = assertEmail(address, '/requester/email');
  const existing = await findPersonIdByEmail(tx, email);
  if (existing) return existing;
  await tx.query('SAVEPOINT find_or_create_contact');
  try {
    const person = await createPerson(tx, {
      displayName: options.name?.trim() || email.split('@')[0] || email,
      kind: 'contact',
      emails: [email],
      actor: options.actor,
    });
    await tx.query('RELEASE SAVEPOINT find_or_create_contact');
    return person.id;
  } catch (err) {
    if ((err as { code?: string }).code !== 'conflict') throw err;
    await tx.query('ROLLBACK TO SAVEPOINT find_or_create_contact');
    const winner = await findPersonIdByEmail(tx, email);
    if (!winner) throw err;
    return winner;
  }
}

export interface ListPeopleInput {
  kind?: PersonKind;
  status?: PersonStatus;
  /** Case-insensitive substring of the name or of an address. */
  q?: string;
  limit?: number;
  cursor?: string;
}

export async function listPeople(tx: TenantTx, input: ListPeopleInput): Promise<Page<Person>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['p.tenant_id = $1'];
  if (input.kind) {
    values.push(input.kind);
    where.push(`p.kind = $${values.length}`);
  }
  if (input.status) {
    values.push(input.status);
    where.push(`p.status = $${values.length}`);
  }
  if (input.q) {
    values.push(`%${escapeLike(input.q)}%`);
    const n = values.length;
    where.push(
      `(p.display_name ILIKE $${n} OR EXISTS (SELECT 1 FROM person_emails e WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id AND e.address_normalized LIKE lower($${n})))`,
    );
  }
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(p.created_at, p.id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<PersonRow>(
    `${SELECT_PERSON} WHERE ${where.join(' AND ')} ORDER BY p.created_at DESC, p.id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toPerson);
}

export interface UpdatePersonInput {
  displayName?: string;
  kind?: PersonKind;
  status?: PersonStatus;
  /** Replaces the set of addresses; the first becomes primary. */
  emails?: string[];
  /** Makes this address primary (adding it if new). */
  email?: string;
  timeZone?: string | null;
  preferredChannel?: Channel | null;
  metadata?: Record<string, unknown>;
  /** Of an agent (a contact has none). */
  role?: PersonRole;
  notifications?: NotificationSettings;
  actor: Actor;
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

function checkNotificationSettings(settings: NotificationSettings): NotificationSettings {
  const q = settings.quietHours;
  if (q && (!HHMM.test(q.start) || !HHMM.test(q.end)))
    throw validation('quiet hours are "HH:MM" times (24-hour)', [
      { path: '/notifications/quietHours', message: 'start and end must be HH:MM' },
    ]);
  return {
    ...(settings.fallback ? { fallback: [...new Set(settings.fallback)] } : {}),
    ...(q ? { quietHours: { start: q.start, end: q.end } } : {}),
  };
}

export async function updatePerson(tx: TenantTx, id: string, input: UpdatePersonInput): Promise<Person> {
  const { rows } = await tx.query<PersonRow>(
    `SELECT id, display_name, kind, status, time_zone, preferred_channel, metadata, role, notification_settings,
            created_at, updated_at, NULL::json AS emails, NULL::json AS identities
       FROM people WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('person');
  const before = toPerson(rows[0]);
  const next = {
    displayName: input.displayName === undefined ? before.displayName : assertDisplayName(input.displayName),
    kind: input.kind ?? before.kind,
    timeZone:
      input.timeZone === undefined
        ? before.timeZone
        : input.timeZone === null
          ? null
          : assertTimeZone(input.timeZone),
    preferredChannel: input.preferredChannel === undefined ? before.preferredChannel : input.preferredChannel,
    metadata: input.metadata === undefined ? before.metadata : assertMetadata(input.metadata),
    notifications:
      input.notifications === undefined
        ? before.notifications
        : checkNotificationSettings(input.notifications),
    role: input.role === undefined ? before.role : input.role,
  };
  if (input.role !== undefined && next.kind !== 'agent')
    throw validation('only an agent has a role', [{ path: '/role', message: 'not an agent' }]);
  const status = input.status ?? before.status;
  const emails = input.emails === undefined ? undefined : checkEmails(input.emails);
  const primary = input.email === undefined ? undefined : assertEmail(input.email);

  await tx.query(
    `UPDATE people SET display_name = $3, kind = $4, status = $5, time_zone = $6, preferred_channel = $7,
            metadata = $8, role = CASE WHEN $4 = 'agent' THEN coalesce($9, role, 'agent') END,
            notification_settings = $10, updated_at = now()
      WHERE tenant_id = $1 AND id = $2`,
    [
      tx.tenantId,
      id,
      next.displayName,
      next.kind,
      status,
      next.timeZone,
      next.preferredChannel,
      JSON.stringify(next.metadata),
      next.role,
      JSON.stringify(next.notifications),
    ],
  );
  const changedBefore: Record<string, unknown> = {};
  const changedAfter: Record<string, unknown> = {};
  for (const key of Object.keys(next) as (keyof typeof next)[]) {
    if (JSON.stringify(before[key]) !== JSON.stringify(next[key])) {
      changedBefore[key] = before[key];
      changedAfter[key] = next[key];
    }
  }
  if (Object.keys(changedAfter).length > 0) {
    await recordEvent(tx, {
      personId: id,
      type: 'profile_changed',
      actor: input.actor,
      before: changedBefore,
      after: changedAfter,
    });
  }
  if (status !== before.status) {
    await recordEvent(tx, {
      personId: id,
      type: 'status_changed',
      actor: input.actor,
      before: { status: before.status },
      after: { status },
    });
  }
  if (emails !== undefined) await replaceEmails(tx, id, emails, input.actor);
  if (primary !== undefined) await setPrimaryEmail(tx, id, primary, input.actor);
  return getPerson(tx, id);
}

async function currentEmails(tx: TenantTx, personId: string) {
  const { rows } = await tx.query<{ address: string; address_normalized: string; is_primary: boolean }>(
    'SELECT address, address_normalized, is_primary FROM person_emails WHERE tenant_id = $1 AND person_id = $2',
    [tx.tenantId, personId],
  );
  return rows;
}

async function replaceEmails(tx: TenantTx, personId: string, emails: string[], actor: Actor): Promise<void> {
  const current = await currentEmails(tx, personId);
  const wanted = new Set(emails.map(normalizeEmail));
  for (const row of current) {
    if (!wanted.has(row.address_normalized)) {
      await tx.query('DELETE FROM person_emails WHERE tenant_id = $1 AND address_normalized = $2', [
        tx.tenantId,
        row.address_normalized,
      ]);
      await recordEvent(tx, {
        personId,
        type: 'email_removed',
        actor,
        before: { address: row.address, primary: row.is_primary },
      });
    }
  }
  const have = new Set(current.map((r) => r.address_normalized));
  await tx.query('UPDATE person_emails SET is_primary = false WHERE tenant_id = $1 AND person_id = $2', [
    tx.tenantId,
    personId,
  ]);
  await insertEmails(
    tx,
    personId,
    emails.filter((e) => !have.has(normalizeEmail(e))),
    actor,
    false,
  );
  if (emails[0]) {
    await tx.query(
      'UPDATE person_emails SET is_primary = true WHERE tenant_id = $1 AND address_normalized = $2',
      [tx.tenantId, normalizeEmail(emails[0])],
    );
  }
}

/** Makes `address` the person's primary address, adding it when new. */
export async function setPrimaryEmail(
  tx: TenantTx,
  personId: string,
  address: string,
  actor: Actor,
): Promise<void> {
  const owner = await findPersonIdByEmail(tx, address);
  if (owner && owner !== personId) {
    throw conflict(`the email address ${address} belongs to another person`, {
      field: 'email',
      value: address,
    });
  }
  await tx.query(
    'UPDATE person_emails SET is_primary = false WHERE tenant_id = $1 AND person_id = $2 AND is_primary',
    [tx.tenantId, personId],
  );
  if (owner) {
    await tx.query(
      'UPDATE person_emails SET is_primary = true WHERE tenant_id = $1 AND address_normalized = $2',
      [tx.tenantId, normalizeEmail(address)],
    );
  } else {
    await tx.query(
      `INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary) VALUES ($1, $2, $3, $4, true)`,
      [tx.tenantId, normalizeEmail(address), address, personId],
    );
    await recordEvent(tx, { personId, type: 'email_added', actor, after: { address, primary: true } });
  }
}

/** Deletes a person and its emails and identities. A person who is a ticket's requester is kept (merge instead). */
export async function deletePerson(tx: TenantTx, id: string, actor: Actor): Promise<void> {
  const person = await getPerson(tx, id);
  await tx.query('SAVEPOINT delete_person');
  try {
    await tx.query('DELETE FROM people WHERE tenant_id = $1 AND id = $2', [tx.tenantId, id]);
    await tx.query('RELEASE SAVEPOINT delete_person');
  } catch (err) {
    if ((err as { code?: string }).code !== '23503') throw err;
    await tx.query('ROLLBACK TO SAVEPOINT delete_person');
    throw conflict(
      'this person has tickets or messages; merge them into another person instead of deleting',
      {
        field: 'id',
      },
    );
  }
  for (const identity of person.identities) {
    await recordEvent(tx, { personId: id, type: 'identity_removed', actor, before: identity });
  }
  for (const email of person.emails) {
    await recordEvent(tx, { personId: id, type: 'email_removed', actor, before: email });
  }
  await recordEvent(tx, {
    personId: id,
    type: 'profile_changed',
    actor,
    before: { displayName: person.displayName, kind: person.kind, status: person.status },
    after: null,
  });
}

export async function assertPersonExists(
  tx: TenantTx,
  id: string,
  path: string,
  kind?: PersonKind,
): Promise<void> {
  const { rows } = await tx.query<{ kind: string }>(
    'SELECT kind FROM people WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, id],
  );
  if (!rows[0]) throw validation(`${path.slice(1)}: no such person`, [{ path, message: 'no such person' }]);
  if (kind && rows[0].kind !== kind) {
    throw validation(`${path.slice(1)} must be an ${kind}`, [{ path, message: `must be an ${kind}` }]);
  }
}

export const escapeLike = (text: string): string => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The tenant's first agent (the one created with the tenant, its admin), for tokens minted without a person. */
export async function firstAgentId(tx: TenantTx): Promise<string | undefined> {
  const { rows } = await tx.query<{ id: string }>(
    "SELECT id FROM people WHERE tenant_id = $1 AND kind = 'agent' ORDER BY created_at, id LIMIT 1",
    [tx.tenantId],
  );
  return rows[0]?.id;
}

/**
 * An invited agent accepts their invitation: `invited` becomes `active` (an active person stays so),
 * with the name they chose when they give one. A suspended person is refused (conflict).
 */
export async function acceptInvitation(
  tx: TenantTx,
  id: string,
  input: { displayName?: string | undefined; actor: Actor },
): Promise<Person> {
  const { rows } = await tx.query<{ status: PersonStatus }>(
    'SELECT status FROM people WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('person');
  if (rows[0].status === 'suspended') throw conflict('the person is suspended');
  const changes = {
    ...(rows[0].status === 'invited' ? { status: 'active' as const } : {}),
    ...(input.displayName?.trim() ? { displayName: input.displayName } : {}),
  };
  if (Object.keys(changes).length === 0) return getPerson(tx, id);
  return updatePerson(tx, id, { ...changes, actor: input.actor });
}
