// External identities and resolution: which person is (kind, external id), or this email address?
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError, notFound, validation } from '../../platform/errors.ts';
import { type Actor, recordEvent } from './events.ts';
import { getPerson, normalizeEmail, type Person, SELECT_PERSON, toPerson } from './service.ts';

export const IDENTITY_KIND_RE = /^[a-z][a-z0-9_-]{1,31}$/;

export interface IdentityRef {
  kind: string;
  externalId: string;
}

export function assertIdentity(ref: IdentityRef): IdentityRef {
  if (!IDENTITY_KIND_RE.test(ref.kind)) {
    throw validation(
      `"${ref.kind.slice(0, 40)}" is not an identity kind (lower-case slug, 2-32 characters)`,
      [{ path: '/kind', message: 'must match ^[a-z][a-z0-9_-]{1,31}$' }],
    );
  }
  const externalId = ref.externalId.trim();
  if (externalId === '' || externalId.length > 512) {
    throw validation('externalId must have 1 to 512 characters', [
      { path: '/externalId', message: 'must not be empty' },
    ]);
  }
  return { kind: ref.kind, externalId };
}

export const identityTaken = (ref: IdentityRef) =>
  new AppError('identity_taken', `the identity ${ref.kind}:${ref.externalId} belongs to another person`, {
    details: { field: 'externalId', kind: ref.kind, externalId: ref.externalId },
  });

/** Links an identity to a person. Idempotent for the same person; 409 identity_taken for another. */
export async function addIdentity(
  tx: TenantTx,
  personId: string,
  ref: IdentityRef,
  actor: Actor,
  eventType: 'identity_added' | 'auto_merge' = 'identity_added',
): Promise<{ added: boolean }> {
  const identity = assertIdentity(ref);
  await getPerson(tx, personId);
  const { rows } = await tx.query<{ person_id: string; inserted: boolean }>(
    `WITH ins AS (
       INSERT INTO person_identities (tenant_id, kind, external_id, person_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant_id, kind, external_id) DO NOTHING
       RETURNING person_id
     )
     SELECT person_id, true AS inserted FROM ins
     UNION ALL
     SELECT person_id, false FROM person_identities WHERE tenant_id = $1 AND kind = $2 AND external_id = $3
     LIMIT 1`,
    [tx.tenantId, identity.kind, identity.externalId, personId],
  );
  // A conflicting row committed after this statement's snapshot is invisible to it: read it again.
  const row =
    rows[0] ??
    (
      await tx.query<{ person_id: string; inserted: boolean }>(
        'SELECT person_id, false AS inserted FROM person_identities WHERE tenant_id = $1 AND kind = $2 AND external_id = $3',
        [tx.tenantId, identity.kind, identity.externalId],
      )
    ).rows[0];
  if (!row) throw identityTaken(identity);
  if (!row.inserted) {
    if (row.person_id !== personId) throw identityTaken(identity);
    return { added: false };
  }
  await recordEvent(tx, { personId, type: eventType, actor, after: identity });
  // It is known now: it leaves the triage list.
  await tx.query('DELETE FROM unmapped_identities WHERE tenant_id = $1 AND kind = $2 AND external_id = $3', [
    tx.tenantId,
    identity.kind,
    identity.externalId,
  ]);
  return { added: true };
}

export async function removeIdentity(
  tx: TenantTx,
  personId: string,
  ref: IdentityRef,
  actor: Actor,
): Promise<void> {
  await getPerson(tx, personId);
  const { rowCount } = await tx.query(
    'DELETE FROM person_identities WHERE tenant_id = $1 AND kind = $2 AND external_id = $3 AND person_id = $4',
    [tx.tenantId, ref.kind, ref.externalId, personId],
  );
  if (rowCount === 0) throw notFound('identity');
  await recordEvent(tx, {
    personId,
    type: 'identity_removed',
    actor,
    before: { kind: ref.kind, externalId: ref.externalId },
  });
}

export type ResolveInput = IdentityRef | { email: string };

/**
 * The person behind an external identity or an email address (primary or alias, case-insensitive),
 * or undefined. Names are never matched. A suspended person is returned with its status: the
 * caller decides whether to refuse.
 */
export async function resolvePerson(tx: TenantTx, input: ResolveInput): Promise<Person | undefined> {
  // One statement: find the person id, then the person with its emails and identities.
  const { rows } =
    'email' in input
      ? await tx.query(
          `${SELECT_PERSON} WHERE p.tenant_id = $1 AND p.id = (
           SELECT person_id FROM person_emails WHERE tenant_id = $1 AND address_normalized = $2)`,
          [tx.tenantId, normalizeEmail(input.email)],
        )
      : await tx.query(
          `${SELECT_PERSON} WHERE p.tenant_id = $1 AND p.id = (
           SELECT person_id FROM person_identities WHERE tenant_id = $1 AND kind = $2 AND external_id = $3)`,
          [tx.tenantId, input.kind, input.externalId],
        );
  return rows[0] ? toPerson(rows[0]) : undefined;
}

/**
 * For a channel that presents a verified email with an identity (e.g. a Teams activity whose Entra
 * profile email is verified): resolve the identity; failing that, link it to the person owning the
 * email (recorded as auto_merge by system:<channel>). Returns the person, or undefined when neither
 * is known (the caller records an unmapped sighting).
 */
export async function resolveOrAutoLink(
  tx: TenantTx,
  input: IdentityRef & { verifiedEmail?: string; channel: string },
): Promise<Person | undefined> {
  const byIdentity = await resolvePerson(tx, input);
  if (byIdentity || !input.verifiedEmail) return byIdentity;
  const byEmail = await resolvePerson(tx, { email: input.verifiedEmail });
  if (!byEmail) return undefined;
  await addIdentity(tx, byEmail.id, input, `system:${input.channel}`, 'auto_merge');
  return getPerson(tx, byEmail.id);
}
