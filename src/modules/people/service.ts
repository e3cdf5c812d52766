// People: agents and contacts of a tenant, with their email addresses (one primary).
import type { Queryable } from '../../platform/db/pool.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError, conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';

export const PERSON_KINDS = ['agent', 'contact'] as const;
export type PersonKind = (typeof PERSON_KINDS)[number];

export interface Person {
  id: string;
  displayName: string;
  kind: PersonKind;
  status: string;
  /** The primary address, or null when the person has none. */
  email: string | null;
  emails: { address: string; primary: boolean }[];
  createdAt: string;
  updatedAt: string;
}

const EMAIL_RE = /^[^\s@<>(),;:"[\]\\]+@[^\s@<>(),;:"[\]\\]+\.[^\s@<>(),;:"[\]\\]+$/;

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

interface PersonRow {
  id: string;
  display_name: string;
  kind: PersonKind;
  status: string;
  created_at: string;
  updated_at: string;
  emails: { address: string; primary: boolean }[] | null;
}

const SELECT_PERSON = `
  SELECT p.id, p.display_name, p.kind, p.status, p.created_at, p.updated_at,
         (SELECT json_agg(json_build_object('address', e.address, 'primary', e.is_primary)
                          ORDER BY e.is_primary DESC, e.created_at, e.address_normalized)
            FROM person_emails e WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id) AS emails
    FROM people p`;

function toPerson(row: PersonRow): Person {
  const emails = row.emails ?? [];
  return {
    id: row.id,
    displayName: row.display_name,
    kind: row.kind,
    status: row.status,
    email: emails.find((e) => e.primary)?.address ?? null,
    emails,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function getPerson(tx: TenantTx, id: string): Promise<Person> {
  const { rows } = await tx.query<PersonRow>(`${SELECT_PERSON} WHERE p.tenant_id = $1 AND p.id = $2`, [
    tx.tenantId,
    id,
  ]);
  if (!rows[0]) throw notFound('person');
  return toPerson(rows[0]);
}

export async function findPersonIdByEmail(tx: TenantTx, address: string): Promise<string | undefined> {
  const { rows } = await tx.query<{ person_id: string }>(
    'SELECT person_id FROM person_emails WHERE tenant_id = $1 AND address_normalized = $2',
    [tx.tenantId, normalizeEmail(address)],
  );
  return rows[0]?.person_id;
}

export interface CreatePersonInput {
  displayName: string;
  kind: PersonKind;
  /** Addresses in order; the first becomes primary. */
  emails?: string[];
}

export async function createPerson(tx: TenantTx, input: CreatePersonInput): Promise<Person> {
  const displayName = input.displayName.trim();
  if (displayName === '')
    throw validation('displayName must not be empty', [
      { path: '/displayName', message: 'must not be empty' },
    ]);
  const emails = (input.emails ?? []).map((e, i) => assertEmail(e, `/emails/${i}`));
  const normalized = emails.map(normalizeEmail);
  if (new Set(normalized).size !== normalized.length)
    throw validation('the same email address is listed twice');
  const id = uuidv7();
  await tx.query('INSERT INTO people (tenant_id, id, display_name, kind) VALUES ($1, $2, $3, $4)', [
    tx.tenantId,
    id,
    displayName,
    input.kind,
  ]);
  await insertEmails(tx, id, emails);
  return getPerson(tx, id);
}

async function insertEmails(
  tx: Queryable & { tenantId: string },
  personId: string,
  emails: string[],
): Promise<void> {
  if (emails.length === 0) return;
  const { rows } = await tx.query<{ address_normalized: string }>(
    `INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary)
     SELECT $1, lower(a), a, $2, ord = 1 FROM unnest($3::text[]) WITH ORDINALITY AS x(a, ord)
     ON CONFLICT (tenant_id, address_normalized) DO NOTHING
     RETURNING address_normalized`,
    [tx.tenantId, personId, emails],
  );
  if (rows.length !== emails.length) {
    const taken = emails.find((e) => !rows.some((r) => r.address_normalized === normalizeEmail(e)));
    throw conflict(`the email address ${taken} belongs to another person`, { field: 'email', value: taken });
  }
}

/**
 * Finds the person with this address or creates a contact for it. Safe under concurrency: two
 * requests creating the same new address end with one person (the loser re-reads the winner's).
 */
export async function findOrCreateContact(tx: TenantTx, address: string, name?: string): Promise<string> {
  const email = assertEmail(address, '/requester/email');
  const existing = await findPersonIdByEmail(tx, email);
  if (existing) return existing;
  await tx.query('SAVEPOINT find_or_create_contact');
  try {
    const id = uuidv7();
    const displayName = name?.trim() || email.split('@')[0] || email;
    await tx.query(
      `WITH p AS (INSERT INTO people (tenant_id, id, display_name, kind) VALUES ($1, $2, $3, 'contact') RETURNING tenant_id, id)
       INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary)
       SELECT tenant_id, $4, $5, id, true FROM p`,
      [tx.tenantId, id, displayName, normalizeEmail(email), email],
    );
    await tx.query('RELEASE SAVEPOINT find_or_create_contact');
    return id;
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    await tx.query('ROLLBACK TO SAVEPOINT find_or_create_contact');
    const winner = await findPersonIdByEmail(tx, email);
    if (!winner) throw err;
    return winner;
  }
}

export interface ListPeopleInput {
  kind?: PersonKind;
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
  if (input.q) {
    values.push(`%${escapeLike(input.q)}%`);
    where.push(
      `(p.display_name ILIKE $${values.length} OR EXISTS (SELECT 1 FROM person_emails e WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id AND e.address_normalized LIKE lower($${values.length})))`,
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
  /** Replaces the primary address (adding it if new). */
  email?: string;
}

export async function updatePerson(tx: TenantTx, id: string, input: UpdatePersonInput): Promise<Person> {
  const { rowCount } = await tx.query('SELECT 1 FROM people WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('person');
  if (input.displayName !== undefined && input.displayName.trim() === '') {
    throw validation('displayName must not be empty', [
      { path: '/displayName', message: 'must not be empty' },
    ]);
  }
  await tx.query(
    `UPDATE people SET display_name = coalesce($3, display_name), kind = coalesce($4, kind), updated_at = now()
      WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id, input.displayName?.trim() ?? null, input.kind ?? null],
  );
  if (input.email !== undefined) {
    const email = assertEmail(input.email);
    const owner = await findPersonIdByEmail(tx, email);
    if (owner && owner !== id)
      throw conflict(`the email address ${email} belongs to another person`, { field: 'email' });
    await tx.query(
      'UPDATE person_emails SET is_primary = false WHERE tenant_id = $1 AND person_id = $2 AND is_primary',
      [tx.tenantId, id],
    );
    await tx.query(
      `INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary)
       VALUES ($1, $2, $3, $4, true)
       ON CONFLICT (tenant_id, address_normalized) DO UPDATE SET is_primary = true, address = excluded.address`,
      [tx.tenantId, normalizeEmail(email), email, id],
    );
  }
  return getPerson(tx, id);
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
  if (!rows[0])
    throw new AppError('validation_failed', `${path.slice(1)}: no such person`, {
      details: { errors: [{ path, message: 'no such person' }] },
    });
  if (kind && rows[0].kind !== kind)
    throw validation(`${path.slice(1)} must be an ${kind}`, [{ path, message: `must be an ${kind}` }]);
}

export const escapeLike = (text: string): string => text.replace(/[\\%_]/g, (c) => `\\${c}`);
