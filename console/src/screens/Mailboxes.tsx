// Mailboxes: whether mail flows from each one at a glance (health status, when its subscription
// expires, the last mail, the last error), and what an admin can do about it: connect by OAuth
// (the provider sends the browser back here through the server's callback), test, renew now.
// "Needs re-authorisation" is the one state only a person can mend, so it is said in words with the
// action beside it; the banner across the console uses the same notion (shell/ReauthBanner.tsx).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Button, Dialog, Heading, Modal, ModalOverlay } from 'react-aria-components';
import { useSearchParams } from 'react-router';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import type { Json } from '../api/types.ts';
import { type Mailbox, notConnected, subscribed } from '../lib/mailboxes.ts';
import { formatTime, relative, useNow } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import './operations.css';
import './Mailboxes.css';

type TestResult = Json<'/api/v1/mailboxes/{id}/test', 'post'>;
type HealthStatus = Mailbox['health']['status'];

const KIND_LABELS: Record<Mailbox['kind'], string> = {
  graph: 'Microsoft 365',
  gmail: 'Gmail',
  imap: 'IMAP',
  mime: 'Uploads only',
};

/** Where the provider's consent sends the browser back to (the server's callback redirects here). */
const RETURN_TO = '/console/mailboxes';

/** The state a person reads: the health status, or "not connected" for a provider mailbox without credentials. */
function stateOf(m: Mailbox): { label: string; tone: string; status: HealthStatus | 'not_connected' } {
  if (notConnected(m)) return { label: 'Not connected', tone: 'warning', status: 'not_connected' };
  const s = m.health.status;
  const map: Record<HealthStatus, [string, string]> = {
    healthy: ['Healthy', 'ok'],
    renewing: ['Renewing', 'info'],
    degraded: ['Degraded', 'warning'],
    error: ['Failing', 'danger'],
    needs_reauth: ['Needs re-authorisation', 'danger'],
    disabled: ['Disabled', 'neutral'],
  };
  const [label, tone] = map[s];
  return { label, tone, status: s };
}

/** Why connecting did not finish, from the code the callback put in the address (never free text). */
function connectFailure(code: string | null): string {
  if (code === 'access_denied') return 'consent was not given at the provider';
  if (!code || code === 'refused') return 'the provider refused to give access';
  return `the provider answered ${code}`;
}

function ExpiresIn({ m, now }: { m: Mailbox; now: number }) {
  if (!subscribed(m)) return <span className="muted">No subscription needed</span>;
  const at = m.health.expiresAt;
  if (!at) return <span className="muted">No subscription yet</span>;
  const past = Date.parse(at) <= now;
  return (
    <time dateTime={at} title={at} className={past ? 'expired' : undefined}>
      {past ? `Expired ${relative(at, now)}` : relative(at, now)}
    </time>
  );
}

