// The rules every change of a ticket follows, whoever makes it (API, CLI, inbound mail, SLA
// escalations): pure functions, so that the one-by-one operations and inbound's batch form cannot
// disagree.
import type { Direction, TicketStatus, Visibility } from './model.ts';

export type AuthorKind = 'agent' | 'contact';

export interface MessageFacts {
  authorKind: AuthorKind;
  visibility: Visibility;
  /** Automatic mail (auto-replies, bounces, lists): it may thread but never changes a ticket's status. */
  automatic: boolean;
}

/** An agent writes outbound; the requester or another contact writes inbound. */
export const directionOf = (authorKind: AuthorKind): Direction =>
  authorKind === 'agent' ? 'outbound' : 'inbound';

/**
 * The status a ticket moves to when a message is added, or undefined when it stays:
 * - a customer's public reply opens a ticket that waited for them (`pending`) or was `solved` or
 *   `closed` (whether a reply to an old ticket may reopen it at all is decided before: inbound mail
 *   starts a new ticket instead past its mailbox's reopen window);
 * - an agent's first public reply opens a `new` ticket;
 * - internal notes and automatic mail never change the status.
 */
export function statusAfterMessage(current: TicketStatus, m: MessageFacts): TicketStatus | undefined {
  if (m.automatic || m.visibility !== 'public') return undefined;
  if (m.authorKind === 'agent') return current === 'new' ? 'open' : undefined;
  return current === 'pending' || current === 'solved' || current === 'closed' ? 'open' : undefined;
}
