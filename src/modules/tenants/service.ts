// Tenants: the unit of isolation. Creating one also creates its first agent (named after the
// tenant) and that agent's admin token, so the tenant is usable at once.
import type { Pool } from '../../platform/db/pool.ts';
import { scopeToTenant, withSystemRead, withSystemTx } from '../../platform/db/tx.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { createDefaultRules } from '../notify/rules.ts';
import { createPerson } from '../people/service.ts';
import { startTicketNumbers } from '../tickets/create.ts';
import { deleteTenantTickets } from '../tickets/housekeeping.ts';
import { type MintedToken, mintToken } from '../tokens/service.ts';

export interface Tenant {
  id: string;
  name: string;
  createdAt: string;
}

export interface CreatedTenant {
  tenant: Tenant;
  adminPersonId: string;
  adminToken: MintedToken;
}

export interface CreateTenantOptions {
  /**
   * Runs inside the creating transaction, after the tenant and its token exist and before they
   * commit: whatever must not be lost with the plaintext token (the first start keeps it in a file)
   * is done here, and if it fails the tenant is not created.
   */
  beforeCommit?: (created: CreatedTenant) => Promise<void>;
}

export async function createTenant(
  pool: Pool,
  input: { name: string },
  options: CreateTenantOptions = {},
): Promise<CreatedTenant> {
  const name = input.name.trim();
  if (name === '' || name.length > 200) throw validation('a tenant name must have 1 to 200 characters');
  return withSystemTx(pool, async (sys) => {
    const id = uuidv7();
    let created: { id: string; name: string; created_at: string } | undefined;
    try {
      const { rows } = await sys.query(
        'INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at',
        [id, name],
      );
      created = rows[0];
    } catch (err) {
      if ((err as { code?: string }).code === '23505')
        throw conflict(`a tenant named "${name}" already exists`, { field: 'name' });
      throw err;
    }
    const tx = await scopeToTenant(sys, id);
    await startTicketNumbers(tx);
    await createDefaultRules(tx);
    const admin = await createPerson(tx, {
      displayName: name,
      kind: 'agent',
      role: 'admin',
      actor: 'system:tenants',
    });
    const adminToken = await mintToken(tx, {
      personId: admin.id,
      role: 'admin',
      label: 'initial admin token',
      actor: 'system:tenants',
    });
    const result: CreatedTenant = {
      tenant: { id: created!.id, name: created!.name, createdAt: created!.created_at },
      adminPersonId: admin.id,
      adminToken,
    };
    await options.beforeCommit?.(result);
    return result;
  });
}

export async function listTenants(pool: Pool): Promise<Tenant[]> {
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{ id: string; name: string; created_at: string }>(
      'SELECT id, name, created_at FROM tenants ORDER BY created_at, id',
    ),
  );
  return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
}

export async function findTenant(pool: Pool, idOrName: string): Promise<Tenant> {
  const byId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName);
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{ id: string; name: string; created_at: string }>(
      byId
        ? 'SELECT id, name, created_at FROM tenants WHERE id = $1'
        : 'SELECT id, name, created_at FROM tenants WHERE lower(name) = lower($1)',
      [idOrName],
    ),
  );
  if (!rows[0]) throw notFound(`tenant ${idOrName}`);
  return { id: rows[0].id, name: rows[0].name, createdAt: rows[0].created_at };
}

/** Removes the tenant and every row it owns (tenant_id keys cascade), in one transaction. */
export async function deleteTenant(pool: Pool, id: string): Promise<void> {
  await withSystemTx(pool, async (sys) => {
    // First the tenant's row and its people are locked, which makes every insert that would check a
    // key to them (a new person, a ticket or message naming a person) wait for this transaction and
    // then fail; then the tickets module removes what has no cascading key to the tenant (tickets,
    // their messages, wake-ups), so that the people's removal finds no row pointing at one.
    const { rowCount: found } = await sys.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [id]);
    if (found === 0) throw notFound('tenant');
    await sys.query('SELECT 1 FROM people WHERE tenant_id = $1 FOR UPDATE', [id]);
    await deleteTenantTickets(sys, id);
    // Every other tenant table cascades from the tenant's row.
    await sys.query('DELETE FROM tenants WHERE id = $1', [id]);
  });
}

/**
 * On a database with no tenant at all (first start), creates `default`. Returns it, or undefined when
 * tenants already exist. Two processes starting on one fresh database race on the unique name; the
 * loser gets a conflict and returns undefined.
 */
export async function bootstrapDefaultTenant(
  pool: Pool,
  options: CreateTenantOptions = {},
): Promise<CreatedTenant | undefined> {
  const { rowCount } = await withSystemRead(pool, (sys) => sys.query('SELECT 1 FROM tenants LIMIT 1'));
  if (rowCount !== 0) return undefined;
  try {
    return await createTenant(pool, { name: 'default' }, options);
  } catch (err) {
    if ((err as { code?: string }).code === 'conflict') return undefined;
    throw err;
  }
}
