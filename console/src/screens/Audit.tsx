// The audit log: every write to the API, newest first, filtered by action, actor, target, outcome
// and time, paged. Each event links its actor and, where the console has a page for it, its target,
// and shows the SHA-256 of the request it recorded (the request itself is never kept).
import './admin-shared.css';
import './Audit.css';
import { useInfiniteQuery } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import type { Json, Query } from '../api/types.ts';
import { LoadMore } from '../lib/LoadMore.tsx';
import { formatTime } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import { FindPerson } from './people/FindPerson.tsx';
import { PersonLink, personHref } from './people/PersonLink.tsx';

type AuditEvent = Json<'/api/v1/audit-events', 'get'>['items'][number];
type AuditQuery = Query<'/api/v1/audit-events', 'get'>;
type Outcome = AuditEvent['outcome'];
const OUTCOMES: Record<Outcome, string> = {
  success: 'Success',
  failed: 'Failed',
  unauthorised: 'Refused',
  unavailable: 'Unavailable',
};
const FILTERS = ['action', 'actorId', 'targetId', 'outcome', 'from', 'to'] as const;

/** Where the console shows a target of this type, if anywhere. */
function targetHref(type: string | null, id: string | null): string | undefined {
  if (!type || !id) return undefined;
  if (type === 'tickets') return `/tickets/${encodeURIComponent(id)}`;
  if (type === 'people') return personHref(id);
  const pages: Record<string, string> = {
    mailboxes: '/mailboxes',
    tokens: '/tokens',
    notification_rules: '/notification-rules',
    sla_policies: '/sla',
    calendars: '/sla?tab=calendars',
    unmapped_identities: '/people?tab=unmapped',
  };
  return pages[type];
}

