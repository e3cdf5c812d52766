// Adding and removing one address of a person (the person body's `emails` replaces them all).
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import { type Actor, recordEvent } from './events.ts';
import {
  assertEmail,
  getPerson,
  insertEmails,
  normalizeEmail,
  type Person,
  setPrimaryEmail,
} from './service.ts';

export async function addEmail(
  tx: TenantTx,
  input: { personId: string; address: string; primary: boolean; actor: Actor },
): Promise<Person> {
  const address = assertEmail(input.address, '/address');
  const person = await getPerson(tx, input.personId);
  // Adding an address the person already has changes nothing (unless it is to become primary).
  const has = person.emails.find((e) => normalizeEmail(e.address) === normalizeEmail(address));
  if (has && (!input.primary || has.primary)) return person;
  const primary = input.primary || person.emails.length === 0;
  if (primary) await setPrimaryEmail(tx, input.personId, address, input.actor);
  else await insertEmails(tx, input.personId, [address], input.actor, false);
  await tx.query('UPDATE people SET updated_at = now() WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    input.personId,
  ]);
  return getPerson(tx, input.personId);
}

/** Removes an address. When it was primary, the oldest remaining address becomes primary. */
export async function removeEmail(
  tx: TenantTx,
  input: { personId: string; address: string; actor: Actor },
): Promise<Person> {
  await getPerson(tx, input.personId);
  const { rows } = await tx.query<{ address: string; is_primary: boolean }>(
    `DELETE FROM person_emails WHERE tenant_id = $1 AND person_id = $2 AND address_normalized = $3
     RETURNING address, is_primary`,
    [tx.tenantId, input.personId, normalizeEmail(input.address)],
  );
  const removed = rows[0];
  if (!removed) throw notFound('email address');
  if (removed.is_primary) {
    await tx.query(
      `UPDATE person_emails SET is_primary = true
        WHERE tenant_id = $1 AND address_normalized = (
          SELECT address_normalized FROM person_emails WHERE tenant_id = $1 AND person_id = $2
           ORDER BY created_at, address_normalized LIMIT 1)`,
      [tx.tenantId, input.personId],
    );
  }
  await recordEvent(tx, {
    personId: input.personId,
    type: 'email_removed',
    actor: input.actor,
    before: { address: removed.address, primary: removed.is_primary },
  });
  await tx.query('UPDATE people SET updated_at = now() WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    input.personId,
  ]);
  return getPerson(tx, input.personId);
}
