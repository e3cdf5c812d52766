// A policy's form: name and position, conditions, calendar, a grid of targets (priority by metric,
// durations like "4h" or "1d 2h"), warning thresholds, escalation levels with their actions, and
// what a reopened ticket does. Paused statuses are kept as they are (defaults for a new policy).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import type { Body } from '../../api/types.ts';
import { PRIORITIES, PRIORITY_LABELS, type TicketPriority } from '../../api/types.ts';
import { DialogActions, ModalDialog } from '../../lib/Dialogs.tsx';
import { useAgents } from '../../lib/people.tsx';
import { calendarsQuery } from './Calendars.tsx';
import {
  durationText,
  type Escalation,
  type EscalationAction,
  METRIC_LABELS,
  METRICS,
  type MetricKey,
  parseDuration,
  type PolicyRecord,
  shapeOf,
} from './shared.ts';

type PolicyBody = Body<'/api/v1/sla-policies', 'post'>;
type Grid = Record<TicketPriority, Record<MetricKey, string>>;
type ActionKind = 'notify_role' | 'notify_person' | 'reassign' | 'set_priority';
interface ActionRow {
  kind: ActionKind;
  value: string;
}
interface LevelRow {
  percent: string;
  actions: ActionRow[];
}
const ROLES = ['admin', 'agent', 'viewer'];

const toRow = (a: EscalationAction): ActionRow =>
  a.type === 'notify'
    ? a.personId
      ? { kind: 'notify_person', value: a.personId }
      : { kind: 'notify_role', value: a.role ?? 'agent' }
    : a.type === 'reassign'
      ? { kind: 'reassign', value: a.personId }
      : { kind: 'set_priority', value: a.priority };
const toAction = (r: ActionRow): EscalationAction =>
  r.kind === 'notify_role'
    ? { type: 'notify', role: r.value }
    : r.kind === 'notify_person'
      ? { type: 'notify', personId: r.value }
      : r.kind === 'reassign'
        ? { type: 'reassign', personId: r.value }
        : { type: 'set_priority', priority: r.value as TicketPriority };
const defaultValue = (kind: ActionKind, agents: { id: string }[]) =>
  kind === 'notify_role' ? 'agent' : kind === 'set_priority' ? 'urgent' : (agents[0]?.id ?? '');

