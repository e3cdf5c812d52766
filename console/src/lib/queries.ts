// Queries that more than one part of the console makes, kept free of React so that boot.ts can ask
// for a first screen's data before the rest of the code is in: the inbox's list for an address, and
// the agents (assignees).
import type { InboxView, TicketQuery } from '../api/types.ts';

/** The inbox's filters, as they appear in its address. */
export const INBOX_FILTERS = [
  'status',
  'priority',
  'assigneeId',
  'mailboxId',
  'requesterId',
  'search',
  'sort',
] as const;
/** Tickets per page of the inbox. */
export const INBOX_PAGE_SIZE = 50;
/** The active agents, as the screens list them for assigning. */
export const AGENTS_QUERY = { kind: 'agent', status: 'active', limit: 200 } as const;

/** The inbox's view for its address (all open by default). */
export function inboxView(params: URLSearchParams): InboxView {
  return (params.get('view') as InboxView | null) ?? 'open';
}

/**
 * The list query of the inbox at this address. Values come from the address bar: the server checks
 * them (a wrong one is a 400 shown as such).
 */
export function inboxQuery(params: URLSearchParams): TicketQuery {
  const q: Record<string, string> = { view: inboxView(params) };
  for (const f of INBOX_FILTERS) {
    const v = params.get(f);
    if (v) q[f] = v;
  }
  return q as TicketQuery;
}

const query = (values: Record<string, string | number>) =>
  new URLSearchParams(Object.entries(values).map(([k, v]) => [k, String(v)])).toString();

/** The screen inside /console/ at this path ('' for the console's root). */
const screenAt = (pathname: string) => pathname.replace(/^\/console\/?/, '').replace(/\/$/, '');

/** Whether this path opens the inbox (the console's root does). */
export function opensInbox(pathname: string): boolean {
  return ['', 'inbox'].includes(screenAt(pathname));
}

/**
 * The GETs the screen at this address makes first, for boot.ts to start early: the session on every
 * screen behind sign-in, and for the inbox its first page and the agents.
 */
export function firstRequests(pathname: string, search: string): string[] {
  const inside = screenAt(pathname);
  if (['login', 'accept', 'reset'].includes(inside)) return [];
  const requests = ['/api/v1/session'];
  if (opensInbox(pathname)) {
    // The console's root opens the inbox with no filters.
    const params = new URLSearchParams(inside === '' ? '' : search);
    requests.push(`/api/v1/tickets?${query({ ...inboxQuery(params), limit: INBOX_PAGE_SIZE })}`);
    requests.push(`/api/v1/people?${query(AGENTS_QUERY)}`);
  }
  return requests;
}
