// Deliveries: the ledger of every attempt to deliver something (replies, acknowledgements,
// notifications), filtered by status, channel, purpose, destination and ticket, paged, with the
// details of one attempt and a retry of a failed or unknown one. The filters and the open attempt
// live in the address, so a view can be shared and reloaded.
import { LoadMore } from '../lib/LoadMore.tsx';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useEffect, useMemo, useState } from 'react';
import { Button, Dialog, Heading, Modal, ModalOverlay } from 'react-aria-components';
import { Link, useSearchParams } from 'react-router';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import type { Json, Query } from '../api/types.ts';
import { formatDuration, formatTime } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import './operations.css';
import './Deliveries.css';

type Delivery = Json<'/api/v1/deliveries', 'get'>['items'][number];
type DeliveryQuery = Query<'/api/v1/deliveries', 'get'>;
type DeliveryStatus = Delivery['status'];

const STATUSES: { id: DeliveryStatus; label: string; tone: string }[] = [
  { id: 'queued', label: 'Queued', tone: 'info' },
  { id: 'sent', label: 'Sent', tone: 'ok' },
  { id: 'delivered', label: 'Delivered', tone: 'ok' },
  { id: 'failed', label: 'Failed', tone: 'danger' },
  { id: 'bounced', label: 'Bounced', tone: 'danger' },
  { id: 'unknown', label: 'Unknown', tone: 'warning' },
  { id: 'skipped', label: 'Skipped', tone: 'neutral' },
];
const STATUS_BY_ID = new Map(STATUSES.map((s) => [s.id, s]));
const CHANNELS: { id: Delivery['channel']; label: string }[] = [
  { id: 'email', label: 'Email' },
  { id: 'slack', label: 'Slack' },
  { id: 'teams', label: 'Teams' },
  { id: 'webhook', label: 'Webhook' },
];
const PURPOSES = [
  { id: 'reply', label: 'Reply' },
  { id: 'acknowledgement', label: 'Acknowledgement' },
  { id: 'notification', label: 'Notification' },
] as const;
const purposeLabel = (p: string) => PURPOSES.find((x) => x.id === p)?.label ?? p;
const channelLabel = (c: string) => CHANNELS.find((x) => x.id === c)?.label ?? c;

/** How often an attempt still queued is asked about again while it shows. */
const FOLLOW_MS = 3_000;

/** What a person may retry: an attempt that ended without delivering (the route checks the chain). */
const RETRYABLE = new Set<DeliveryStatus>(['failed', 'unknown', 'bounced']);

/** "T-12", "t-12" or "12" as the API's ticket number; undefined when it is none. */
function ticketNumber(text: string): string | undefined {
  const m = /^\s*(?:t-?)?(\d{1,18})\s*$/i.exec(text);
  return m ? `T-${m[1]}` : undefined;
}

function StatusBadge({ status }: { status: DeliveryStatus }) {
  const s = STATUS_BY_ID.get(status);
  return <span className={`state state-${s?.tone ?? 'neutral'}`}>{s?.label ?? status}</span>;
}

function useRetry(onDone: (message: { kind: 'ok' | 'error'; text: string }) => void) {
  const queryClient = useQueryClient();
  const [pending, setPending] = useState<string | undefined>();
  const retry = async (d: Delivery) => {
    setPending(d.id);
    try {
      const next = await unwrap(
        api.POST('/api/v1/deliveries/{id}/retry', { params: { path: { id: d.id } } }),
      );
      onDone({
        kind: 'ok',
        text: `Retry queued: attempt ${next.attempt} to ${next.destination}.`,
      });
    } catch (err) {
      onDone({ kind: 'error', text: `The retry was refused: ${describeError(err)}` });
    } finally {
      setPending(undefined);
      await queryClient.invalidateQueries({ queryKey: ['deliveries'] });
    }
  };
  return { retry, pending };
}