/** A local "2026-03-02T14:05" (datetime-local) as an instant, and back. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : '');
const toLocal = (iso: string | null) => {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

function Target({ event }: { event: AuditEvent }) {
  if (!event.targetId) return <span className="muted">—</span>;
  const href = targetHref(event.targetType, event.targetId);
  const label = (
    <>
      {event.targetType && <span className="muted">{event.targetType.replaceAll('_', ' ')} </span>}
      <code>{event.targetId.length > 13 ? `${event.targetId.slice(0, 8)}…` : event.targetId}</code>
    </>
  );
  if (event.targetType === 'people') return <PersonLink id={event.targetId} />;
  return href ? (
    <Link to={href} title={event.targetId}>
      {label}
    </Link>
  ) : (
    <span title={event.targetId}>{label}</span>
  );
}

function Filters() {
  const [params, setParams] = useSearchParams();
  const [action, setAction] = useState(params.get('action') ?? '');
  const [targetId, setTargetId] = useState(params.get('targetId') ?? '');
  const [outcome, setOutcome] = useState(params.get('outcome') ?? '');
  const [from, setFrom] = useState(toLocal(params.get('from')));
  const [to, setTo] = useState(toLocal(params.get('to')));
  const [actorId, setActorId] = useState<string | undefined>(params.get('actorId') ?? undefined);
  const [pickerKey, setPickerKey] = useState(0);
  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    const values: Record<string, string> = {
      action: action.trim(),
      targetId: targetId.trim(),
      outcome,
      from: toInstant(from),
      to: toInstant(to),
      actorId: actorId ?? '',
    };
    for (const [k, v] of Object.entries(values)) if (v) next.set(k, v);
    setParams(next, { replace: true });
  };
  const clear = () => {
    setAction('');
    setTargetId('');
    setOutcome('');
    setFrom('');
    setTo('');
    setActorId(undefined);
    setPickerKey((k) => k + 1);
    setParams(new URLSearchParams(), { replace: true });
  };
  return (
    <form className="audit-filters" onSubmit={apply} aria-label="Filters">
      <div className="field">
        <label htmlFor="audit-action">Action</label>
        <input
          id="audit-action"
          value={action}
          onChange={(e) => setAction(e.target.value)}
          placeholder="people.merge"
          maxLength={200}
        />
      </div>
      <div className="field">
        {actorId ? (
          <>
            <span className="label-like" id="audit-actor-label">
              Actor
            </span>
            <span className="row" role="group" aria-labelledby="audit-actor-label">
              <PersonLink id={actorId} />
              <button
                type="button"
                className="button-plain"
                onClick={() => {
                  setActorId(undefined);
                  setPickerKey((k) => k + 1);
                }}
              >
                Any actor
              </button>
            </span>
          </>
        ) : (
          <FindPerson key={pickerKey} label="Actor" onChange={setActorId} />
        )}
      </div>
      <div className="field">
        <label htmlFor="audit-target">Target id</label>
        <input
          id="audit-target"
          value={targetId}
          onChange={(e) => setTargetId(e.target.value)}
          maxLength={200}
        />
      </div>
      <div className="field">
        <label htmlFor="audit-outcome">Outcome</label>
        <select id="audit-outcome" value={outcome} onChange={(e) => setOutcome(e.target.value)}>
          <option value="">Any</option>
          {Object.entries(OUTCOMES).map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="audit-from">From</label>
        <input id="audit-from" type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="audit-to">Until</label>
        <input id="audit-to" type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
      </div>
      <div className="audit-filter-actions">
        <button type="submit" className="button-primary">
          Filter
        </button>
        <button type="button" className="button-plain" onClick={clear}>
          Clear
        </button>
      </div>
    </form>
  );
}

export default function Audit() {
  const me = useSignedIn();
  const [params] = useSearchParams();
  const query = useMemo(() => {
    const q: Record<string, string> = {};
    for (const f of FILTERS) {
      const v = params.get(f);
      if (v) q[f] = v;
    }
    return q as AuditQuery;
  }, [params]);
  const events = useInfiniteQuery({
    queryKey: ['audit-events', query],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/audit-events', {
          params: { query: { ...query, limit: 50, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const rows = events.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Page title="Audit log" wide>
      <p className="muted">
        Every write to the API, whatever its outcome. Requests are not kept: each shows the SHA-256 of its
        canonical JSON, to compare with a copy you hold.
      </p>
      <Filters key={params.toString()} />
      {events.isPending && <Status>Loading the audit log…</Status>}
      {events.isError && <Status kind="error">{describeError(events.error)}</Status>}
      {events.isSuccess && rows.length === 0 && <Status>No event matches.</Status>}
      {rows.length > 0 && (
        <div className="table-scroll">
          <table className="data-table stack audit-table" aria-label="Audit events">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Action</th>
                <th scope="col">Actor</th>
                <th scope="col">Target</th>
                <th scope="col">Outcome</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.id} data-event={e.id} data-action={e.action}>
                  <td data-label="When">
                    <time dateTime={e.at}>{formatTime(e.at, me.person.timeZone)}</time>
                  </td>
                  <td data-label="Action">
                    <code>{e.action}</code>
                  </td>
                  <td data-label="Actor">
                    {e.actorId ? <PersonLink id={e.actorId} /> : <span className="muted">system</span>}
                    <span className="muted"> via {e.actorVia}</span>
                  </td>
                  <td data-label="Target">
                    <Target event={e} />
                  </td>
                  <td data-label="Outcome">
                    <span className={`pill pill-${e.outcome}`}>{OUTCOMES[e.outcome]}</span>
                    {e.errorCode && (
                      <>
                        {' '}
                        <code>{e.errorCode}</code>
                      </>
                    )}
                  </td>
                  <td data-label="Request">
                    <details className="hash">
                      <summary>
                        <span className="visually-hidden">Payload hash </span>
                        <code>{e.payloadHash.slice(0, 12)}…</code>
                      </summary>
                      <p>
                        SHA-256 <code>{e.payloadHash}</code>
                      </p>
                      {e.requestId && (
                        <p>
                          Request id <code>{e.requestId}</code>
                        </p>
                      )}
                    </details>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <LoadMore query={events} label="Load older events" />
    </Page>
  );
}