function TestDialog({
  mailbox,
  result,
  error,
  onClose,
}: {
  mailbox: Mailbox | undefined;
  result: TestResult | undefined;
  error: string | undefined;
  onClose(): void;
}) {
  return (
    <ModalOverlay
      className="modal-overlay"
      isOpen={mailbox !== undefined}
      onOpenChange={(open) => !open && onClose()}
      isDismissable
    >
      <Modal className="modal">
        <Dialog className="dialog" aria-labelledby="mailbox-test-title">
          <Heading slot="title" id="mailbox-test-title">
            Test of {mailbox?.address}
          </Heading>
          {!result && !error && <Status>Testing…</Status>}
          {error && <Status kind="error">{error}</Status>}
          {result && (
            <>
              <p className={result.ok ? 'status-ok' : 'status-error'} role="status">
                <strong>{result.ok ? 'Everything works.' : 'Something is wrong.'}</strong>
              </p>
              <ol className="test-steps">
                {result.steps.map((s) => (
                  <li key={s.step} className={s.ok ? 'step-ok' : 'step-failed'}>
                    <span className={`state state-${s.ok ? 'ok' : 'danger'}`}>
                      {s.ok ? 'Passed' : 'Failed'}
                    </span>{' '}
                    <strong>{s.step}</strong>: {s.message}
                  </li>
                ))}
              </ol>
            </>
          )}
          <div className="dialog-actions">
            <Button slot="close" className="button">
              Close
            </Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

export default function Mailboxes() {
  const me = useSignedIn();
  const now = useNow(15_000);
  const queryClient = useQueryClient();
  const [params, setParams] = useSearchParams();
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [testing, setTesting] = useState<Mailbox | undefined>();
  const [testResult, setTestResult] = useState<TestResult | undefined>();
  const [testError, setTestError] = useState<string | undefined>();
  // Back from the provider: what the callback said, kept until the next action.
  const [returned] = useState(() =>
    params.get('connect')
      ? { outcome: params.get('connect'), mailboxId: params.get('mailbox'), error: params.get('error') }
      : undefined,
  );

  const mailboxes = useQuery({
    queryKey: ['mailboxes', 'screen'],
    queryFn: () => unwrap(api.GET('/api/v1/mailboxes', { params: { query: { limit: 200 } } })),
    // While a subscription is being made, its result is moments away.
    refetchInterval: (q) =>
      q.state.data?.items.some((m) => m.health.status === 'renewing') ? 2_000 : 60_000,
  });
  const items = mailboxes.data?.items ?? [];

  // The outcome stays on screen, not in the address (a reload should not say it again).
  useEffect(() => {
    if (!params.has('connect')) return;
    const next = new URLSearchParams(params);
    for (const p of ['connect', 'mailbox', 'error']) next.delete(p);
    setParams(next, { replace: true });
  }, [params, setParams]);

  const returnedMailbox = returned ? items.find((m) => m.id === returned.mailboxId) : undefined;
  const returnedText = (() => {
    if (!returned) return undefined;
    const name = returnedMailbox?.address ?? 'The mailbox';
    if (returned.outcome !== 'connected')
      return {
        kind: 'error' as const,
        text: `${name} was not connected: ${connectFailure(returned.error)}.`,
      };
    const health = returnedMailbox?.health;
    if (health && health.status !== 'healthy' && health.status !== 'renewing')
      return {
        kind: 'error' as const,
        text: `${name} is connected, but mail does not flow yet${health.failureReason ? `: ${health.failureReason}` : ''}. Relaydesk keeps trying.`,
      };
    return { kind: 'ok' as const, text: `${name} is connected.` };
  })();
  const shown = notice ?? returnedText;

  const refresh = () => queryClient.invalidateQueries({ queryKey: ['mailboxes'] });

  const connect = async (m: Mailbox) => {
    setBusy(`connect:${m.id}`);
    setNotice(undefined);
    try {
      const answer = await unwrap(
        api.POST('/api/v1/mailboxes/{id}/connect', {
          params: { path: { id: m.id }, query: { returnTo: RETURN_TO } },
        }),
      );
      // To the provider's consent page; its answer comes back through the server to this screen.
      window.location.assign(answer.authorizationUrl);
    } catch (err) {
      setNotice({ kind: 'error', text: `Connecting ${m.address} could not start: ${describeError(err)}` });
      setBusy(undefined);
    }
  };

  const renew = async (m: Mailbox) => {
    setBusy(`renew:${m.id}`);
    setNotice(undefined);
    try {
      await unwrap(api.POST('/api/v1/mailboxes/{id}/renew', { params: { path: { id: m.id } } }));
      setNotice({
        kind: 'ok',
        text: `Renewing the subscription of ${m.address}. Its health shows the result.`,
      });
    } catch (err) {
      setNotice({ kind: 'error', text: `Renewing ${m.address} did not start: ${describeError(err)}` });
    } finally {
      setBusy(undefined);
      await refresh();
    }
  };

  const test = async (m: Mailbox) => {
    setTesting(m);
    setTestResult(undefined);
    setTestError(undefined);
    try {
      setTestResult(
        await unwrap(api.POST('/api/v1/mailboxes/{id}/test', { params: { path: { id: m.id } } })),
      );
    } catch (err) {
      setTestError(describeError(err));
    }
  };

  const counts = new Map<string, number>();
  for (const m of items) {
    const { label } = stateOf(m);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }

  return (
    <Page title="Mailboxes" wide>
      {shown && <Status kind={shown.kind}>{shown.text}</Status>}
      {mailboxes.isPending && <Status>Loading mailboxes…</Status>}
      {mailboxes.isError && <Status kind="error">{describeError(mailboxes.error)}</Status>}
      {mailboxes.isSuccess && items.length === 0 && (
        <Status>No mailboxes yet. Mailboxes are added through the API (POST /api/v1/mailboxes).</Status>
      )}
      {items.length > 0 && (
        <p className="summary-line">
          {items.length} mailbox{items.length === 1 ? '' : 'es'}:{' '}
          {[...counts].map(([label, n]) => `${n} ${label.toLowerCase()}`).join(', ')}.
        </p>
      )}
      {items.length > 0 && (
        <table className="data-table mailboxes" aria-label="Mailboxes and their health">
          <thead>
            <tr>
              <th scope="col">Mailbox</th>
              <th scope="col">Status</th>
              <th scope="col">Expires in</th>
              <th scope="col">Last mail</th>
              <th scope="col">Last error</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((m) => {
              const state = stateOf(m);
              const needsPerson = state.status === 'needs_reauth' || state.status === 'not_connected';
              return (
                <tr key={m.id} data-mailbox={m.address} data-state={state.status}>
                  <th scope="row" data-label="Mailbox" className="mailbox-name">
                    <span>
                      <strong className="wrap-anywhere">{m.address}</strong>
                      <span className="cell-sub">
                        {KIND_LABELS[m.kind]}
                        {m.displayName ? ` · ${m.displayName}` : ''}
                      </span>
                    </span>
                  </th>
                  <td data-label="Status">
                    <span>
                      <span className={`state state-${state.tone}`}>{state.label}</span>
                      {state.status === 'needs_reauth' && (
                        <span className="cell-sub reauth-note">
                          The provider refused the stored access. No mail arrives until someone who can sign
                          in as {m.address} connects it again.
                        </span>
                      )}
                      {state.status === 'not_connected' && (
                        <span className="cell-sub">Connect it to start receiving mail.</span>
                      )}
                    </span>
                  </td>
                  <td data-label="Expires in">
                    <ExpiresIn m={m} now={now} />
                  </td>
                  <td data-label="Last mail">
                    {m.health.lastMessageAt ? (
                      <time
                        dateTime={m.health.lastMessageAt}
                        title={formatTime(m.health.lastMessageAt, me.person.timeZone)}
                      >
                        {relative(m.health.lastMessageAt, now)}
                      </time>
                    ) : (
                      <span className="muted">None yet</span>
                    )}
                  </td>
                  <td data-label="Last error" className="wrap-anywhere">
                    {m.health.failureReason && state.status !== 'not_connected' ? (
                      <span>
                        {m.health.failureReason}
                        {m.health.consecutiveFailures > 1 && (
                          <span className="cell-sub">{m.health.consecutiveFailures} failures in a row</span>
                        )}
                        {m.health.lastRenewalAt && (
                          <span className="cell-sub">
                            Last renewal {formatTime(m.health.lastRenewalAt, me.person.timeZone)}
                          </span>
                        )}
                      </span>
                    ) : (
                      <span className="muted">None</span>
                    )}
                  </td>
                  <td className="actions" data-label="Actions">
                    {subscribed(m) && (
                      <button
                        type="button"
                        className={needsPerson ? 'button-primary button-small' : 'button button-small'}
                        onClick={() => void connect(m)}
                        disabled={busy !== undefined}
                        aria-label={`${notConnected(m) ? 'Connect' : 'Connect again'} ${m.address}`}
                      >
                        {busy === `connect:${m.id}`
                          ? 'Opening…'
                          : notConnected(m)
                            ? 'Connect'
                            : 'Connect again'}
                      </button>
                    )}
                    {m.kind !== 'mime' && (
                      <button
                        type="button"
                        className="button button-small"
                        onClick={() => void test(m)}
                        aria-label={`Test ${m.address}`}
                      >
                        Test
                      </button>
                    )}
                    {subscribed(m) && !notConnected(m) && (
                      <button
                        type="button"
                        className="button button-small"
                        onClick={() => void renew(m)}
                        disabled={busy !== undefined}
                        aria-label={`Renew now ${m.address}`}
                      >
                        {busy === `renew:${m.id}` ? 'Renewing…' : 'Renew now'}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <TestDialog
        mailbox={testing}
        result={testResult}
        error={testError}
        onClose={() => setTesting(undefined)}
      />
    </Page>
  );
}
