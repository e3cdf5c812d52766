// Roles and what they may do. A token carries one role; a request is allowed when the role grants
// the route's permission. Nothing grants more than its role.
export const TOKEN_ROLES = ['admin', 'agent', 'viewer', 'integration'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

export const PERMISSIONS = [
  'tickets:read',
  'tickets:write',
  'tickets:delete',
  'people:read',
  'people:write',
  'tokens:manage',
  'queue:manage',
  'mailboxes:manage',
  'inbound:write',
  'sla:manage',
  'deliveries:read',
  'deliveries:manage',
  'templates:manage',
  'integrations:manage',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const ROLE_PERMISSIONS: Record<TokenRole, readonly Permission[]> = {
  admin: PERMISSIONS,
  agent: [
    'tickets:read',
    'tickets:write',
    'tickets:delete',
    'people:read',
    'people:write',
    'deliveries:read',
    'deliveries:manage',
  ],
  viewer: ['tickets:read', 'people:read'],
  integration: ['tickets:read', 'tickets:write', 'people:read', 'people:write', 'inbound:write'],
};

export const permissionsOf = (role: TokenRole): readonly Permission[] => ROLE_PERMISSIONS[role];
export const roleAllows = (role: TokenRole, permission: Permission): boolean =>
  ROLE_PERMISSIONS[role].includes(permission);

/** A role may mint tokens of roles whose permissions are a subset of its own. */
export const canGrantRole = (granter: TokenRole, role: TokenRole): boolean =>
  ROLE_PERMISSIONS[role].every((p) => ROLE_PERMISSIONS[granter].includes(p));

/** The role of an authenticated caller (the server knows roles only as strings). */
export function roleOf(principal: { role: string }): TokenRole {
  if (!(TOKEN_ROLES as readonly string[]).includes(principal.role))
    throw new Error(`unknown role ${principal.role}`);
  return principal.role as TokenRole;
}
