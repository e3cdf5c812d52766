// What a person may do when acting as themselves (from Teams, later the console) rather than through
// an API token: the permissions of their role, and only while they are an active agent.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { PersonRole } from '../people/service.ts';
import { permissionsOf, type Permission } from './permissions.ts';

export { PERSON_ROLES, type PersonRole } from '../people/service.ts';

/** The person's permissions: none for a contact, a suspended or invited person, or no such person. */
export async function personPermissions(tx: TenantTx, personId: string): Promise<readonly Permission[]> {
  const { rows } = await tx.query<{ role: PersonRole | null; status: string }>(
    'SELECT role, status FROM people WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, personId],
  );
  const row = rows[0];
  if (!row || row.role === null || row.status !== 'active') return [];
  return permissionsOf(row.role);
}

/** Active agents of a role ("all admins"). */
export async function peopleWithRole(tx: TenantTx, role: PersonRole): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT id FROM people WHERE tenant_id = $1 AND role = $2 AND status = 'active' ORDER BY id`,
    [tx.tenantId, role],
  );
  return rows.map((r) => r.id);
}
