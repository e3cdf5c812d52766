// A calendar's form: name, time zone, the opening windows of each weekday ("09:00-17:00, 18:00-20:00";
// a window ending at or before its start runs overnight), or open around the clock, and holidays.
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { DialogActions, ModalDialog } from '../../lib/Dialogs.tsx';
import { type CalendarRecord, type CalendarSpec, DAY_NAMES, WEEK, type Weekday } from './shared.ts';

const windowsText = (w: [string, string][] | undefined) => (w ?? []).map(([a, b]) => `${a}-${b}`).join(', ');

/** "09:00-12:00, 13:00-17:30" as windows; throws a sentence for anything else. */
function parseWindows(day: string, text: string): [string, string][] {
  const parts = text
    .split(/[,;]/)
    .map((p) => p.trim())
    .filter(Boolean);
  return parts.map((p) => {
    const m = /^(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$/.exec(p);
    if (!m) throw new Error(`${day}: "${p}" is not a window like 09:00-17:00`);
    return [m[1]!.padStart(5, '0'), m[2]!.padStart(5, '0')];
  });
}
const lines = (text: string) =>
  text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter(Boolean);

let zones: string[] | undefined;
const timeZones = () => (zones ??= Intl.supportedValuesOf('timeZone'));

export function CalendarEditor({ calendar, onClose }: { calendar?: CalendarRecord; onClose(): void }) {
  const queryClient = useQueryClient();
  const spec = (calendar?.calendar ?? {}) as unknown as Partial<CalendarSpec>;
  const [name, setName] = useState(calendar?.name ?? '');
  const [timeZone, setTimeZone] = useState(spec.timeZone ?? 'UTC');
  const [alwaysOpen, setAlwaysOpen] = useState(spec.alwaysOpen === true);
  const [week, setWeek] = useState<Record<Weekday, string>>(
    () =>
      Object.fromEntries(
        WEEK.map((d) => [
          d,
          calendar ? windowsText(spec.weekly?.[d]) : ['sat', 'sun'].includes(d) ? '' : '09:00-17:00',
        ]),
      ) as Record<Weekday, string>,
  );
  const [holidays, setHolidays] = useState((spec.holidays ?? []).join('\n'));
  const [recurring, setRecurring] = useState((spec.recurringHolidays ?? []).join('\n'));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    let body: Record<string, unknown>;
    try {
      body = {
        ...(name.trim() ? { name: name.trim() } : {}),
        timeZone: timeZone.trim(),
        ...(alwaysOpen
          ? { alwaysOpen: true }
          : {
              weekly: Object.fromEntries(
                WEEK.map((d) => [d, parseWindows(DAY_NAMES[d], week[d])] as const).filter(
                  ([, w]) => w.length > 0,
                ),
              ),
            }),
        holidays: lines(holidays),
        recurringHolidays: lines(recurring),
      };
    } catch (err) {
      return setError((err as Error).message);
    }
    setBusy(true);
    try {
      if (calendar)
        await unwrap(api.PUT('/api/v1/calendars/{id}', { params: { path: { id: calendar.id } }, body }));
      else await unwrap(api.POST('/api/v1/calendars', { body }));
      await queryClient.invalidateQueries({ queryKey: ['calendars'] });
      onClose();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <ModalDialog
      isOpen
      onOpenChange={(open) => !open && !busy && onClose()}
      title={calendar ? `Edit ${calendar.name}` : 'New calendar'}
      wide
    >
      <form onSubmit={submit} className="calendar-form">
        <div className="form-pair">
          <div className="field">
            <label htmlFor="calendar-name">Name</label>
            <input
              id="calendar-name"
              value={name}
              onChange={(e) => setName(e.target.value)}
              maxLength={200}
              placeholder={`${timeZone} calendar`}
            />
          </div>
          <div className="field">
            <label htmlFor="calendar-zone">Time zone</label>
            <input
              id="calendar-zone"
              list="calendar-zones"
              value={timeZone}
              onChange={(e) => setTimeZone(e.target.value)}
              required
            />
            <datalist id="calendar-zones">
              {timeZones().map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
          </div>
        </div>
        <label className="check-label">
          <input type="checkbox" checked={alwaysOpen} onChange={(e) => setAlwaysOpen(e.target.checked)} />{' '}
          Open around the clock (holidays still count)
        </label>
        {!alwaysOpen && (
          <fieldset className="weekdays">
            <legend>Opening hours</legend>
            <p className="field-hint" id="calendar-hours-hint">
              Windows like 09:00-12:00, 13:00-17:00; empty is closed. A window that ends at or before its
              start runs into the next day.
            </p>
            {WEEK.map((d) => (
              <div key={d} className="weekday-row">
                <label htmlFor={`calendar-${d}`}>{DAY_NAMES[d]}</label>
                <input
                  id={`calendar-${d}`}
                  value={week[d]}
                  aria-describedby="calendar-hours-hint"
                  onChange={(e) => setWeek((w) => ({ ...w, [d]: e.target.value }))}
                  placeholder="Closed"
                />
              </div>
            ))}
          </fieldset>
        )}
        <div className="form-pair">
          <div className="field">
            <label htmlFor="calendar-holidays">Holidays</label>
            <span className="field-hint" id="calendar-holidays-hint">
              One date a line, YYYY-MM-DD.
            </span>
            <textarea
              id="calendar-holidays"
              rows={4}
              value={holidays}
              aria-describedby="calendar-holidays-hint"
              onChange={(e) => setHolidays(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="calendar-recurring">Every year on</label>
            <span className="field-hint" id="calendar-recurring-hint">
              One day a line, MM-DD (12-25).
            </span>
            <textarea
              id="calendar-recurring"
              rows={4}
              value={recurring}
              aria-describedby="calendar-recurring-hint"
              onChange={(e) => setRecurring(e.target.value)}
            />
          </div>
        </div>
        {error && (
          <p className="status status-error" role="alert">
            {error}
          </p>
        )}
        <DialogActions submitLabel={calendar ? 'Save calendar' : 'Create calendar'} busy={busy} />
      </form>
    </ModalDialog>
  );
}
