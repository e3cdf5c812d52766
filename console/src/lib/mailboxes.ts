// What the console says of a mailbox, where more than one screen says it.
import type { Json } from '../api/types.ts';

export type Mailbox = Json<'/api/v1/mailboxes', 'get'>['items'][number];

/** Graph and Gmail mailboxes carry mail through a provider subscription (or watch). */
export const subscribed = (m: Pick<Mailbox, 'kind'>): boolean => m.kind === 'graph' || m.kind === 'gmail';

/**
 * A provider mailbox not connected to its account (no credentials, or only its own app's secret):
 * the API says so in `health.connected`, and what it needs is a connection, not another one.
 */
export const notConnected = (m: Pick<Mailbox, 'kind' | 'health'>): boolean =>
  subscribed(m) && !m.health.connected;
