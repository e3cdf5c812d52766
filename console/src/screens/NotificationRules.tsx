// Notification rules: which event reaches whom on which channel. Each rule can be switched on and
// off, edited, deleted, or sent a sample through (its attempts show under Deliveries). Above them,
// whether the channels are connected: Teams, Slack and the webhook endpoints.
import './admin-shared.css';
import './NotificationRules.css';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Switch } from 'react-aria-components';
import { Link } from 'react-router';
import { api, ApiError, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import { PRIORITY_LABELS } from '../api/types.ts';
import { ConfirmDialog } from '../lib/Dialogs.tsx';
import { Page, Status } from '../shell/Page.tsx';
import { PersonLink } from './people/PersonLink.tsx';
import { RuleEditor } from './rules/RuleEditor.tsx';
import { bodyOf, CHANNEL_LABELS, EVENT_LABELS, type Rule } from './rules/shared.ts';

function Channels() {
  const me = useSignedIn();
  const may = me.can('integrations:manage');
  const teams = useQuery({
    queryKey: ['integrations', 'teams'],
    queryFn: async () => {
      try {
        return await unwrap(api.GET('/api/v1/integrations/teams'));
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }
    },
    enabled: may,
  });
  const slack = useQuery({
    queryKey: ['integrations', 'slack'],
    queryFn: () => unwrap(api.GET('/api/v1/integrations/slack')),
    enabled: may,
  });
  const hooks = useQuery({
    queryKey: ['webhook-endpoints'],
    queryFn: () => unwrap(api.GET('/api/v1/webhook-endpoints', { params: { query: { limit: 200 } } })),
    enabled: me.can('webhooks:manage'),
  });
  if (!may) return null;
  const state = (ok: boolean | undefined, on: string, off: string) =>
    ok === undefined ? (
      <span className="muted">…</span>
    ) : (
      <span className={ok ? 'pill pill-on' : 'pill'}>{ok ? on : off}</span>
    );
  const endpoints = hooks.data?.items ?? [];
  const off = endpoints.filter((e) => !e.enabled);
  const failing = endpoints.filter((e) => e.enabled && e.failingSince);
  return (
    <section className="panel channels" aria-labelledby="channels-title">
      <h2 id="channels-title">Channels</h2>
      <dl className="channel-list">
        <div>
          <dt>Email</dt>
          <dd>{state(true, 'Through the mailboxes', '')}</dd>
        </div>
        <div>
          <dt>Microsoft Teams</dt>
          <dd>
            {teams.isError ? (
              <span className="status-error">{describeError(teams.error)}</span>
            ) : (
              state(teams.isSuccess ? teams.data !== null : undefined, 'Connected', 'Not connected')
            )}
            {teams.data && <span className="muted"> bot {teams.data.appId}</span>}
          </dd>
        </div>
        <div>
          <dt>Slack</dt>
          <dd>
            {slack.isError ? (
              <span className="status-error">{describeError(slack.error)}</span>
            ) : (
              state(slack.data?.configured, 'Connected', 'Not connected')
            )}
            {slack.data?.teamName && <span className="muted"> to {slack.data.teamName}</span>}
          </dd>
        </div>
        <div>
          <dt>Webhooks</dt>
          <dd>
            {hooks.isError ? (
              <span className="status-error">{describeError(hooks.error)}</span>
            ) : (
              state(
                hooks.isSuccess ? endpoints.length > 0 : undefined,
                `${endpoints.length} endpoint${endpoints.length === 1 ? '' : 's'}`,
                'No endpoint',
              )
            )}
            {failing.length > 0 && <span className="pill pill-unavailable">{failing.length} failing</span>}
            {off.length > 0 && <span className="pill pill-failed">{off.length} switched off</span>}
          </dd>
        </div>
      </dl>
    </section>
  );
}

function Recipients({ rule }: { rule: Rule }) {
  if (rule.destination)
    return <span>{rule.channel === 'webhook' ? 'the endpoint' : <code>{rule.destination}</code>}</span>;
  return (
    <>
      {rule.recipients.map((r, i) => (
        <span key={i}>
          {i > 0 && ', '}
          {r.type === 'role' ? (
            `every ${r.role}`
          ) : r.type === 'person' && r.personId ? (
            <PersonLink id={r.personId} />
          ) : (
            `the ${r.type}`
          )}
        </span>
      ))}
    </>
  );
}

function RuleRow({ rule, onEdit }: { rule: Rule; onEdit(): void }) {
  const queryClient = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<{ ok: boolean; text: string } | undefined>();
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<string | undefined>();
  const name = EVENT_LABELS[rule.event];
  const run = async (what: () => Promise<string | undefined>) => {
    setBusy(true);
    setNotice(undefined);
    try {
      const text = await what();
      if (text) setNotice({ ok: true, text });
    } catch (err) {
      setNotice({ ok: false, text: describeError(err) });
    } finally {
      setBusy(false);
    }
  };
  const toggle = (enabled: boolean) =>
    run(async () => {
      const saved = await unwrap(
        api.PUT('/api/v1/notification-rules/{id}', {
          params: { path: { id: rule.id } },
          body: bodyOf(rule, { enabled }),
        }),
      );
      queryClient.setQueryData(['notification-rules'], (old: { items: Rule[] } | undefined) =>
        old ? { ...old, items: old.items.map((r) => (r.id === saved.id ? saved : r)) } : old,
      );
      return undefined;
    });
  const test = () =>
    run(async () => {
      await unwrap(api.POST('/api/v1/notification-rules/{id}/test', { params: { path: { id: rule.id } } }));
      return 'A sample is on its way to the people this rule reaches.';
    });
  const remove = async () => {
    setBusy(true);
    setDeleteError(undefined);
    try {
      await unwrap(api.DELETE('/api/v1/notification-rules/{id}', { params: { path: { id: rule.id } } }));
      setDeleting(false);
      await queryClient.invalidateQueries({ queryKey: ['notification-rules'] });
    } catch (err) {
      setDeleteError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  const conditions = [
    rule.conditions.priority?.length
      ? `priority ${rule.conditions.priority.map((p) => PRIORITY_LABELS[p]).join(' or ')}`
      : '',
    rule.conditions.mailboxId ? 'one mailbox' : '',
  ].filter(Boolean);
  return (
    <li className={rule.enabled ? 'rule' : 'rule rule-off'} aria-labelledby={`rule-${rule.id}`}>
      <div className="rule-main">
        <h2 id={`rule-${rule.id}`} className="rule-event">
          {name}
        </h2>
        <p>
          → <Recipients rule={rule} /> on {CHANNEL_LABELS[rule.channel].toLowerCase()}
          {rule.fallback.length > 0 && (
            <span className="muted">
              , then {rule.fallback.map((c) => CHANNEL_LABELS[c]).join(', then ')}
            </span>
          )}
        </p>
        {conditions.length > 0 && <p className="muted">Only for {conditions.join(' and ')}.</p>}
        {notice && <Status kind={notice.ok ? 'ok' : 'error'}>{notice.text}</Status>}
      </div>
      <div className="rule-actions">
        <Switch
          className="switch"
          isSelected={rule.enabled}
          isDisabled={busy}
          onChange={(on) => void toggle(on)}
          aria-label={`${name}: on`}
        >
          <span className="switch-track" aria-hidden="true">
            <span className="switch-thumb" />
          </span>
          <span aria-hidden="true">{rule.enabled ? 'On' : 'Off'}</span>
        </Switch>
        <button type="button" className="button" onClick={() => void test()} disabled={busy}>
          Send a test<span className="visually-hidden"> of {name}</span>
        </button>
        <button type="button" className="button" onClick={onEdit}>
          Edit<span className="visually-hidden"> {name}</span>
        </button>
        <button type="button" className="button-plain danger-text" onClick={() => setDeleting(true)}>
          Delete<span className="visually-hidden"> {name}</span>
        </button>
      </div>
      <ConfirmDialog
        isOpen={deleting}
        onOpenChange={setDeleting}
        title="Delete this rule?"
        confirmLabel="Delete"
        danger
        busy={busy}
        error={deleteError}
        onConfirm={() => void remove()}
      >
        <p>“{name}” will no longer notify anyone. To pause it instead, switch it off.</p>
      </ConfirmDialog>
    </li>
  );
}

export default function NotificationRules() {
  const rules = useQuery({
    queryKey: ['notification-rules'],
    queryFn: () => unwrap(api.GET('/api/v1/notification-rules', { params: { query: { limit: 200 } } })),
  });
  const [editing, setEditing] = useState<Rule | 'new' | undefined>();
  const items = rules.data?.items ?? [];
  return (
    <Page
      title="Notification rules"
      actions={
        <button type="button" className="button-primary" onClick={() => setEditing('new')}>
          New rule
        </button>
      }
    >
      <Channels />
      <p className="muted">
        Whoever caused an event does not hear of it; quiet hours hold everything but SLA breaches. Samples and
        their attempts show under <Link to="/deliveries">Deliveries</Link>.
      </p>
      {rules.isPending && <Status>Loading rules…</Status>}
      {rules.isError && <Status kind="error">{describeError(rules.error)}</Status>}
      {rules.isSuccess && items.length === 0 && <Status>No rule: nobody is notified of anything.</Status>}
      {items.length > 0 && (
        <ul className="plain-list rules" aria-label="Rules">
          {items.map((r) => (
            <RuleRow key={r.id} rule={r} onEdit={() => setEditing(r)} />
          ))}
        </ul>
      )}
      {editing && (
        <RuleEditor rule={editing === 'new' ? undefined : editing} onClose={() => setEditing(undefined)} />
      )}
    </Page>
  );
}
