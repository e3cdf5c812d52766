// Shapes the screens use, taken from the generated OpenAPI types so that a changed route breaks the
// build. `Json<P, M>` is the 200/201 JSON answer of an operation, `Query<P, M>` its query string.
import type { paths } from './schema';

type Ok<R> = R extends { 200: { content: { 'application/json': infer T } } }
  ? T
  : R extends { 201: { content: { 'application/json': infer T } } }
    ? T
    : never;
export type Json<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer R }
  ? Ok<R>
  : never;
export type Query<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;
export type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;

export type Ticket = Json<'/api/v1/tickets/{id}', 'get'>;
export type TicketPage = Json<'/api/v1/tickets', 'get'>;
export type TicketQuery = Query<'/api/v1/tickets', 'get'>;
export type Message = Json<'/api/v1/tickets/{id}/messages', 'get'>['items'][number];
export type Person = Json<'/api/v1/people/{id}', 'get'>;
export type TicketSla = Json<'/api/v1/tickets/{id}/sla', 'get'>;
export type TicketStatus = Ticket['status'];
export type TicketPriority = Ticket['priority'];

export const STATUSES: TicketStatus[] = ['new', 'open', 'pending', 'on_hold', 'solved', 'closed'];
export const PRIORITIES: TicketPriority[] = ['low', 'normal', 'high', 'urgent'];
export const STATUS_LABELS: Record<TicketStatus, string> = {
  new: 'New',
  open: 'Open',
  pending: 'Pending',
  on_hold: 'On hold',
  solved: 'Solved',
  closed: 'Closed',
};
export const PRIORITY_LABELS: Record<TicketPriority, string> = {
  low: 'Low',
  normal: 'Normal',
  high: 'High',
  urgent: 'Urgent',
};

export type ListedTicket = TicketPage['items'][number];
export type InboxView = NonNullable<TicketQuery['view']>;
export type SessionInfo = Json<'/api/v1/session', 'get'>['session'];
export type Presence = Json<'/api/v1/tickets/{id}/presence', 'get'>['people'][number];
