// Triage of unmapped identities: chat users and the like that a channel saw but that belong to
// nobody. Each is linked to a person (one of the suggestions, or anyone found by name) or dismissed.
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import type { Json } from '../../api/types.ts';
import { DialogActions, ModalDialog } from '../../lib/Dialogs.tsx';
import { formatTime } from '../../lib/time.ts';
import { Status } from '../../shell/Page.tsx';
import { FindPerson } from './FindPerson.tsx';
import { PersonLink } from './PersonLink.tsx';

type Entry = Json<'/api/v1/unmapped-identities', 'get'>['items'][number];

function LinkDialog({
  entry,
  onClose,
  onLinked,
}: {
  entry: Entry | undefined;
  onClose(): void;
  onLinked(entry: Entry, personId: string): Promise<void>;
}) {
  const [personId, setPersonId] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!entry || !personId) return setError('Choose a person first.');
    setBusy(true);
    setError(undefined);
    try {
      await onLinked(entry, personId);
      setPersonId(undefined);
      onClose();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <ModalDialog
      isOpen={entry !== undefined}
      onOpenChange={(open) => {
        if (!open && !busy) {
          setPersonId(undefined);
          setError(undefined);
          onClose();
        }
      }}
      title="Link to a person"
    >
      {entry && (
        <form onSubmit={submit}>
          <p>
            Link the {entry.kind} identity <code>{entry.externalId}</code>
            {entry.displayName ? ` (${entry.displayName})` : ''} to:
          </p>
          <FindPerson label="Person" onChange={setPersonId} />
          {error && (
            <p className="status status-error" role="alert">
              {error}
            </p>
          )}
          <DialogActions submitLabel="Link" busy={busy} />
        </form>
      )}
    </ModalDialog>
  );
}

export function Unmapped() {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const canWrite = me.can('people:write');
  const [kind, setKind] = useState('');
  const [choosing, setChoosing] = useState<Entry | undefined>();
  const [notice, setNotice] = useState<{ ok: boolean; text: string } | undefined>();
  const [busy, setBusy] = useState<string | undefined>();

  const entries = useInfiniteQuery({
    queryKey: ['unmapped', kind],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/unmapped-identities', {
          params: {
            query: { limit: 50, ...(kind ? { kind } : {}), ...(pageParam ? { cursor: pageParam } : {}) },
          },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const rows = entries.data?.pages.flatMap((p) => p.items) ?? [];
  const kinds = [...new Set(rows.map((r) => r.kind))];

  const link = async (entry: Entry, personId: string) => {
    const person = await unwrap(
      api.POST('/api/v1/unmapped-identities/{id}/link', {
        params: { path: { id: entry.id } },
        body: { personId },
      }),
    );
    queryClient.setQueryData(['person', person.id], person);
    await queryClient.invalidateQueries({ queryKey: ['unmapped'] });
    void queryClient.invalidateQueries({ queryKey: ['people'] });
    setNotice({ ok: true, text: `${entry.kind} ${entry.externalId} is linked to ${person.displayName}.` });
  };
  const act = async (entry: Entry, what: () => Promise<void>) => {
    setBusy(entry.id);
    setNotice(undefined);
    try {
      await what();
    } catch (err) {
      setNotice({ ok: false, text: describeError(err) });
    } finally {
      setBusy(undefined);
    }
  };
  const dismiss = (entry: Entry) =>
    act(entry, async () => {
      await unwrap(api.DELETE('/api/v1/unmapped-identities/{id}', { params: { path: { id: entry.id } } }));
      await queryClient.invalidateQueries({ queryKey: ['unmapped'] });
      setNotice({ ok: true, text: `${entry.kind} ${entry.externalId} is dismissed.` });
    });

  return (
    <>
      <p className="muted">
        Identities of other systems that wrote to the desk but belong to nobody here. Link each to its person,
        or dismiss it; a later sighting lists it again.
      </p>
      {(kinds.length > 1 || kind) && (
        <div className="filters">
          <label>
            System{' '}
            <select value={kind} onChange={(e) => setKind(e.target.value)}>
              <option value="">Any</option>
              {[...new Set([...kinds, ...(kind ? [kind] : [])])].map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
        </div>
      )}
      {notice && <Status kind={notice.ok ? 'ok' : 'error'}>{notice.text}</Status>}
      {entries.isPending && <Status>Loading…</Status>}
      {entries.isError && <Status kind="error">{describeError(entries.error)}</Status>}
      {entries.isSuccess && rows.length === 0 && <Status>Nothing to triage.</Status>}
      {rows.length > 0 && (
        <ul className="plain-list unmapped">
          {rows.map((r) => (
            <li key={r.id} className="unmapped-entry" aria-labelledby={`unmapped-${r.id}`}>
              <div className="unmapped-what">
                <h3 id={`unmapped-${r.id}`}>
                  {r.displayName ?? r.email ?? r.externalId} <span className="pill">{r.kind}</span>
                </h3>
                <p className="muted">
                  <code>{r.externalId}</code>
                  {r.email && <> · {r.email}</>} · seen {r.sightings} time{r.sightings === 1 ? '' : 's'}, last{' '}
                  {formatTime(r.lastSeenAt, me.person.timeZone)}
                </p>
                {r.sampleContext && (
                  <p className="sample">
                    {r.sampleEventType && <span className="muted">{r.sampleEventType}: </span>}
                    {r.sampleContext}
                  </p>
                )}
                {r.suggestions.length > 0 && (
                  <p>
                    Same name as:{' '}
                    {r.suggestions.map((s, i) => (
                      <span key={s.personId}>
                        {i > 0 && ', '}
                        <PersonLink id={s.personId} />
                      </span>
                    ))}
                  </p>
                )}
              </div>
              {canWrite && (
                <div className="unmapped-actions">
                  {r.suggestions.map((s) => (
                    <button
                      key={s.personId}
                      type="button"
                      className="button-primary"
                      disabled={busy === r.id}
                      onClick={() => void act(r, () => link(r, s.personId))}
                    >
                      Link to {s.displayName}
                    </button>
                  ))}
                  <button type="button" className="button" onClick={() => setChoosing(r)}>
                    Link to someone…
                  </button>
                  <button
                    type="button"
                    className="button-plain"
                    disabled={busy === r.id}
                    onClick={() => void dismiss(r)}
                  >
                    Dismiss<span className="visually-hidden"> {`${r.kind} ${r.externalId}`}</span>
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      {entries.hasNextPage && (
        <button type="button" className="button" onClick={() => void entries.fetchNextPage()}>
          Load more
        </button>
      )}
      <LinkDialog entry={choosing} onClose={() => setChoosing(undefined)} onLinked={link} />
    </>
  );
}