function DeliveryDetails({
  id,
  canRetry,
  onClose,
  onRetried,
}: {
  id: string | undefined;
  canRetry: boolean;
  onClose(): void;
  onRetried(message: { kind: 'ok' | 'error'; text: string }): void;
}) {
  const me = useSignedIn();
  const tz = me.person.timeZone;
  const delivery = useQuery({
    queryKey: ['deliveries', 'one', id],
    queryFn: () => unwrap(api.GET('/api/v1/deliveries/{id}', { params: { path: { id: id! } } })),
    enabled: id !== undefined,
    refetchInterval: (q) => (q.state.data?.status === 'queued' ? FOLLOW_MS : false),
  });
  const { retry, pending } = useRetry((message) => {
    onRetried(message);
    if (message.kind === 'ok') onClose();
  });
  const d = delivery.data;
  const rows: [string, ReactNode][] = d
    ? [
        ['Status', <StatusBadge key="s" status={d.status} />],
        ['Channel', channelLabel(d.channel)],
        ['Purpose', purposeLabel(d.purpose)],
        ['Destination', d.destination],
        ['Attempt', d.attempt],
        [
          'Ticket',
          d.ticketId ? <Link to={`/tickets/${d.ticketId}`}>{d.ticketNumber ?? 'Open the ticket'}</Link> : '—',
        ],
        ['Error', d.errorCode ? `${d.errorCode}${d.errorMessage ? `: ${d.errorMessage}` : ''}` : '—'],
        ['Retried automatically', d.retryable === null ? '—' : d.retryable ? 'Yes' : 'No'],
        ['Skipped because', d.skipReason ?? '—'],
        ['Provider answer', d.providerResponse ?? '—'],
        ['Provider message id', d.providerMessageId ?? '—'],
        ['Request id', d.requestId ?? '—'],
        ['Message-ID', d.rfcMessageId ?? '—'],
        ['Created', formatTime(d.createdAt, tz)],
        ['Started', formatTime(d.startedAt, tz)],
        ['Sent', formatTime(d.sentAt, tz)],
        ['Finished', formatTime(d.finishedAt, tz)],
        [
          'Took',
          d.durationMs === null
            ? '—'
            : d.durationMs < 1000
              ? `${d.durationMs} ms`
              : formatDuration(d.durationMs / 1000),
        ],
        ['Attempt id', <code key="id">{d.id}</code>],
        ['Retries attempt', d.previousId ? <code key="p">{d.previousId}</code> : '—'],
      ]
    : [];
  return (
    <ModalOverlay
      className="modal-overlay"
      isOpen={id !== undefined}
      onOpenChange={(open) => !open && onClose()}
      isDismissable
    >
      <Modal className="modal">
        <Dialog className="dialog" aria-labelledby="delivery-title">
          <Heading slot="title" id="delivery-title">
            Delivery attempt
          </Heading>
          {delivery.isPending && <Status>Loading…</Status>}
          {delivery.isError && <Status kind="error">{describeError(delivery.error)}</Status>}
          {d && (
            <dl className="details">
              {rows.map(([term, value]) => (
                <div key={term} className="details-row">
                  <dt>{term}</dt>
                  <dd>{value}</dd>
                </div>
              ))}
            </dl>
          )}
          <div className="dialog-actions">
            {d && canRetry && RETRYABLE.has(d.status) && (
              <button
                type="button"
                className="button-primary"
                onClick={() => void retry(d)}
                disabled={pending !== undefined}
              >
                {pending ? 'Retrying…' : 'Retry'}
              </button>
            )}
            <Button slot="close" className="button">
              Close
            </Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

export default function Deliveries() {
  const me = useSignedIn();
  const canRetry = me.can('deliveries:manage');
  const [params, setParams] = useSearchParams();
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | undefined>();
  const [destination, setDestination] = useState(params.get('destination') ?? '');
  const [ticket, setTicket] = useState(params.get('ticket') ?? '');
  const [ticketError, setTicketError] = useState<string | undefined>();
  const { retry, pending } = useRetry(setNotice);

  // The text fields follow their own parameter only: another filter changing (the status chosen a
  // moment before) must not wipe what is being typed here.
  const urlDestination = params.get('destination') ?? '';
  const urlTicket = params.get('ticket') ?? '';
  useEffect(() => setDestination(urlDestination), [urlDestination]);
  useEffect(() => setTicket(urlTicket), [urlTicket]);

  const query = useMemo(() => {
    const q: Record<string, string> = {};
    for (const name of ['status', 'channel', 'purpose', 'destination', 'ticketId'] as const) {
      const v = params.get(name);
      if (v) q[name] = v;
    }
    const number = params.get('ticket');
    if (number) q['ticketNumber'] = number;
    return q as DeliveryQuery;
  }, [params]);

  const deliveries = useInfiniteQuery({
    queryKey: ['deliveries', 'list', query],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/deliveries', {
          params: { query: { ...query, limit: 50, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    // An attempt still queued is followed until it ends: a retry shows its outcome without a reload.
    refetchInterval: (q) =>
      q.state.data?.pages.some((p) => p.items.some((d) => d.status === 'queued')) ? FOLLOW_MS : false,
  });
  const rows = useMemo(() => deliveries.data?.pages.flatMap((p) => p.items) ?? [], [deliveries.data]);
  // An attempt a later one already retries is not offered again (the route would refuse it).
  const retried = useMemo(() => new Set(rows.map((r) => r.previousId).filter(Boolean)), [rows]);

  const setParam = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(params);
    for (const [name, value] of Object.entries(changes)) {
      if (value) next.set(name, value);
      else next.delete(name);
    }
    setParams(next, { replace: true });
  };
  const applyText = (event: FormEvent) => {
    event.preventDefault();
    const number = ticket.trim() === '' ? undefined : ticketNumber(ticket);
    if (ticket.trim() !== '' && !number) {
      setTicketError('A ticket number looks like T-12.');
      return;
    }
    setTicketError(undefined);
    setParam({ destination: destination.trim() || undefined, ticket: number, ticketId: undefined });
  };
  const filtered = Object.keys(query).length > 0;
  const openId = params.get('open') ?? undefined;

  return (
    <Page title="Deliveries" wide>
      <form
        className="filters delivery-filters"
        role="search"
        aria-label="Filter deliveries"
        onSubmit={applyText}
      >
        <label>
          Status{' '}
          <select value={params.get('status') ?? ''} onChange={(e) => setParam({ status: e.target.value })}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s.id} value={s.id}>
                {s.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Channel{' '}
          <select value={params.get('channel') ?? ''} onChange={(e) => setParam({ channel: e.target.value })}>
            <option value="">Any</option>
            {CHANNELS.map((c) => (
              <option key={c.id} value={c.id}>
                {c.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Purpose{' '}
          <select value={params.get('purpose') ?? ''} onChange={(e) => setParam({ purpose: e.target.value })}>
            <option value="">Any</option>
            {PURPOSES.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Destination{' '}
          <input
            type="text"
            value={destination}
            onChange={(e) => setDestination(e.target.value)}
            placeholder="Exact address"
            maxLength={2048}
          />
        </label>
        <label>
          Ticket{' '}
          <input
            type="text"
            value={ticket}
            onChange={(e) => setTicket(e.target.value)}
            placeholder="T-12"
            size={8}
            aria-invalid={ticketError ? true : undefined}
            aria-describedby={ticketError ? 'ticket-filter-error' : undefined}
          />
        </label>
        <button type="submit" className="button">
          Apply
        </button>
        {filtered && (
          <button
            type="button"
            className="button-plain"
            onClick={() => {
              setTicketError(undefined);
              setParams(new URLSearchParams(), { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
        {ticketError && (
          <span className="field-error" id="ticket-filter-error" role="alert">
            {ticketError}
          </span>
        )}
      </form>
      {params.get('ticketId') && (
        <p className="summary-line">
          Only the deliveries of one ticket.{' '}
          <Link to={`/tickets/${params.get('ticketId')}`}>Open the ticket</Link>
        </p>
      )}
      {notice && <Status kind={notice.kind}>{notice.text}</Status>}
      {deliveries.isPending && <Status>Loading deliveries…</Status>}
      {deliveries.isError && <Status kind="error">{describeError(deliveries.error)}</Status>}
      {deliveries.isSuccess && rows.length === 0 && (
        <Status>{filtered ? 'No deliveries match these filters.' : 'Nothing has been delivered yet.'}</Status>
      )}
      {rows.length > 0 && (
        <table className="data-table deliveries" aria-label="Delivery attempts">
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Status</th>
              <th scope="col">Channel and purpose</th>
              <th scope="col">Destination</th>
              <th scope="col">Ticket</th>
              <th scope="col">Error</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id} data-delivery={d.id} data-status={d.status}>
                <td data-label="Created">
                  <span>
                    <time dateTime={d.createdAt}>{formatTime(d.createdAt, me.person.timeZone)}</time>
                    {d.attempt > 1 && <span className="cell-sub">Attempt {d.attempt}</span>}
                  </span>
                </td>
                <td data-label="Status">
                  <StatusBadge status={d.status} />
                </td>
                <td data-label="Channel">
                  <span>
                    {channelLabel(d.channel)}
                    <span className="cell-sub">{purposeLabel(d.purpose)}</span>
                  </span>
                </td>
                <td data-label="Destination" className="wrap-anywhere">
                  {d.destination}
                </td>
                <td data-label="Ticket">
                  {d.ticketId ? <Link to={`/tickets/${d.ticketId}`}>{d.ticketNumber ?? 'Ticket'}</Link> : '—'}
                </td>
                <td data-label="Error" className="wrap-anywhere">
                  {d.errorCode ? (
                    <span>
                      <strong>{d.errorCode}</strong>
                      {d.errorMessage && <span className="cell-sub">{d.errorMessage}</span>}
                    </span>
                  ) : d.skipReason ? (
                    <span className="muted">{d.skipReason}</span>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td className="actions" data-label="Actions">
                  <button
                    type="button"
                    className="button button-small"
                    onClick={() => setParam({ open: d.id })}
                    aria-label={`Details of the ${d.status} ${purposeLabel(d.purpose).toLowerCase()} to ${d.destination}`}
                  >
                    Details
                  </button>
                  {canRetry && RETRYABLE.has(d.status) && !retried.has(d.id) && (
                    <button
                      type="button"
                      className="button button-small"
                      onClick={() => void retry(d)}
                      disabled={pending !== undefined}
                      aria-label={`Retry the ${purposeLabel(d.purpose).toLowerCase()} to ${d.destination}`}
                    >
                      {pending === d.id ? 'Retrying…' : 'Retry'}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={deliveries} />
      <DeliveryDetails
        id={openId}
        canRetry={canRetry}
        onClose={() => setParam({ open: undefined })}
        onRetried={setNotice}
      />
    </Page>
  );
}
