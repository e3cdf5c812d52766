// A calendar's week of business hours: seven columns with the opening windows drawn to scale (for
// the eye), and the same as a table for screen readers. A window that ends at or before its start
// runs overnight into the next day, as the calendar format says.
import { type CalendarSpec, DAY_NAMES, WEEK, type Weekday } from './shared.ts';

const minutes = (hhmm: string) => {
  const [h = 0, m = 0] = hhmm.split(':').map(Number);
  return h * 60 + m;
};
const DAY = 24 * 60;

/** Per weekday, the [start, end) minute ranges drawn in its column. */
function segments(spec: CalendarSpec): Record<Weekday, [number, number][]> {
  const out = Object.fromEntries(WEEK.map((d) => [d, [] as [number, number][]])) as Record<
    Weekday,
    [number, number][]
  >;
  WEEK.forEach((day, i) => {
    for (const [from, to] of spec.weekly?.[day] ?? []) {
      const start = minutes(from);
      const end = minutes(to);
      if (end > start) out[day].push([start, end]);
      else {
        out[day].push([start, DAY]);
        if (end > 0) out[WEEK[(i + 1) % 7]!].push([0, end]);
      }
    }
  });
  return out;
}

const hours = (spec: CalendarSpec, day: Weekday): string => {
  if (spec.alwaysOpen) return 'Open all day';
  const windows = spec.weekly?.[day] ?? [];
  if (windows.length === 0) return 'Closed';
  return windows
    .map(([from, to]) => `${from}–${to}${minutes(to) <= minutes(from) ? ' (into the next day)' : ''}`)
    .join(', ');
};

export function WeekView({ spec, name }: { spec: CalendarSpec; name: string }) {
  const drawn = spec.alwaysOpen
    ? (Object.fromEntries(WEEK.map((d) => [d, [[0, DAY]]])) as Record<Weekday, [number, number][]>)
    : segments(spec);
  return (
    <div className="week">
      <div className="week-grid" aria-hidden="true">
        <div className="week-scale">
          {[0, 6, 12, 18, 24].map((h) => (
            <span key={h} style={{ top: `${(h / 24) * 100}%` }}>
              {String(h).padStart(2, '0')}
            </span>
          ))}
        </div>
        {WEEK.map((day) => (
          <div key={day} className="week-day">
            <div className="week-day-name" title={DAY_NAMES[day]}>
              {DAY_NAMES[day].slice(0, 3)}
            </div>
            <div className="week-column" title={`${DAY_NAMES[day]}: ${hours(spec, day)}`}>
              {drawn[day].map(([start, end]) => (
                <div
                  key={`${start}-${end}`}
                  className="week-open"
                  style={{ top: `${(start / DAY) * 100}%`, height: `${((end - start) / DAY) * 100}%` }}
                />
              ))}
            </div>
          </div>
        ))}
      </div>
      <table className="visually-hidden">
        <caption>Opening hours of {name}</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            <th scope="col">Open</th>
          </tr>
        </thead>
        <tbody>
          {WEEK.map((day) => (
            <tr key={day}>
              <th scope="row">{DAY_NAMES[day]}</th>
              <td>{hours(spec, day)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
