// The person a token minted from the command line acts as when none is named: the tenant's first
// agent, the one created with the tenant (its admin).
import type { TenantTx } from '../platform/db/tx.ts';

export async function firstAgentId(tx: TenantTx): Promise<string | undefined> {
  const { rows } = await tx.query<{ id: string }>(
    "SELECT id FROM people WHERE tenant_id = $1 AND kind = 'agent' ORDER BY created_at, id LIMIT 1",
    [tx.tenantId],
  );
  return rows[0]?.id;
}
