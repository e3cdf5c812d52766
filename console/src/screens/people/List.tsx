// The directory: everyone of the workspace, searchable by part of a name or an address, filtered by
// kind and status, newest first, with a form for a new person (and an invitation for a new agent).
import { LoadMore } from '../../lib/LoadMore.tsx';
import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { Status } from '../../shell/Page.tsx';
import { NewPerson } from './NewPerson.tsx';
import { personHref } from './PersonLink.tsx';
import { KIND_LABELS, type PersonKind, type PersonStatus, ROLE_LABELS, STATUS_LABELS } from './shared.ts';

export function PeopleList() {
  const me = useSignedIn();
  const [params, setParams] = useSearchParams();
  const q = params.get('q') ?? '';
  const kind = (params.get('kind') ?? '') as PersonKind | '';
  const status = (params.get('status') ?? '') as PersonStatus | '';
  const [text, setText] = useState(q);
  const [creating, setCreating] = useState(false);

  const people = useInfiniteQuery({
    queryKey: ['people', 'directory', q, kind, status],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/people', {
          params: {
            query: {
              limit: 50,
              ...(q ? { q } : {}),
              ...(kind ? { kind } : {}),
              ...(status ? { status } : {}),
              ...(pageParam ? { cursor: pageParam } : {}),
            },
          },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const rows = people.data?.pages.flatMap((p) => p.items) ?? [];

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };

  return (
    <>
      <div className="people-toolbar">
        <form
          role="search"
          className="search"
          onSubmit={(e) => {
            e.preventDefault();
            setParam('q', text.trim());
          }}
        >
          <label htmlFor="people-search" className="visually-hidden">
            Search people
          </label>
          <input
            id="people-search"
            type="search"
            placeholder="Name or address"
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
          <button type="submit" className="button">
            Search
          </button>
        </form>
        {me.can('people:write') && (
          <button type="button" className="button-primary" onClick={() => setCreating(true)}>
            New person
          </button>
        )}
      </div>
      <div className="filters" role="group" aria-label="Filters">
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => setParam('kind', e.target.value)}>
            <option value="">Any</option>
            {Object.entries(KIND_LABELS).map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setParam('status', e.target.value)}>
            <option value="">Any</option>
            {Object.entries(STATUS_LABELS).map(([s, label]) => (
              <option key={s} value={s}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {people.isPending && <Status>Loading people…</Status>}
      {people.isError && <Status kind="error">{describeError(people.error)}</Status>}
      {people.isSuccess && rows.length === 0 && <Status>Nobody matches.</Status>}
      {rows.length > 0 && (
        <div className="table-scroll">
          <table className="data-table stack" aria-label="People">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Address</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Identities</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((p) => (
                <tr key={p.id} data-person={p.email ?? p.id}>
                  <td className="cell-main">
                    <Link to={personHref(p.id)}>{p.displayName}</Link>
                  </td>
                  <td data-label="Address">
                    {p.email ?? <span className="muted">No address</span>}
                    {p.emails.length > 1 && (
                      <span className="muted">
                        {' '}
                        +{p.emails.length - 1} alias{p.emails.length > 2 ? 'es' : ''}
                      </span>
                    )}
                  </td>
                  <td data-label="Kind">
                    {KIND_LABELS[p.kind]}
                    {p.kind === 'agent' && p.role && <span className="muted"> · {ROLE_LABELS[p.role]}</span>}
                  </td>
                  <td data-label="Status">
                    <span className={`pill pill-${p.status}`}>{STATUS_LABELS[p.status]}</span>
                  </td>
                  <td data-label="Identities">
                    {p.identities.length === 0 ? (
                      <span className="muted">None</span>
                    ) : (
                      p.identities.map((i) => i.kind).join(', ')
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <LoadMore query={people} />
      <NewPerson isOpen={creating} onOpenChange={setCreating} />
    </>
  );
}
