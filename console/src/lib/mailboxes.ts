// What the console says of a mailbox, where more than one screen says it.
import type { Json } from '../api/types.ts';

export type Mailbox = Json<'/api/v1/mailboxes', 'get'>['items'][number];

/** Graph and Gmail mailboxes carry mail through a provider subscription (or watch). */
export const subscribed = (m: Pick<Mailbox, 'kind'>): boolean => m.kind === 'graph' || m.kind === 'gmail';

/**
 * A provider mailbox that was never connected (no credentials): its health is `needs_reauth`
 * ("not connected yet"), but what it needs is a first connection, not another one.
 */
export const notConnected = (m: Pick<Mailbox, 'kind' | 'hasCredentials'>): boolean =>
  subscribed(m) && !m.hasCredentials;
