// One person: profile, addresses (the primary one and aliases), external identities, notification
// settings, their tickets and their identity log; suspend or reactivate (admins), invite (agents)
// and merge another person into this one.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { Link } from 'react-router';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { STATUS_LABELS as TICKET_STATUS_LABELS } from '../../api/types.ts';
import { ConfirmDialog } from '../../lib/Dialogs.tsx';
import { formatTime } from '../../lib/time.ts';
import { Status } from '../../shell/Page.tsx';
import { InviteButton } from './Invite.tsx';
import { MergeDialog } from './Merge.tsx';
import { PersonLink } from './PersonLink.tsx';
import {
  CHANNEL_LABELS,
  describeActor,
  KIND_LABELS,
  type PersonChannel,
  type PersonFull,
  type PersonRole,
  type PersonUpdate,
  ROLE_LABELS,
  STATUS_LABELS,
} from './shared.ts';

/** Runs a change of the person and puts the answer in the cache; busy and error for the form. */
function useChange(id: string) {
  const queryClient = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const run = async (change: () => Promise<PersonFull>, message?: string): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      queryClient.setQueryData(['person', id], await change());
      void queryClient.invalidateQueries({ queryKey: ['people'] });
      void queryClient.invalidateQueries({ queryKey: ['person', id, 'events'] });
      setDone(message);
      return true;
    } catch (err) {
      setError(describeError(err));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const feedback = (
    <>
      {error && (
        <p className="status status-error" role="alert">
          {error}
        </p>
      )}
      {done && <p className="status status-ok">{done}</p>}
    </>
  );
  return { busy, run, feedback };
}

const patch = (id: string, body: PersonUpdate) =>
  unwrap(api.PATCH('/api/v1/people/{id}', { params: { path: { id } }, body }));

function Panel({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="panel" aria-label={title}>
      <h3>{title}</h3>
      {children}
    </section>
  );
}

let zones: string[] | undefined;
const timeZones = () => (zones ??= Intl.supportedValuesOf('timeZone'));

