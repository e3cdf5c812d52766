// The ticket's SLA clocks: for each metric, its state, its due time with a live countdown, and a bar
// of the target used so far with a mark at each threshold (filled once the scheduler fired it).
import { useQuery } from '@tanstack/react-query';
import { api, describeError, unwrap } from '../../api/client.ts';
import type { TicketSla } from '../../api/types.ts';
import { formatDuration, formatTime, useNow } from '../../lib/time.ts';

const METRICS: Record<string, string> = {
  first_response: 'First response',
  next_response: 'Next response',
  resolution: 'Resolution',
};
const STATES: Record<string, string> = {
  active: 'Running',
  paused: 'Paused',
  fulfilled: 'Met',
  breached: 'Breached',
};

type Clock = TicketSla['metrics'][number];

function ClockView({ clock, now, timeZone }: { clock: Clock; now: number; timeZone: string | null }) {
  const due = clock.dueAt ? Date.parse(clock.dueAt) : undefined;
  const running = clock.status === 'active';
  const overdue = running && due !== undefined && due <= now;
  const state = overdue ? 'breached' : clock.status;
  // Between answers the bar moves with the wall clock: a close enough guess for a running clock.
  const percent = Math.max(0, clock.percent);
  const name = `${METRICS[clock.metric] ?? clock.metric}${clock.cycle > 1 ? ` (${clock.cycle})` : ''}`;
  return (
    <li
      className={`clock clock-${state}`}
      data-metric={clock.metric}
      data-state={state}
      data-status={clock.status}
    >
      <div className="clock-head">
        <strong>{name}</strong>
        <span className={`badge sla-badge-${state}`}>{STATES[state] ?? state}</span>
      </div>
      {running && due !== undefined && (
        <p className="clock-due">
          {overdue ? (
            <>
              Overdue by <span className="countdown">{formatDuration((now - due) / 1000)}</span>
            </>
          ) : (
            <>
              Due in <span className="countdown">{formatDuration((due - now) / 1000)}</span>
            </>
          )}{' '}
          <span className="muted">({formatTime(clock.dueAt, timeZone)})</span>
        </p>
      )}
      {clock.status === 'paused' && (
        <p className="clock-due muted">Paused; {formatDuration(clock.remainingSeconds)} left</p>
      )}
      {clock.status === 'fulfilled' && clock.fulfilledAt && (
        <p className="clock-due muted">Met at {formatTime(clock.fulfilledAt, timeZone)}</p>
      )}
      {clock.status === 'breached' && clock.breachedAt && (
        <p className="clock-due">Breached at {formatTime(clock.breachedAt, timeZone)}</p>
      )}
      <div
        className="clock-bar"
        role="meter"
        aria-label={`${name}: share of the target used`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.min(100, Math.round(percent))}
        aria-valuetext={`${Math.round(percent)} percent of ${formatDuration(clock.targetSeconds)}`}
      >
        <div className="clock-fill" style={{ width: `${Math.min(100, percent)}%` }} />
        {clock.thresholds
          .filter((t) => t.percent <= 100)
          .map((t) => (
            <span
              key={t.percent}
              className={t.firedAt ? 'clock-mark clock-mark-fired' : 'clock-mark'}
              style={{ left: `${t.percent}%` }}
              title={`${t.percent}%${t.firedAt ? ` reached ${formatTime(t.firedAt, timeZone)}` : t.dueAt ? ` at ${formatTime(t.dueAt, timeZone)}` : ''}`}
            />
          ))}
      </div>
      <p className="clock-foot muted">
        {Math.round(percent)}% of {formatDuration(clock.targetSeconds)}
        {clock.thresholds.some((t) => t.firedAt) &&
          ` · reached ${clock.thresholds
            .filter((t) => t.firedAt)
            .map((t) => `${t.percent}%`)
            .join(', ')}`}
      </p>
    </li>
  );
}

export function SlaClocks({ ticketId, timeZone }: { ticketId: string; timeZone: string | null }) {
  const now = useNow(1000);
  const sla = useQuery({
    queryKey: ['ticket', ticketId, 'sla'],
    queryFn: () => unwrap(api.GET('/api/v1/tickets/{id}/sla', { params: { path: { id: ticketId } } })),
    refetchInterval: 60_000,
  });
  return (
    <section className="panel" aria-labelledby="sla-title">
      <h2 id="sla-title">SLA</h2>
      {sla.isError && <p className="status status-error">{describeError(sla.error)}</p>}
      {sla.data && sla.data.metrics.length === 0 && (
        <p className="muted">No SLA policy applies to this ticket.</p>
      )}
      {sla.data && sla.data.metrics.length > 0 && (
        <ul className="clocks">
          {sla.data.metrics.map((c) => (
            <ClockView key={`${c.metric}-${c.cycle}`} clock={c} now={now} timeZone={timeZone} />
          ))}
        </ul>
      )}
    </section>
  );
}
