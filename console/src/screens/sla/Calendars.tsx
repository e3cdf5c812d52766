// The business calendars: each with its week of opening hours and its holidays; new, edit, delete.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { ConfirmDialog } from '../../lib/Dialogs.tsx';
import { Status } from '../../shell/Page.tsx';
import { CalendarEditor } from './CalendarEditor.tsx';
import { type CalendarRecord, type CalendarSpec } from './shared.ts';
import { WeekView } from './WeekView.tsx';

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeZone: 'UTC' });
const dayMonth = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', timeZone: 'UTC' });
const holiday = (ymd: string) => {
  const at = Date.parse(`${ymd}T00:00:00Z`);
  return Number.isNaN(at) ? ymd : dateFormat.format(at);
};
const recurring = (md: string) => {
  const at = Date.parse(`2000-${md}T00:00:00Z`);
  return Number.isNaN(at) ? md : `Every ${dayMonth.format(at)}`;
};

export const calendarsQuery = {
  queryKey: ['calendars'],
  queryFn: () => unwrap(api.GET('/api/v1/calendars', { params: { query: { limit: 200 } } })),
};

function CalendarCard({ calendar, onEdit }: { calendar: CalendarRecord; onEdit(): void }) {
  const queryClient = useQueryClient();
  const spec = calendar.calendar as unknown as CalendarSpec;
  const [deleting, setDeleting] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const holidays = [...(spec.holidays ?? [])].sort();
  const yearly = [...(spec.recurringHolidays ?? [])].sort();
  const remove = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await unwrap(api.DELETE('/api/v1/calendars/{id}', { params: { path: { id: calendar.id } } }));
      setDeleting(false);
      await queryClient.invalidateQueries({ queryKey: ['calendars'] });
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel calendar" aria-labelledby={`calendar-${calendar.id}`}>
      <div className="panel-head">
        <h2 id={`calendar-${calendar.id}`}>{calendar.name}</h2>
        <div className="row">
          <button type="button" className="button" onClick={onEdit}>
            Edit<span className="visually-hidden"> {calendar.name}</span>
          </button>
          <button type="button" className="button-plain danger-text" onClick={() => setDeleting(true)}>
            Delete<span className="visually-hidden"> {calendar.name}</span>
          </button>
        </div>
      </div>
      <p className="muted">
        Time zone {spec.timeZone}
        {spec.alwaysOpen ? ' · open around the clock' : ''}
      </p>
      <div className="calendar-body">
        <WeekView spec={spec} name={calendar.name} />
        <div className="holidays">
          <h3>Holidays</h3>
          {holidays.length === 0 && yearly.length === 0 ? (
            <p className="muted">None.</p>
          ) : (
            <ul>
              {yearly.map((md) => (
                <li key={`r${md}`}>{recurring(md)}</li>
              ))}
              {holidays.map((d) => (
                <li key={d}>
                  <time dateTime={d}>{holiday(d)}</time>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
      <ConfirmDialog
        isOpen={deleting}
        onOpenChange={setDeleting}
        title={`Delete ${calendar.name}?`}
        confirmLabel="Delete"
        danger
        busy={busy}
        error={error}
        onConfirm={() => void remove()}
      >
        <p>A calendar that a policy uses cannot be deleted: point the policy at another calendar first.</p>
      </ConfirmDialog>
    </section>
  );
}

export function Calendars() {
  const calendars = useQuery(calendarsQuery);
  const [editing, setEditing] = useState<CalendarRecord | 'new' | undefined>();
  return (
    <>
      <div className="toolbar">
        <p className="muted">
          Business hours and holidays that SLA targets count on. Times are in each calendar&apos;s time zone.
        </p>
        <button type="button" className="button-primary" onClick={() => setEditing('new')}>
          New calendar
        </button>
      </div>
      {calendars.isPending && <Status>Loading calendars…</Status>}
      {calendars.isError && <Status kind="error">{describeError(calendars.error)}</Status>}
      {calendars.data?.items.length === 0 && (
        <Status>No calendar yet: policies without one count every hour of every day.</Status>
      )}
      {calendars.data?.items.map((c) => (
        <CalendarCard key={c.id} calendar={c} onEdit={() => setEditing(c)} />
      ))}
      {editing && (
        <CalendarEditor
          calendar={editing === 'new' ? undefined : editing}
          onClose={() => setEditing(undefined)}
        />
      )}
    </>
  );
}
