// The people side of a manual merge (the merge module orchestrates it, with the tokens and tickets
// that point at the source): lock the pair, move the source's addresses and identities to the
// target, then remove the source and record manual_merge on the target.
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { isUuid } from '../../platform/ids.ts';
import { type Actor, recordEvent } from './events.ts';
import { findPerson, getPerson, type Person } from './service.ts';

/** Locks both people (in id order, so two opposite merges cannot deadlock); returns the source. */
export async function lockMergePair(
  tx: TenantTx,
  input: { sourceId: string; targetId: string },
): Promise<Person> {
  if (!isUuid(input.sourceId) || !isUuid(input.targetId)) {
    throw new AppError('validation_failed', 'person ids are UUIDs', {
      details: { errors: [{ path: '/sourceId', message: 'must be a UUID' }] },
    });
  }
  if (input.sourceId === input.targetId) {
    throw new AppError('merge_into_self', 'a person cannot be merged into itself');
  }
  const { rows: locked } = await tx.query<{ id: string }>(
    'SELECT id FROM people WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE',
    [tx.tenantId, [input.sourceId, input.targetId]],
  );
  // A person of another tenant is invisible here, so a cross-tenant merge is a 404 like a missing one.
  if (!locked.some((r) => r.id === input.targetId))
    throw new AppError('not_found', 'target person not found');
  if (!locked.some((r) => r.id === input.sourceId))
    throw new AppError('not_found', 'source person not found');
  return (await findPerson(tx, input.sourceId))!;
}

/** Moves the source's addresses (as aliases, unless the target has no primary) and identities to the target. */
export async function moveAddressesAndIdentities(
  tx: TenantTx,
  input: { sourceId: string; targetId: string },
): Promise<void> {
  const values = [tx.tenantId, input.sourceId, input.targetId];
  const { rows: hasPrimary } = await tx.query(
    'SELECT 1 FROM person_emails WHERE tenant_id = $1 AND person_id = $2 AND is_primary',
    [tx.tenantId, input.targetId],
  );
  await tx.query(
    `UPDATE person_emails SET person_id = $3,
            is_primary = CASE WHEN $4 THEN false ELSE is_primary END
      WHERE tenant_id = $1 AND person_id = $2`,
    [...values, hasPrimary.length > 0],
  );
  await tx.query(
    'UPDATE person_identities SET person_id = $3 WHERE tenant_id = $1 AND person_id = $2',
    values,
  );
}

/** Removes the source (nothing may point at it any more) and records manual_merge on the target. */
export async function finishMerge(
  tx: TenantTx,
  input: { source: Person; targetId: string; actor: Actor; moved: Record<string, number> },
): Promise<Person> {
  const { source } = input;
  await tx.query('DELETE FROM people WHERE tenant_id = $1 AND id = $2', [tx.tenantId, source.id]);
  await tx.query('UPDATE people SET updated_at = now() WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    input.targetId,
  ]);
  await recordEvent(tx, {
    personId: input.targetId,
    type: 'manual_merge',
    actor: input.actor,
    before: {
      sourceId: source.id,
      displayName: source.displayName,
      emails: source.emails,
      identities: source.identities,
    },
    after: { sourceId: source.id, ...input.moved },
  });
  return getPerson(tx, input.targetId);
}
