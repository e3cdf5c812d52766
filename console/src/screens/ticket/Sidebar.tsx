// Beside the conversation: the ticket's status, priority and assignee (changed at once), its
// requester and their other tickets, and its history.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { api, describeError, unwrap } from '../../api/client.ts';
import {
  type Json,
  PRIORITIES,
  PRIORITY_LABELS,
  STATUSES,
  STATUS_LABELS,
  type Ticket,
  type TicketPriority,
  type TicketStatus,
} from '../../api/types.ts';
import { useAgents } from '../../lib/people.tsx';
import { formatTime } from '../../lib/time.ts';

export function Properties({
  ticket,
  myId,
  canWrite,
  assigneeRef,
}: {
  ticket: Ticket;
  myId: string;
  canWrite: boolean;
  assigneeRef: React.Ref<HTMLSelectElement>;
}) {
  const queryClient = useQueryClient();
  const agents = useAgents();
  const [error, setError] = useState<string | undefined>();
  const [saved, setSaved] = useState<string | undefined>();
  const change = async (
    changes: { status?: TicketStatus; priority?: TicketPriority; assigneeId?: string | null },
    what: string,
  ) => {
    setError(undefined);
    setSaved(undefined);
    try {
      const updated = await unwrap(
        api.PATCH('/api/v1/tickets/{id}', { params: { path: { id: ticket.id } }, body: changes }),
      );
      queryClient.setQueryData(['ticket', ticket.id], (old: Ticket | undefined) => ({ ...old, ...updated }));
      void queryClient.invalidateQueries({ queryKey: ['ticket', ticket.id] });
      void queryClient.invalidateQueries({ queryKey: ['tickets'] });
      setSaved(`${what} saved.`);
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <section className="panel" aria-labelledby="props-title">
      <h2 id="props-title">Ticket</h2>
      <div className="field">
        <label htmlFor="ticket-status">Status</label>
        <select
          id="ticket-status"
          value={ticket.status}
          disabled={!canWrite}
          onChange={(e) => void change({ status: e.target.value as TicketStatus }, 'Status')}
        >
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {STATUS_LABELS[s]}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="ticket-priority">Priority</label>
        <select
          id="ticket-priority"
          value={ticket.priority}
          disabled={!canWrite}
          onChange={(e) => void change({ priority: e.target.value as TicketPriority }, 'Priority')}
        >
          {PRIORITIES.map((p) => (
            <option key={p} value={p}>
              {PRIORITY_LABELS[p]}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="ticket-assignee">Assignee</label>
        <select
          id="ticket-assignee"
          ref={assigneeRef}
          value={ticket.assigneeId ?? ''}
          disabled={!canWrite}
          onChange={(e) => void change({ assigneeId: e.target.value || null }, 'Assignee')}
        >
          <option value="">Nobody</option>
          {ticket.assigneeId && !agents.some((a) => a.id === ticket.assigneeId) && (
            <option value={ticket.assigneeId}>(someone else)</option>
          )}
          {agents.map((a) => (
            <option key={a.id} value={a.id}>
              {a.displayName}
            </option>
          ))}
        </select>
        {canWrite && ticket.assigneeId !== myId && (
          <button
            type="button"
            className="link-button"
            onClick={() => void change({ assigneeId: myId }, 'Assignee')}
          >
            Assign to me
          </button>
        )}
      </div>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      {saved && (
        <p className="status status-ok" role="status">
          {saved}
        </p>
      )}
    </section>
  );
}

export function Requester({ ticket, timeZone }: { ticket: Ticket; timeZone: string | null }) {
  const person = useQuery({
    queryKey: ['person', ticket.requesterId],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id: ticket.requesterId } } })),
    staleTime: 600_000,
  });
  const others = useQuery({
    queryKey: ['tickets', 'requester', ticket.requesterId],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/tickets', { params: { query: { requesterId: ticket.requesterId, limit: 11 } } }),
      ),
  });
  const list = (others.data?.items ?? []).filter((t) => t.id !== ticket.id).slice(0, 10);
  return (
    <section className="panel" aria-labelledby="requester-title">
      <h2 id="requester-title">Requester</h2>
      {person.data && (
        <p>
          <strong>{person.data.displayName}</strong>
          {person.data.email && (
            <>
              <br />
              <span className="muted">{person.data.email}</span>
            </>
          )}
        </p>
      )}
      <h3>Their other tickets</h3>
      {others.isSuccess && list.length === 0 && <p className="muted">None.</p>}
      {list.length > 0 && (
        <ul className="plain-list" aria-label="Other tickets of the requester">
          {list.map((t) => (
            <li key={t.id}>
              <Link to={`/tickets/${t.id}`}>
                <span className="number">{t.number}</span> {t.subject}
              </Link>{' '}
              <span className={`badge badge-${t.status}`}>{STATUS_LABELS[t.status]}</span>{' '}
              <span className="muted">{formatTime(t.createdAt, timeZone)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

type HistoryEntry = Json<'/api/v1/tickets/{id}/history', 'get'>['items'][number];

const STATUS_NAMES = STATUS_LABELS as Record<string, string>;
const SLA_TYPES: Record<string, string> = {
  started: 'started',
  paused: 'paused',
  resumed: 'resumed',
  threshold: 'reached a threshold',
  breached: 'breached',
  escalation: 'escalated',
  fulfilled: 'met',
  recomputed: 'recomputed',
  cancelled: 'cancelled',
};
const METRIC_NAMES: Record<string, string> = {
  first_response: 'First response',
  next_response: 'Next response',
  resolution: 'Resolution',
};

function HistoryLine({ entry, agents }: { entry: HistoryEntry; agents: Map<string, string> }) {
  const name = (id: string | null) => (id === null ? 'nobody' : (agents.get(id) ?? 'an agent'));
  switch (entry.kind) {
    case 'status':
      return entry.from === null ? (
        <>Opened as {STATUS_NAMES[entry.to] ?? entry.to}</>
      ) : (
        <>
          Status {STATUS_NAMES[entry.from] ?? entry.from} → {STATUS_NAMES[entry.to] ?? entry.to}
        </>
      );
    case 'assignment':
      return <>Assigned to {name(entry.to)}</>;
    case 'sla': {
      const percent = typeof entry.data['percent'] === 'number' ? ` (${entry.data['percent']}%)` : '';
      return (
        <>
          SLA: {METRIC_NAMES[entry.metric] ?? entry.metric} {SLA_TYPES[entry.type] ?? entry.type}
          {entry.type === 'threshold' || entry.type === 'escalation' ? percent : ''}
        </>
      );
    }
    case 'audit':
      return (
        <>
          {entry.action.replace(/^tickets\./, '').replace(/[._]/g, ' ')}
          {entry.outcome !== 'success'
            ? ` (${entry.outcome}${entry.errorCode ? `: ${entry.errorCode}` : ''})`
            : ''}
        </>
      );
  }
}

export function History({ ticketId, timeZone }: { ticketId: string; timeZone: string | null }) {
  const agents = new Map(useAgents().map((a) => [a.id, a.displayName]));
  const history = useQuery({
    queryKey: ['ticket', ticketId, 'history'],
    queryFn: () => unwrap(api.GET('/api/v1/tickets/{id}/history', { params: { path: { id: ticketId } } })),
  });
  const items = history.data?.items ?? [];
  return (
    <section className="panel" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {history.isError && <p className="status status-error">{describeError(history.error)}</p>}
      {history.isSuccess && items.length === 0 && <p className="muted">Nothing yet.</p>}
      {items.length > 0 && (
        <ol className="history">
          {items.map((e, i) => (
            <li key={i} data-kind={e.kind}>
              <HistoryLine entry={e} agents={agents} />
              {e.actor && <span className="muted"> by {e.actor.displayName}</span>}{' '}
              <time className="muted" dateTime={e.at}>
                {formatTime(e.at, timeZone)}
              </time>
            </li>
          ))}
        </ol>
      )}
      {history.data?.truncated && <p className="muted">Older entries are not shown.</p>}
    </section>
  );
}
