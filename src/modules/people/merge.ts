// Manual merge: one person (the source) becomes another (the target). Everything that pointed at
// the source moves in one transaction, the target records manual_merge, the source is removed.
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { isUuid } from '../../platform/ids.ts';
import { type Actor, recordEvent } from './events.ts';
import { findPerson, getPerson, type Person } from './service.ts';
import { movePersonReferences } from '../tickets/housekeeping.ts';

export async function mergePeople(
  tx: TenantTx,
  input: { sourceId: string; targetId: string; actor: Actor },
): Promise<Person> {
  if (!isUuid(input.sourceId) || !isUuid(input.targetId)) {
    throw new AppError('validation_failed', 'person ids are UUIDs', { status: 400 });
  }
  if (input.sourceId === input.targetId) {
    throw new AppError('merge_into_self', 'a person cannot be merged into itself', { status: 400 });
  }
  // Lock both rows in a fixed order so two opposite merges cannot deadlock.
  const { rows: locked } = await tx.query<{ id: string }>(
    'SELECT id FROM people WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE',
    [tx.tenantId, [input.sourceId, input.targetId]],
  );
  // A person of another tenant is invisible here, so a cross-tenant merge is a 404 like a missing one.
  if (!locked.some((r) => r.id === input.targetId))
    throw new AppError('person_not_found', 'target person not found', { status: 404 });
  if (!locked.some((r) => r.id === input.sourceId))
    throw new AppError('person_not_found', 'source person not found', { status: 404 });
  const source = (await findPerson(tx, input.sourceId))!;
  const values = [tx.tenantId, input.sourceId, input.targetId];

  const { rows: hasPrimary } = await tx.query(
    'SELECT 1 FROM person_emails WHERE tenant_id = $1 AND person_id = $2 AND is_primary',
    [tx.tenantId, input.targetId],
  );
  // The target keeps its primary address; the source's addresses become aliases (or primary if the target had none).
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
  await tx.query('UPDATE api_tokens SET person_id = $3 WHERE tenant_id = $1 AND person_id = $2', values);
  const moved = await movePersonReferences(tx, { fromId: input.sourceId, toId: input.targetId });
  await tx.query('DELETE FROM people WHERE tenant_id = $1 AND id = $2', [tx.tenantId, input.sourceId]);
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
    after: { sourceId: source.id, movedTickets: moved.tickets, movedMessages: moved.messages },
  });
  return getPerson(tx, input.targetId);
}
