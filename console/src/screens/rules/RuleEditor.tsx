// A notification rule's form: the event, who hears of it (the ticket's assignee, requester or
// watchers, everyone with a role, or named people), on which channel (with a fixed destination for
// Teams, Slack and webhooks), the fallback order, conditions, and whether it is on.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { PRIORITIES, PRIORITY_LABELS, type TicketPriority } from '../../api/types.ts';
import { DialogActions, ModalDialog } from '../../lib/Dialogs.tsx';
import { useAgents } from '../../lib/people.tsx';
import {
  CHANNEL_LABELS,
  EVENT_LABELS,
  FALLBACKS,
  type FallbackChannel,
  type Recipient,
  ROLES,
  type Rule,
  type RuleBody,
  type RuleChannel,
  type RuleEvent,
} from './shared.ts';

const SIMPLE = [
  ['assignee', "The ticket's assignee"],
  ['requester', "The ticket's requester"],
  ['watchers', 'Watchers (other agents who wrote on the ticket)'],
] as const;

export function RuleEditor({ rule, onClose }: { rule?: Rule; onClose(): void }) {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const agents = useAgents();
  const endpoints = useQuery({
    queryKey: ['webhook-endpoints'],
    queryFn: () => unwrap(api.GET('/api/v1/webhook-endpoints', { params: { query: { limit: 200 } } })),
    enabled: me.can('webhooks:manage'),
  });
  const mailboxes = useQuery({
    queryKey: ['mailboxes', 'filter'],
    queryFn: () => unwrap(api.GET('/api/v1/mailboxes', { params: { query: { limit: 200 } } })),
    enabled: me.can('mailboxes:manage'),
    staleTime: 300_000,
  });
  const has = (type: Recipient['type']) => (rule?.recipients ?? []).some((r) => r.type === type);
  const [event, setEvent] = useState<RuleEvent>(rule?.event ?? 'ticket.assigned');
  const [simple, setSimple] = useState<string[]>(SIMPLE.map(([t]) => t).filter((t) => has(t)));
  const [roles, setRoles] = useState<string[]>(
    (rule?.recipients ?? []).filter((r) => r.type === 'role' && r.role).map((r) => r.role!),
  );
  const [people, setPeople] = useState<string[]>(
    (rule?.recipients ?? []).filter((r) => r.type === 'person' && r.personId).map((r) => r.personId!),
  );
  const [channel, setChannel] = useState<RuleChannel>(rule?.channel ?? 'preferred');
  const [destination, setDestination] = useState(rule?.destination ?? '');
  const [fallback, setFallback] = useState<FallbackChannel[]>(rule?.fallback ?? []);
  const [priorities, setPriorities] = useState<TicketPriority[]>(rule?.conditions.priority ?? []);
  const [mailboxId, setMailboxId] = useState(rule?.conditions.mailboxId ?? '');
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [adding, setAdding] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const fixed = channel === 'teams' || channel === 'slack' || channel === 'webhook';

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const recipients: Recipient[] = [
      ...simple.map((type) => ({ type: type as Recipient['type'] })),
      ...roles.map((role) => ({ type: 'role' as const, role: role as Recipient['role'] })),
      ...people.map((personId) => ({ type: 'person' as const, personId })),
    ];
    const body: RuleBody = {
      event,
      recipients: channel === 'webhook' ? [] : recipients,
      channel,
      destination: fixed && destination.trim() ? destination.trim() : null,
      fallback: channel === 'webhook' ? [] : fallback,
      conditions: {
        ...(priorities.length ? { priority: priorities } : {}),
        ...(mailboxId ? { mailboxId } : {}),
      },
      enabled,
    };
    setBusy(true);
    try {
      if (rule)
        await unwrap(api.PUT('/api/v1/notification-rules/{id}', { params: { path: { id: rule.id } }, body }));
      else await unwrap(api.POST('/api/v1/notification-rules', { body }));
      await queryClient.invalidateQueries({ queryKey: ['notification-rules'] });
      onClose();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const toggle = <T,>(list: T[], value: T, on: boolean) =>
    on ? [...list.filter((x) => x !== value), value] : list.filter((x) => x !== value);

  return (
    <ModalDialog
      isOpen
      onOpenChange={(open) => !open && !busy && onClose()}
      title={rule ? 'Edit notification rule' : 'New notification rule'}
      wide
    >
      <form onSubmit={submit}>
        <div className="field">
          <label htmlFor="rule-event">When</label>
          <select id="rule-event" value={event} onChange={(e) => setEvent(e.target.value as RuleEvent)}>
            {Object.entries(EVENT_LABELS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="rule-channel">Send on</label>
          <select
            id="rule-channel"
            value={channel}
            onChange={(e) => {
              setChannel(e.target.value as RuleChannel);
              setDestination('');
            }}
          >
            {Object.entries(CHANNEL_LABELS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
        {channel === 'webhook' && (
          <div className="field">
            <label htmlFor="rule-endpoint">Webhook endpoint</label>
            <select
              id="rule-endpoint"
              value={destination}
              onChange={(e) => setDestination(e.target.value)}
              required
            >
              <option value="">Choose…</option>
              {endpoints.data?.items.map((ep) => (
                <option key={ep.id} value={ep.id}>
                  {ep.description ? `${ep.description} (${ep.url})` : ep.url}
                </option>
              ))}
            </select>
          </div>
        )}
        {(channel === 'teams' || channel === 'slack') && (
          <div className="field">
            <label htmlFor="rule-destination">
              {channel === 'teams' ? 'Teams conversation id' : 'Slack channel id'} (optional)
            </label>
            <span className="field-hint" id="rule-destination-hint">
              Empty: each recipient directly. Given: one post there instead.
            </span>
            <input
              id="rule-destination"
              value={destination}
              aria-describedby="rule-destination-hint"
              onChange={(e) => setDestination(e.target.value)}
              maxLength={500}
            />
          </div>
        )}
        {channel !== 'webhook' && !(fixed && destination.trim()) && (
          <fieldset className="group">
            <legend>Who hears of it</legend>
            <div className="choice">
              {SIMPLE.map(([type, label]) => (
                <label key={type}>
                  <input
                    type="checkbox"
                    checked={simple.includes(type)}
                    onChange={(e) => setSimple((s) => toggle(s, type, e.target.checked))}
                  />
                  {label}
                </label>
              ))}
              {ROLES.map((role) => (
                <label key={role}>
                  <input
                    type="checkbox"
                    checked={roles.includes(role)}
                    onChange={(e) => setRoles((r) => toggle(r, role, e.target.checked))}
                  />
                  Every active {role}
                </label>
              ))}
            </div>
            {people.length > 0 && (
              <ul className="plain-list">
                {people.map((id) => (
                  <li key={id} className="list-row">
                    <span className="grow">
                      {agents.find((a) => a.id === id)?.displayName ?? 'Someone else'}
                    </span>
                    <button
                      type="button"
                      className="button-plain"
                      onClick={() => setPeople((p) => p.filter((x) => x !== id))}
                    >
                      Remove {agents.find((a) => a.id === id)?.displayName ?? 'this person'}
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <div className="inline-form">
              <label htmlFor="rule-person">And this agent</label>
              <select id="rule-person" value={adding} onChange={(e) => setAdding(e.target.value)}>
                <option value="">Choose…</option>
                {agents
                  .filter((a) => !people.includes(a.id))
                  .map((a) => (
                    <option key={a.id} value={a.id}>
                      {a.displayName}
                    </option>
                  ))}
              </select>
              <button
                type="button"
                className="button"
                disabled={!adding}
                onClick={() => {
                  setPeople((p) => [...p, adding]);
                  setAdding('');
                }}
              >
                Add
              </button>
            </div>
          </fieldset>
        )}
        {channel !== 'webhook' && (
          <fieldset className="choice group">
            <legend>If that channel cannot reach someone, try (in this order)</legend>
            {FALLBACKS.map((c) => (
              <label key={c}>
                <input
                  type="checkbox"
                  checked={fallback.includes(c)}
                  onChange={(e) => setFallback((f) => toggle(f, c, e.target.checked))}
                />
                {CHANNEL_LABELS[c]}
                {fallback.includes(c) && <span className="muted">({fallback.indexOf(c) + 1})</span>}
              </label>
            ))}
          </fieldset>
        )}
        <fieldset className="group">
          <legend>Only for tickets (all when empty)</legend>
          <div className="choice choice-row" role="group" aria-label="Priority">
            {PRIORITIES.map((p) => (
              <label key={p}>
                <input
                  type="checkbox"
                  checked={priorities.includes(p)}
                  onChange={(e) => setPriorities((ps) => toggle(ps, p, e.target.checked))}
                />
                {PRIORITY_LABELS[p]}
              </label>
            ))}
          </div>
          {mailboxes.data && mailboxes.data.items.length > 0 && (
            <div className="field">
              <label htmlFor="rule-mailbox">Of the mailbox</label>
              <select id="rule-mailbox" value={mailboxId} onChange={(e) => setMailboxId(e.target.value)}>
                <option value="">Any</option>
                {mailboxes.data.items.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.address}
                  </option>
                ))}
              </select>
            </div>
          )}
        </fieldset>
        <label className="check-label">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          On
        </label>
        {error && (
          <p className="status status-error" role="alert">
            {error}
          </p>
        )}
        <DialogActions submitLabel={rule ? 'Save rule' : 'Create rule'} busy={busy} />
      </form>
    </ModalDialog>
  );
}
