// The console's screens: one file each in this folder, listed here once. The shell builds the routes,
// the navigation, its "g <key>" shortcuts and the permission checks from this list, so adding a screen
// is one file and one line. A screen without `nav` (a ticket) is reached from another one.
import { type ComponentType, lazy, type LazyExoticComponent } from 'react';
import { matchPath } from 'react-router';
import type { Permission } from '../../../src/modules/tokens/permissions.ts';

export interface Screen {
  /** The route inside /console/ (a react-router pattern). */
  path: string;
  /** Its name in the navigation. */
  nav?: string;
  /** Only people whose role has this permission see and open it. */
  permission?: Permission;
  /** "g" then this key opens it (shown underlined in the navigation when the name has the letter). */
  key?: string;
  component: LazyExoticComponent<ComponentType> | ComponentType;
  /** Fetches the screen's code ahead of its first render (see preloadScreenAt). */
  preload?: () => Promise<unknown>;
}

/** A screen whose code is its own chunk, fetched when first shown or earlier through `preload`. */
function lazyScreen(load: () => Promise<{ default: ComponentType }>): Pick<Screen, 'component' | 'preload'> {
  return { component: lazy(load), preload: load };
}

export const SCREENS: Screen[] = [
  {
    path: 'inbox',
    nav: 'Inbox',
    permission: 'tickets:read',
    key: 'i',
    ...lazyScreen(() => import('./Inbox.tsx')),
  },
  { path: 'tickets/:id', permission: 'tickets:read', ...lazyScreen(() => import('./Ticket.tsx')) },
  {
    path: 'mailboxes',
    nav: 'Mailboxes',
    permission: 'mailboxes:manage',
    key: 'm',
    ...lazyScreen(() => import('./Mailboxes.tsx')),
  },
  {
    path: 'deliveries',
    nav: 'Deliveries',
    permission: 'deliveries:read',
    key: 'd',
    ...lazyScreen(() => import('./Deliveries.tsx')),
  },
  {
    path: 'dead-letters',
    nav: 'Dead letters',
    permission: 'queue:manage',
    key: 'l',
    ...lazyScreen(() => import('./DeadLetters.tsx')),
  },
  {
    path: 'people',
    nav: 'People',
    permission: 'people:read',
    key: 'p',
    ...lazyScreen(() => import('./People.tsx')),
  },
  { path: 'sla', nav: 'SLA', permission: 'sla:manage', key: 's', ...lazyScreen(() => import('./Sla.tsx')) },
  {
    path: 'notification-rules',
    nav: 'Notification rules',
    permission: 'notifications:manage',
    key: 'n',
    ...lazyScreen(() => import('./NotificationRules.tsx')),
  },
  {
    path: 'tokens',
    nav: 'Tokens',
    permission: 'tokens:manage',
    key: 't',
    ...lazyScreen(() => import('./Tokens.tsx')),
  },
  {
    path: 'audit',
    nav: 'Audit log',
    permission: 'audit:read',
    key: 'a',
    ...lazyScreen(() => import('./Audit.tsx')),
  },
  { path: 'account/two-factor', ...lazyScreen(() => import('./TwoFactor.tsx')) },
];

/**
 * Starts fetching the code of the screen a visit opens on (`/console/inbox` and the like) at once,
 * beside the session's request, instead of after the session answered and the router rendered.
 */
export function preloadScreenAt(pathname: string): void {
  const inside = pathname.replace(/^\/console\/?/, '') || 'inbox';
  const screen = SCREENS.find((s) => matchPath(s.path, inside));
  void screen?.preload?.().catch(() => undefined);
}