function Profile({ person, canWrite }: { person: PersonFull; canWrite: boolean }) {
  const me = useSignedIn();
  const [name, setName] = useState(person.displayName);
  const [timeZone, setTimeZone] = useState(person.timeZone ?? '');
  const [role, setRole] = useState<PersonRole>(person.role ?? 'agent');
  const { busy, run, feedback } = useChange(person.id);
  const mayGrant = me.can('tokens:manage') && person.kind === 'agent';
  const save = (e: FormEvent) => {
    e.preventDefault();
    void run(
      () =>
        patch(person.id, {
          displayName: name.trim(),
          timeZone: timeZone.trim() || null,
          ...(mayGrant ? { role } : {}),
        }),
      'Saved.',
    );
  };
  return (
    <Panel title="Profile">
      <form onSubmit={save}>
        <div className="field">
          <label htmlFor="person-name">Name</label>
          <input
            id="person-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            required
            maxLength={200}
            readOnly={!canWrite}
          />
        </div>
        <div className="field">
          <label htmlFor="person-zone">Time zone</label>
          <input
            id="person-zone"
            list="person-zones"
            value={timeZone}
            placeholder="UTC"
            onChange={(e) => setTimeZone(e.target.value)}
            readOnly={!canWrite}
          />
          <datalist id="person-zones">
            {timeZones().map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
        </div>
        {person.kind === 'agent' && (
          <div className="field">
            <label htmlFor="person-role">Role</label>
            <select
              id="person-role"
              value={role}
              onChange={(e) => setRole(e.target.value as PersonRole)}
              disabled={!mayGrant}
            >
              {Object.entries(ROLE_LABELS).map(([r, label]) => (
                <option key={r} value={r}>
                  {label}
                </option>
              ))}
            </select>
            {!mayGrant && <span className="field-hint">Only an admin changes roles.</span>}
          </div>
        )}
        {canWrite && (
          <button type="submit" className="button-primary" disabled={busy}>
            Save profile
          </button>
        )}
        {feedback}
      </form>
    </Panel>
  );
}

function Addresses({ person, canWrite }: { person: PersonFull; canWrite: boolean }) {
  const [address, setAddress] = useState('');
  const { busy, run, feedback } = useChange(person.id);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await run(
      () =>
        unwrap(
          api.POST('/api/v1/people/{id}/emails', {
            params: { path: { id: person.id } },
            body: { address: address.trim() },
          }),
        ),
      'Address added.',
    );
    if (ok) setAddress('');
  };
  return (
    <Panel title="Email addresses">
      {person.emails.length === 0 ? (
        <p className="muted">No address.</p>
      ) : (
        <ul className="plain-list">
          {person.emails.map((e) => (
            <li key={e.address} className="list-row">
              <span className="grow">
                <code>{e.address}</code>{' '}
                {e.primary ? (
                  <span className="pill pill-active">Primary</span>
                ) : (
                  <span className="pill">Alias</span>
                )}
              </span>
              {canWrite && !e.primary && (
                <button
                  type="button"
                  className="button-plain"
                  disabled={busy}
                  onClick={() =>
                    void run(
                      () =>
                        unwrap(
                          api.POST('/api/v1/people/{id}/emails', {
                            params: { path: { id: person.id } },
                            body: { address: e.address, primary: true },
                          }),
                        ),
                      `${e.address} is the primary address now.`,
                    )
                  }
                >
                  Make primary<span className="visually-hidden"> {e.address}</span>
                </button>
              )}
              {canWrite && (
                <button
                  type="button"
                  className="button-plain danger-text"
                  disabled={busy}
                  onClick={() =>
                    void run(
                      () =>
                        unwrap(
                          api.DELETE('/api/v1/people/{id}/emails/{address}', {
                            params: { path: { id: person.id, address: e.address } },
                          }),
                        ),
                      `${e.address} removed.`,
                    )
                  }
                >
                  Remove<span className="visually-hidden"> {e.address}</span>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {canWrite && (
        <form className="inline-form" onSubmit={add}>
          <label htmlFor="person-new-address">Add an alias</label>
          <input
            id="person-new-address"
            type="email"
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            required
          />
          <button type="submit" className="button" disabled={busy}>
            Add
          </button>
        </form>
      )}
      {feedback}
    </Panel>
  );
}

function Identities({ person, canWrite }: { person: PersonFull; canWrite: boolean }) {
  const [kind, setKind] = useState('');
  const [externalId, setExternalId] = useState('');
  const { busy, run, feedback } = useChange(person.id);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await run(
      () =>
        unwrap(
          api.POST('/api/v1/people/{id}/identities', {
            params: { path: { id: person.id } },
            body: { kind: kind.trim().toLowerCase(), externalId: externalId.trim() },
          }),
        ),
      'Identity linked.',
    );
    if (ok) {
      setKind('');
      setExternalId('');
    }
  };
  return (
    <Panel title="External identities">
      {person.identities.length === 0 ? (
        <p className="muted">No identity of another system is linked.</p>
      ) : (
        <ul className="plain-list">
          {person.identities.map((i) => (
            <li key={`${i.kind}:${i.externalId}`} className="list-row">
              <span className="grow">
                <span className="pill">{i.kind}</span> <code>{i.externalId}</code>
              </span>
              {canWrite && (
                <button
                  type="button"
                  className="button-plain danger-text"
                  disabled={busy}
                  onClick={() =>
                    void run(
                      () =>
                        unwrap(
                          api.DELETE('/api/v1/people/{id}/identities/{kind}/{externalId}', {
                            params: { path: { id: person.id, kind: i.kind, externalId: i.externalId } },
                          }),
                        ),
                      'Identity unlinked.',
                    )
                  }
                >
                  Unlink<span className="visually-hidden"> {`${i.kind} ${i.externalId}`}</span>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {canWrite && (
        <form className="identity-form" onSubmit={add}>
          <div className="field">
            <label htmlFor="identity-kind">System</label>
            <input
              id="identity-kind"
              list="identity-kinds"
              value={kind}
              onChange={(e) => setKind(e.target.value)}
              required
              pattern="[a-zA-Z][a-zA-Z0-9_\-]{1,31}"
              placeholder="teams, slack, entra…"
            />
            <datalist id="identity-kinds">
              {['teams', 'slack', 'entra', 'google', 'oidc', 'github'].map((k) => (
                <option key={k} value={k} />
              ))}
            </datalist>
          </div>
          <div className="field grow">
            <label htmlFor="identity-id">Id there</label>
            <input
              id="identity-id"
              value={externalId}
              onChange={(e) => setExternalId(e.target.value)}
              required
              maxLength={512}
            />
          </div>
          <button type="submit" className="button" disabled={busy}>
            Link
          </button>
        </form>
      )}
      {feedback}
    </Panel>
  );
}

const CHANNELS = Object.keys(CHANNEL_LABELS) as PersonChannel[];

function Notifications({ person, canWrite }: { person: PersonFull; canWrite: boolean }) {
  const [preferred, setPreferred] = useState<string>(person.preferredChannel ?? '');
  const [fallback, setFallback] = useState<PersonChannel[]>(person.notifications.fallback ?? []);
  const [quiet, setQuiet] = useState(Boolean(person.notifications.quietHours));
  const [start, setStart] = useState(person.notifications.quietHours?.start ?? '20:00');
  const [end, setEnd] = useState(person.notifications.quietHours?.end ?? '08:00');
  const { busy, run, feedback } = useChange(person.id);
  const save = (e: FormEvent) => {
    e.preventDefault();
    void run(
      () =>
        patch(person.id, {
          preferredChannel: (preferred || null) as PersonFull['preferredChannel'],
          notifications: { fallback, ...(quiet ? { quietHours: { start, end } } : {}) },
        }),
      'Saved.',
    );
  };
  return (
    <Panel title="Notifications">
      <form onSubmit={save}>
        <div className="field">
          <label htmlFor="person-preferred">Preferred channel</label>
          <select
            id="person-preferred"
            value={preferred}
            onChange={(e) => setPreferred(e.target.value)}
            disabled={!canWrite}
          >
            <option value="">Not set (email)</option>
            {CHANNELS.map((c) => (
              <option key={c} value={c}>
                {CHANNEL_LABELS[c]}
              </option>
            ))}
          </select>
        </div>
        <fieldset className="choice">
          <legend>Then try, in this order</legend>
          {CHANNELS.map((c) => (
            <label key={c}>
              <input
                type="checkbox"
                checked={fallback.includes(c)}
                disabled={!canWrite}
                onChange={(e) =>
                  setFallback((f) => (e.target.checked ? [...f, c] : f.filter((x) => x !== c)))
                }
              />{' '}
              {CHANNEL_LABELS[c]}
              {fallback.includes(c) && <span className="muted"> ({fallback.indexOf(c) + 1})</span>}
            </label>
          ))}
        </fieldset>
        <label className="check-label">
          <input
            type="checkbox"
            checked={quiet}
            disabled={!canWrite}
            onChange={(e) => setQuiet(e.target.checked)}
          />{' '}
          Quiet hours (only SLA breaches get through)
        </label>
        {quiet && (
          <div className="row">
            <label>
              From <input type="time" value={start} onChange={(e) => setStart(e.target.value)} required />
            </label>
            <label>
              to <input type="time" value={end} onChange={(e) => setEnd(e.target.value)} required />
            </label>
            <span className="muted">in {person.timeZone ?? 'UTC'}</span>
          </div>
        )}
        {canWrite && (
          <button type="submit" className="button-primary" disabled={busy}>
            Save notifications
          </button>
        )}
        {feedback}
      </form>
    </Panel>
  );
}

function Tickets({ person }: { person: PersonFull }) {
  const me = useSignedIn();
  const filter = person.kind === 'agent' ? 'assigneeId' : 'requesterId';
  const requested = useQuery({
    queryKey: ['tickets', 'person', person.id, 'requested'],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/tickets', {
          params: { query: { requesterId: person.id, limit: 20 } },
        }),
      ),
    enabled: me.can('tickets:read'),
  });
  const assigned = useQuery({
    queryKey: ['tickets', 'person', person.id, 'assigned'],
    queryFn: () =>
      unwrap(api.GET('/api/v1/tickets', { params: { query: { assigneeId: person.id, limit: 20 } } })),
    enabled: me.can('tickets:read') && filter === 'assigneeId',
  });
  const list = (title: string, query: typeof requested) => (
    <>
      <h4>{title}</h4>
      {query.isPending && <Status>Loading…</Status>}
      {query.isError && <Status kind="error">{describeError(query.error)}</Status>}
      {query.data && query.data.items.length === 0 && <p className="muted">None.</p>}
      {query.data && query.data.items.length > 0 && (
        <ul className="plain-list person-tickets">
          {query.data.items.map((t) => (
            <li key={t.id} className="list-row">
              <Link to={`/tickets/${t.id}`} className="grow">
                <span className="number">{t.number}</span> {t.subject}
              </Link>
              <span className={`badge badge-${t.status}`}>{TICKET_STATUS_LABELS[t.status]}</span>
            </li>
          ))}
          {query.data.nextCursor && <li className="muted">And more.</li>}
        </ul>
      )}
    </>
  );
  if (!me.can('tickets:read')) return null;
  return (
    <Panel title="Tickets">
      {list('Requested', requested)}
      {filter === 'assigneeId' && list('Assigned', assigned)}
    </Panel>
  );
}

function IdentityLog({ person }: { person: PersonFull }) {
  const me = useSignedIn();
  const events = useQuery({
    queryKey: ['person', person.id, 'events'],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/people/{id}/events', {
          params: { path: { id: person.id }, query: { limit: 20 } },
        }),
      ),
  });
  return (
    <Panel title="Identity log">
      {events.isPending && <Status>Loading…</Status>}
      {events.isError && <Status kind="error">{describeError(events.error)}</Status>}
      {events.data && (
        <ol className="plain-list log">
          {events.data.items.map((e) => (
            <li key={e.id}>
              <time dateTime={e.createdAt}>{formatTime(e.createdAt, me.person.timeZone)}</time>{' '}
              <strong>{e.type.replaceAll('_', ' ')}</strong>{' '}
              <span className="muted">
                by{' '}
                {e.actor.startsWith('person:') ? (
                  <PersonLink id={e.actor.slice('person:'.length)} />
                ) : (
                  describeActor(e.actor)
                )}
              </span>
            </li>
          ))}
        </ol>
      )}
    </Panel>
  );
}

function StatusAction({ person }: { person: PersonFull }) {
  const [asking, setAsking] = useState(false);
  const { busy, run, feedback } = useChange(person.id);
  const suspend = person.status !== 'suspended';
  const act = async () => {
    const ok = await run(
      () => patch(person.id, { status: suspend ? 'suspended' : 'active' }),
      suspend ? `${person.displayName} is suspended.` : `${person.displayName} is active again.`,
    );
    if (ok) setAsking(false);
  };
  return (
    <>
      <button
        type="button"
        className={suspend ? 'button-danger' : 'button'}
        onClick={() => (suspend ? setAsking(true) : void act())}
        disabled={busy}
      >
        {suspend ? 'Suspend' : 'Reactivate'}
      </button>
      {!asking && feedback}
      <ConfirmDialog
        isOpen={asking}
        onOpenChange={setAsking}
        title={`Suspend ${person.displayName}?`}
        confirmLabel="Suspend"
        danger
        busy={busy}
        onConfirm={() => void act()}
      >
        <p>
          Their console sessions and API tokens stop working at once, and they receive no notifications.
          Reactivating them later gives everything back.
        </p>
        {feedback}
      </ConfirmDialog>
    </>
  );
}

export function PersonDetail({ id }: { id: string }) {
  const me = useSignedIn();
  const [merging, setMerging] = useState(false);
  const [merged, setMerged] = useState<string | undefined>();
  const person = useQuery({
    queryKey: ['person', id],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id } } })),
  });
  const canWrite = me.can('people:write');
  const back = (
    <Link to="/people" className="back-link">
      ← All people
    </Link>
  );
  if (person.isPending) return <Status>Loading…</Status>;
  if (person.isError)
    return (
      <>
        {back}
        <Status kind="error">{describeError(person.error)}</Status>
      </>
    );
  const p = person.data;
  const isMe = p.id === me.person.id;
  return (
    <div className="person">
      {back}
      <div className="person-head">
        <h2>{p.displayName}</h2>
        <span className="pill">{KIND_LABELS[p.kind]}</span>
        {p.role && p.kind === 'agent' && <span className="pill">{ROLE_LABELS[p.role]}</span>}
        <span className={`pill pill-${p.status}`}>{STATUS_LABELS[p.status]}</span>
      </div>
      <p className="muted person-meta">
        Since {formatTime(p.createdAt, me.person.timeZone)} · <code>{p.id}</code>
      </p>
      {canWrite && (
        <div className="person-actions">
          {p.kind === 'agent' && p.status !== 'suspended' && (
            <InviteButton personId={p.id} name={p.displayName} />
          )}
          {me.can('tokens:manage') && !isMe && <StatusAction person={p} />}
          <button type="button" className="button" onClick={() => setMerging(true)}>
            Merge another person into this one
          </button>
        </div>
      )}
      {merged && (
        <p className="status status-ok" role="status">
          {merged}
        </p>
      )}
      <div className="person-grid">
        <Profile person={p} canWrite={canWrite} />
        <Addresses person={p} canWrite={canWrite} />
        <Identities person={p} canWrite={canWrite} />
        <Notifications person={p} canWrite={canWrite} />
        <Tickets person={p} />
        <IdentityLog person={p} />
      </div>
      {canWrite && <MergeDialog target={p} isOpen={merging} onOpenChange={setMerging} onMerged={setMerged} />}
    </div>
  );
}
