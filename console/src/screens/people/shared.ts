// What the people screens share: the shapes from the OpenAPI document and their labels.
import type { Body, Json } from '../../api/types.ts';

export type PersonFull = Json<'/api/v1/people/{id}', 'get'>;
export type PersonUpdate = Body<'/api/v1/people/{id}', 'patch'>;
export type PersonKind = PersonFull['kind'];
export type PersonStatus = PersonFull['status'];
export type PersonRole = NonNullable<PersonFull['role']>;
export type PersonChannel = NonNullable<PersonFull['notifications']['fallback']>[number];

export const KIND_LABELS: Record<PersonKind, string> = { agent: 'Agent', contact: 'Contact' };
export const STATUS_LABELS: Record<PersonStatus, string> = {
  invited: 'Invited',
  active: 'Active',
  suspended: 'Suspended',
};
export const ROLE_LABELS: Record<PersonRole, string> = { admin: 'Admin', agent: 'Agent', viewer: 'Viewer' };
export const CHANNEL_LABELS: Record<PersonChannel, string> = {
  email: 'Email',
  teams: 'Microsoft Teams',
  slack: 'Slack',
};

/** "person:<id>", "token:<preview>", "system:<component>" in words, for the identity log. */
export function describeActor(actor: string): string {
  const [kind, rest] = [actor.split(':')[0], actor.slice(actor.indexOf(':') + 1)];
  if (kind === 'token') return `token ${rest}`;
  if (kind === 'system') return `the system (${rest})`;
  return actor;
}
