// Response schemas of API tokens, shared by /tokens and /people/:id/tokens.
import { Type } from 'typebox';
import { Nullable, OneOf, Timestamp, Uuid } from '../../platform/http/schemas.ts';
import { TOKEN_ROLES } from './permissions.ts';

export const Role = OneOf(TOKEN_ROLES);

export const TokenSchema = Type.Object({
  id: Uuid,
  personId: Uuid,
  preview: Type.String(),
  role: Role,
  label: Type.String(),
  createdAt: Timestamp,
  lastUsedAt: Nullable(Timestamp),
  revokedAt: Nullable(Timestamp),
});

const mintedFields = {
  id: Uuid,
  token: Type.String({ description: 'The plaintext token. Shown this once; store it now.' }),
  preview: Type.String(),
  role: Role,
  label: Type.String(),
  createdAt: Timestamp,
};

/** A new token of a person (POST /people/:id/tokens). */
export const MintedSchema = Type.Object(mintedFields);
/** A new token, saying whose (POST /tokens). */
export const MintedForPersonSchema = Type.Object({ ...mintedFields, personId: Uuid });
