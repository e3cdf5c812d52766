// One ticket: the conversation with the reply editor, who else is here, the SLA clocks, the ticket's
// properties, its requester and their other tickets, and its history. Keys: r reply, n note,
// a assign, u back to the inbox.
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useCallback, useMemo, useRef, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import { STATUS_LABELS, type Ticket as TicketShape } from '../api/types.ts';
import { formatTime } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import { useKeys } from '../shell/shortcuts.ts';
import { Composer, type ComposerHandle } from './ticket/Composer.tsx';
import { Conversation } from './ticket/Conversation.tsx';
import { PresenceBar, usePresence } from './ticket/presence.tsx';
import { SlaClocks } from './ticket/SlaClocks.tsx';
import { History, Properties, Requester } from './ticket/Sidebar.tsx';

export default function Ticket() {
  const { id = '' } = useParams();
  const me = useSignedIn();
  const navigate = useNavigate();
  const composer = useRef<ComposerHandle>(null);
  const assignee = useRef<HTMLSelectElement>(null);
  const [writing, setWriting] = useState(false);
  const canWrite = me.can('tickets:write');
  const timeZone = me.person.timeZone;

  const ticket = useQuery({
    queryKey: ['ticket', id],
    queryFn: () => unwrap<TicketShape>(api.GET('/api/v1/tickets/{id}', { params: { path: { id } } })),
  });
  const messages = useInfiniteQuery({
    queryKey: ['ticket', id, 'messages'],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/tickets/{id}/messages', {
          params: { path: { id }, query: { limit: 100, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    enabled: ticket.isSuccess,
    // A reply on its way by mail is watched until its delivery is settled.
    refetchInterval: (query) =>
      query.state.data?.pages.some((p) =>
        p.items.some((m) => m.delivery && ['queued', 'sending'].includes(m.delivery.status)),
      )
        ? 2000
        : false,
  });
  // The API answers newest first; the conversation reads oldest first.
  const conversation = useMemo(
    () => (messages.data?.pages.flatMap((p) => p.items) ?? []).slice().reverse(),
    [messages.data],
  );
  const newestMessageId = messages.data?.pages[0]?.items[0]?.id;

  const others = usePresence(id, me.person.id, writing);
  const onWriting = useCallback((w: boolean) => setWriting(w), []);

  useKeys({
    r: () => composer.current?.open('reply'),
    n: () => composer.current?.open('note'),
    a: () => assignee.current?.focus(),
    u: () => navigate('/inbox'),
  });

  if (ticket.isPending) return <Status>Loading the ticket…</Status>;
  if (ticket.isError) {
    return (
      <Page title="Ticket">
        <Status kind="error">{describeError(ticket.error)}</Status>
        <Link to="/inbox">Back to the inbox</Link>
      </Page>
    );
  }
  const t = ticket.data;
  return (
    <Page
      title={`${t.number} ${t.subject}`}
      wide
      actions={
        <span className={`badge badge-${t.status}`} aria-label={`Status: ${STATUS_LABELS[t.status]}`}>
          {STATUS_LABELS[t.status]}
        </span>
      }
    >
      <p className="muted ticket-meta">
        Opened {formatTime(t.createdAt, timeZone)} · last change {formatTime(t.updatedAt, timeZone)} ·{' '}
        <Link to="/inbox">Back to the inbox</Link>
      </p>
      <PresenceBar people={others} />
      <div className="ticket-layout">
        <div className="ticket-main">
          {messages.hasNextPage && (
            <button type="button" className="button" onClick={() => void messages.fetchNextPage()}>
              Show earlier messages
            </button>
          )}
          {messages.isPending && <Status>Loading the conversation…</Status>}
          {messages.isError && <Status kind="error">{describeError(messages.error)}</Status>}
          <Conversation messages={conversation} timeZone={timeZone} />
          {canWrite && (
            <Composer ref={composer} ticketId={id} newestMessageId={newestMessageId} onWriting={onWriting} />
          )}
        </div>
        <aside className="ticket-side" aria-label="Ticket details">
          <Properties ticket={t} myId={me.person.id} canWrite={canWrite} assigneeRef={assignee} />
          <SlaClocks ticketId={id} timeZone={timeZone} />
          <Requester ticket={t} timeZone={timeZone} />
          <History ticketId={id} timeZone={timeZone} />
        </aside>
      </div>
    </Page>
  );
}
