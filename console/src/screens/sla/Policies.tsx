// The SLA policies in the order they are tried: each with its conditions, calendar, targets per
// priority, warning thresholds, escalations, paused statuses and what a reopened ticket does.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { PRIORITIES, PRIORITY_LABELS, STATUS_LABELS } from '../../api/types.ts';
import { ConfirmDialog } from '../../lib/Dialogs.tsx';
import { Status } from '../../shell/Page.tsx';
import { PersonLink } from '../people/PersonLink.tsx';
import { calendarsQuery } from './Calendars.tsx';
import { PolicyEditor } from './PolicyEditor.tsx';
import {
  durationText,
  type EscalationAction,
  METRIC_LABELS,
  METRICS,
  type PolicyRecord,
  shapeOf,
} from './shared.ts';

export const policiesQuery = {
  queryKey: ['sla-policies'],
  queryFn: () => unwrap(api.GET('/api/v1/sla-policies')),
};

function ActionText({ action }: { action: EscalationAction }) {
  if (action.type === 'set_priority') return <>set the priority to {PRIORITY_LABELS[action.priority]}</>;
  if (action.type === 'reassign')
    return (
      <>
        reassign to <PersonLink id={action.personId} />
      </>
    );
  return action.personId ? (
    <>
      notify <PersonLink id={action.personId} />
    </>
  ) : (
    <>notify every {action.role}</>
  );
}

function PolicyCard({
  policy,
  calendarName,
  onEdit,
}: {
  policy: PolicyRecord;
  calendarName: string;
  onEdit(): void;
}) {
  const queryClient = useQueryClient();
  const shape = shapeOf(policy);
  const [deleting, setDeleting] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const c = shape.conditions;
  const conditions = [
    c.priorities?.length ? `priority ${c.priorities.map((p) => PRIORITY_LABELS[p]).join(' or ')}` : '',
    c.requesterDomains?.length ? `requester at ${c.requesterDomains.join(', ')}` : '',
    c.mailboxIds?.length ? `${c.mailboxIds.length} mailbox${c.mailboxIds.length === 1 ? '' : 'es'}` : '',
  ].filter(Boolean);
  const priorities = PRIORITIES.filter((p) => shape.targets[p]);
  const paused = METRICS.filter((m) => (shape.pauseStatuses[m] ?? []).length > 0);
  const remove = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await unwrap(api.DELETE('/api/v1/sla-policies/{id}', { params: { path: { id: policy.id } } }));
      setDeleting(false);
      await queryClient.invalidateQueries({ queryKey: ['sla-policies'] });
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel policy" aria-labelledby={`policy-${policy.id}`}>
      <div className="panel-head">
        <h2 id={`policy-${policy.id}`}>
          <span className="muted policy-position">#{policy.position}</span> {policy.name}
        </h2>
        <div className="row">
          <button type="button" className="button" onClick={onEdit}>
            Edit<span className="visually-hidden"> {policy.name}</span>
          </button>
          <button type="button" className="button-plain danger-text" onClick={() => setDeleting(true)}>
            Delete<span className="visually-hidden"> {policy.name}</span>
          </button>
        </div>
      </div>
      <dl className="facts">
        <dt>Applies to</dt>
        <dd>{conditions.length ? conditions.join('; ') : 'every ticket with a target for its priority'}</dd>
        <dt>Counts on</dt>
        <dd>{calendarName}</dd>
        <dt>Warnings at</dt>
        <dd>{policy.thresholds.map((t) => `${t} %`).join(', ')} (100 % is the breach)</dd>
        <dt>Clocks pause</dt>
        <dd>
          {paused.length === 0
            ? 'never'
            : paused
                .map(
                  (m) =>
                    `${METRIC_LABELS[m].toLowerCase()} while ${(shape.pauseStatuses[m] ?? []).map((s) => STATUS_LABELS[s].toLowerCase()).join(' or ')}`,
                )
                .join('; ')}
        </dd>
        <dt>On reopen</dt>
        <dd>{policy.reopen === 'restart' ? 'resolution restarts' : 'resolution continues'}</dd>
      </dl>
      <div className="table-scroll">
        <table className="data-table targets">
          <caption className="visually-hidden">Targets of {policy.name}</caption>
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
            {priorities.map((p) => (
              <tr key={p}>
                <th scope="row">{PRIORITY_LABELS[p]}</th>
                {METRICS.map((m) => (
                  <td key={m}>{durationText(shape.targets[p]?.[m]) || <span className="muted">—</span>}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shape.escalations.length > 0 && (
        <>
          <h3>Escalations</h3>
          <ul className="escalations">
            {[...shape.escalations]
              .sort((a, b) => a.percent - b.percent)
              .map((level) => (
                <li key={level.percent}>
                  At {level.percent} %:{' '}
                  {level.actions.map((a, i) => (
                    <span key={i}>
                      {i > 0 && ', '}
                      <ActionText action={a} />
                    </span>
                  ))}
                </li>
              ))}
          </ul>
        </>
      )}
      <ConfirmDialog
        isOpen={deleting}
        onOpenChange={setDeleting}
        title={`Delete ${policy.name}?`}
        confirmLabel="Delete"
        danger
        busy={busy}
        error={error}
        onConfirm={() => void remove()}
      >
        <p>Open tickets under this policy are re-evaluated at once under the policies that remain.</p>
      </ConfirmDialog>
    </section>
  );
}

export function Policies() {
  const policies = useQuery(policiesQuery);
  const calendars = useQuery(calendarsQuery);
  const [editing, setEditing] = useState<PolicyRecord | 'new' | undefined>();
  const calendarName = (id: string | null) =>
    id === null
      ? 'every hour of every day (no calendar)'
      : (calendars.data?.items.find((c) => c.id === id)?.name ?? 'a calendar');
  const items = policies.data?.items ?? [];
  return (
    <>
      <div className="toolbar">
        <p className="muted">
          A ticket gets the first policy, by position, whose conditions it meets and that has targets for its
          priority.
        </p>
        <button type="button" className="button-primary" onClick={() => setEditing('new')}>
          New policy
        </button>
      </div>
      {policies.isPending && <Status>Loading policies…</Status>}
      {policies.isError && <Status kind="error">{describeError(policies.error)}</Status>}
      {policies.isSuccess && items.length === 0 && <Status>No policy yet: tickets have no SLA.</Status>}
      {items.map((p) => (
        <PolicyCard
          key={p.id}
          policy={p}
          calendarName={calendarName(p.calendarId)}
          onEdit={() => setEditing(p)}
        />
      ))}
      {editing && (
        <PolicyEditor
          policy={editing === 'new' ? undefined : editing}
          nextPosition={items.reduce((n, p) => Math.max(n, p.position + 10), 10)}
          onClose={() => setEditing(undefined)}
        />
      )}
    </>
  );
}
