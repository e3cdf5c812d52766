// The console's screens: one file each in this folder, listed here once. The shell builds the routes,
// the navigation, its "g <key>" shortcuts and the permission checks from this list, so adding a screen
// is one file and one line. A screen without `nav` (a ticket) is reached from another one.
import { type ComponentType, lazy, type LazyExoticComponent } from 'react';
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
}

export const SCREENS: Screen[] = [
  {
    path: 'inbox',
    nav: 'Inbox',
    permission: 'tickets:read',
    key: 'i',
    component: lazy(() => import('./Inbox.tsx')),
  },
  { path: 'tickets/:id', permission: 'tickets:read', component: lazy(() => import('./Ticket.tsx')) },
  {
    path: 'mailboxes',
    nav: 'Mailboxes',
    permission: 'mailboxes:manage',
    key: 'm',
    component: lazy(() => import('./Mailboxes.tsx')),
  },
  {
    path: 'deliveries',
    nav: 'Deliveries',
    permission: 'deliveries:read',
    key: 'd',
    component: lazy(() => import('./Deliveries.tsx')),
  },
  {
    path: 'dead-letters',
    nav: 'Dead letters',
    permission: 'queue:manage',
    key: 'l',
    component: lazy(() => import('./DeadLetters.tsx')),
  },
  {
    path: 'people',
    nav: 'People',
    permission: 'people:read',
    key: 'p',
    component: lazy(() => import('./People.tsx')),
  },
  { path: 'sla', nav: 'SLA', permission: 'sla:manage', key: 's', component: lazy(() => import('./Sla.tsx')) },
  {
    path: 'notification-rules',
    nav: 'Notification rules',
    permission: 'notifications:manage',
    key: 'n',
    component: lazy(() => import('./NotificationRules.tsx')),
  },
  {
    path: 'tokens',
    nav: 'Tokens',
    permission: 'tokens:manage',
    key: 't',
    component: lazy(() => import('./Tokens.tsx')),
  },
  {
    path: 'audit',
    nav: 'Audit log',
    permission: 'audit:read',
    key: 'a',
    component: lazy(() => import('./Audit.tsx')),
  },
  { path: 'account/two-factor', component: lazy(() => import('./TwoFactor.tsx')) },
];