export function PolicyEditor({
  policy,
  nextPosition,
  onClose,
}: {
  policy?: PolicyRecord;
  nextPosition: number;
  onClose(): void;
}) {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const agents = useAgents();
  const calendars = useQuery(calendarsQuery);
  const mailboxes = useQuery({
    queryKey: ['mailboxes', 'filter'],
    queryFn: () => unwrap(api.GET('/api/v1/mailboxes', { params: { query: { limit: 200 } } })),
    enabled: me.can('mailboxes:manage'),
    staleTime: 300_000,
  });
  const shape = policy ? shapeOf(policy) : undefined;
  const [name, setName] = useState(policy?.name ?? '');
  const [position, setPosition] = useState(String(policy?.position ?? nextPosition));
  const [calendarId, setCalendarId] = useState(policy?.calendarId ?? '');
  const [priorities, setPriorities] = useState<TicketPriority[]>(shape?.conditions.priorities ?? []);
  const [domains, setDomains] = useState((shape?.conditions.requesterDomains ?? []).join(', '));
  const [mailboxIds, setMailboxIds] = useState<string[]>(shape?.conditions.mailboxIds ?? []);
  const [grid, setGrid] = useState<Grid>(
    () =>
      Object.fromEntries(
        PRIORITIES.map((p) => [
          p,
          Object.fromEntries(METRICS.map((m) => [m, durationText(shape?.targets[p]?.[m])])),
        ]),
      ) as Grid,
  );
  const [thresholds, setThresholds] = useState((policy?.thresholds ?? [50, 75, 90, 100]).join(', '));
  const [reopen, setReopen] = useState(policy?.reopen === 'restart' ? 'restart' : 'continue');
  const [levels, setLevels] = useState<LevelRow[]>(
    (shape?.escalations ?? []).map((l: Escalation) => ({
      percent: String(l.percent),
      actions: l.actions.map(toRow),
    })),
  );
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();

  const setLevel = (i: number, change: (l: LevelRow) => LevelRow) =>
    setLevels((ls) => ls.map((l, j) => (j === i ? change(l) : l)));

  const build = (): PolicyBody => {
    const targets: Record<string, Record<string, number>> = {};
    for (const p of PRIORITIES)
      for (const m of METRICS) {
        const seconds = parseDuration(grid[p][m]);
        if (seconds === undefined) continue;
        if (Number.isNaN(seconds))
          throw new Error(
            `${PRIORITY_LABELS[p]} ${METRIC_LABELS[m].toLowerCase()}: "${grid[p][m]}" is not a duration like 4h, 30m or 1d 2h`,
          );
        (targets[p] ??= {})[m] = seconds;
      }
    if (Object.keys(targets).length === 0) throw new Error('Give at least one target.');
    const levelsOut = levels.map((l) => {
      const percent = Number(l.percent);
      if (!Number.isInteger(percent) || percent < 1 || percent > 1000)
        throw new Error(
          `An escalation's percentage must be a whole number from 1 to 1000, not "${l.percent}".`,
        );
      if (l.actions.length === 0) throw new Error(`The escalation at ${percent} % has no action.`);
      return { percent, actions: l.actions.map(toAction) };
    });
    const list = domains
      .split(/[\s,]+/)
      .map((d) => d.trim())
      .filter(Boolean);
    return {
      name: name.trim(),
      position: Number(position),
      calendarId: calendarId || null,
      conditions: {
        ...(priorities.length ? { priorities } : {}),
        ...(list.length ? { requesterDomains: list } : {}),
        ...(mailboxIds.length ? { mailboxIds } : {}),
      },
      targets: targets as PolicyBody['targets'],
      thresholds: thresholds
        .split(/[\s,%]+/)
        .filter(Boolean)
        .map(Number),
      escalations: levelsOut as PolicyBody['escalations'],
      reopen: reopen as 'continue' | 'restart',
      ...(shape ? { pauseStatuses: shape.pauseStatuses as PolicyBody['pauseStatuses'] } : {}),
    };
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    let body: PolicyBody;
    try {
      body = build();
    } catch (err) {
      return setError((err as Error).message);
    }
    setBusy(true);
    try {
      if (policy)
        await unwrap(api.PUT('/api/v1/sla-policies/{id}', { params: { path: { id: policy.id } }, body }));
      else await unwrap(api.POST('/api/v1/sla-policies', { body }));
      await queryClient.invalidateQueries({ queryKey: ['sla-policies'] });
      onClose();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const actionValue = (row: ActionRow, onChange: (value: string) => void, label: string) => {
    if (row.kind === 'notify_role')
      return (
        <select aria-label={label} value={row.value} onChange={(e) => onChange(e.target.value)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              every {r}
            </option>
          ))}
        </select>
      );
    if (row.kind === 'set_priority')
      return (
        <select aria-label={label} value={row.value} onChange={(e) => onChange(e.target.value)}>
          {PRIORITIES.map((p) => (
            <option key={p} value={p}>
              {PRIORITY_LABELS[p]}
            </option>
          ))}
        </select>
      );
    return (
      <select aria-label={label} value={row.value} onChange={(e) => onChange(e.target.value)} required>
        {!agents.some((a) => a.id === row.value) && (
          <option value={row.value}>{row.value ? 'Someone else' : 'Choose…'}</option>
        )}
        {agents.map((a) => (
          <option key={a.id} value={a.id}>
            {a.displayName}
          </option>
        ))}
      </select>
    );
  };

  return (
    <ModalDialog
      isOpen
      onOpenChange={(open) => !open && !busy && onClose()}
      title={policy ? `Edit ${policy.name}` : 'New SLA policy'}
      wide
    >
      <form onSubmit={submit} className="policy-form">
        <div className="form-pair">
          <div className="field">
            <label htmlFor="policy-name">Name</label>
            <input
              id="policy-name"
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              maxLength={200}
            />
          </div>
          <div className="field">
            <label htmlFor="policy-position">Position</label>
            <span className="field-hint" id="policy-position-hint">
              Lower is tried first.
            </span>
            <input
              id="policy-position"
              type="number"
              min={0}
              max={1000000}
              value={position}
              aria-describedby="policy-position-hint"
              onChange={(e) => setPosition(e.target.value)}
              required
            />
          </div>
        </div>
        <div className="field">
          <label htmlFor="policy-calendar">Business hours</label>
          <select id="policy-calendar" value={calendarId} onChange={(e) => setCalendarId(e.target.value)}>
            <option value="">Every hour of every day (no calendar)</option>
            {calendars.data?.items.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </div>
        <fieldset className="group">
          <legend>Applies to (all when empty)</legend>
          <div className="choice choice-row" role="group" aria-label="Priorities">
            {PRIORITIES.map((p) => (
              <label key={p}>
                <input
                  type="checkbox"
                  checked={priorities.includes(p)}
                  onChange={(e) =>
                    setPriorities((ps) => (e.target.checked ? [...ps, p] : ps.filter((x) => x !== p)))
                  }
                />
                {PRIORITY_LABELS[p]}
              </label>
            ))}
          </div>
          <div className="field">
            <label htmlFor="policy-domains">Requester domains</label>
            <input
              id="policy-domains"
              value={domains}
              onChange={(e) => setDomains(e.target.value)}
              placeholder="example.com, example.org"
            />
          </div>
          {mailboxes.data && mailboxes.data.items.length > 0 && (
            <div className="choice" role="group" aria-label="Mailboxes">
              {mailboxes.data.items.map((m) => (
                <label key={m.id}>
                  <input
                    type="checkbox"
                    checked={mailboxIds.includes(m.id)}
                    onChange={(e) =>
                      setMailboxIds((ids) =>
                        e.target.checked ? [...ids, m.id] : ids.filter((x) => x !== m.id),
                      )
                    }
                  />
                  {m.address}
                </label>
              ))}
            </div>
          )}
        </fieldset>
        <fieldset className="group">
          <legend>Targets in business time</legend>
          <p className="field-hint">Like 30m, 4h or 1d 2h; a bare number is minutes; empty is no target.</p>
          <div className="table-scroll">
            <table className="data-table target-grid">
              <thead>
                <tr>
                  <th scope="col">Priority</th>
                  {METRICS.map((m) => (
                    <th key={m} scope="col">
                      {METRIC_LABELS[m]}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {PRIORITIES.map((p) => (
                  <tr key={p}>
                    <th scope="row">{PRIORITY_LABELS[p]}</th>
                    {METRICS.map((m) => (
                      <td key={m}>
                        <input
                          aria-label={`${PRIORITY_LABELS[p]} ${METRIC_LABELS[m].toLowerCase()}`}
                          value={grid[p][m]}
                          size={8}
                          onChange={(e) => setGrid((g) => ({ ...g, [p]: { ...g[p], [m]: e.target.value } }))}
                        />
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </fieldset>
        <div className="form-pair">
          <div className="field">
            <label htmlFor="policy-thresholds">Warnings at (percent)</label>
            <span className="field-hint" id="policy-thresholds-hint">
              Must include 100, the breach.
            </span>
            <input
              id="policy-thresholds"
              value={thresholds}
              aria-describedby="policy-thresholds-hint"
              onChange={(e) => setThresholds(e.target.value)}
              required
            />
          </div>
          <div className="field">
            <label htmlFor="policy-reopen">When a solved ticket reopens</label>
            <select id="policy-reopen" value={reopen} onChange={(e) => setReopen(e.target.value)}>
              <option value="continue">Resolution time continues</option>
              <option value="restart">Resolution time restarts</option>
            </select>
          </div>
        </div>
        <fieldset className="group">
          <legend>Escalations</legend>
          {levels.length === 0 && <p className="muted">None.</p>}
          {levels.map((level, i) => (
            <div key={i} className="level" role="group" aria-label={`Escalation ${i + 1}`}>
              <div className="row">
                <label>
                  At{' '}
                  <input
                    type="number"
                    min={1}
                    max={1000}
                    value={level.percent}
                    size={5}
                    onChange={(e) => setLevel(i, (l) => ({ ...l, percent: e.target.value }))}
                    required
                  />{' '}
                  % of the target
                </label>
                <button
                  type="button"
                  className="button-plain danger-text"
                  onClick={() => setLevels((ls) => ls.filter((_, j) => j !== i))}
                >
                  Remove escalation {i + 1}
                </button>
              </div>
              {level.actions.map((a, k) => (
                <div key={k} className="row action-row">
                  <select
                    aria-label={`Escalation ${i + 1}, action ${k + 1}`}
                    value={a.kind}
                    onChange={(e) => {
                      const kind = e.target.value as ActionKind;
                      setLevel(i, (l) => ({
                        ...l,
                        actions: l.actions.map((x, j) =>
                          j === k ? { kind, value: defaultValue(kind, agents) } : x,
                        ),
                      }));
                    }}
                  >
                    <option value="notify_role">Notify a role</option>
                    <option value="notify_person">Notify a person</option>
                    <option value="reassign">Reassign to</option>
                    <option value="set_priority">Set the priority to</option>
                  </select>
                  {actionValue(
                    a,
                    (value) =>
                      setLevel(i, (l) => ({
                        ...l,
                        actions: l.actions.map((x, j) => (j === k ? { ...x, value } : x)),
                      })),
                    `Escalation ${i + 1}, action ${k + 1}: whom or what`,
                  )}
                  <button
                    type="button"
                    className="button-plain"
                    onClick={() =>
                      setLevel(i, (l) => ({ ...l, actions: l.actions.filter((_, j) => j !== k) }))
                    }
                  >
                    Remove action {k + 1}
                  </button>
                </div>
              ))}
              <button
                type="button"
                className="button-plain"
                onClick={() =>
                  setLevel(i, (l) => ({
                    ...l,
                    actions: [...l.actions, { kind: 'notify_role', value: 'admin' }],
                  }))
                }
              >
                Add an action to escalation {i + 1}
              </button>
            </div>
          ))}
          <button
            type="button"
            className="button"
            onClick={() =>
              setLevels((ls) => [
                ...ls,
                { percent: '120', actions: [{ kind: 'notify_role', value: 'admin' }] },
              ])
            }
          >
            Add an escalation
          </button>
        </fieldset>
        {error && (
          <p className="status status-error" role="alert">
            {error}
          </p>
        )}
        <DialogActions submitLabel={policy ? 'Save policy' : 'Create policy'} busy={busy} />
      </form>
    </ModalDialog>
  );
}
