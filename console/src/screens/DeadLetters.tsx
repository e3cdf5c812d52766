// Dead letters: this workspace's jobs that failed for good, by job queue, with their last error and
// payload, and re-drive (back to their queue to run again, once the cause is fixed). Beside them, the
// queues' depth, where a re-driven job shows up as waiting or running.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import type { Json } from '../api/types.ts';
import { formatDuration, formatTime } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import './operations.css';
import './DeadLetters.css';

type DeadLetter = Json<'/api/v1/queue/dlq', 'get'>['items'][number];

/** The error a job failed with, in one line (pg-boss keeps what the handler threw, as JSON). */
function errorText(error: unknown): string {
  if (error && typeof error === 'object') {
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return message;
    return JSON.stringify(error);
  }
  return error === null || error === undefined ? 'No error was recorded' : String(error);
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export default function DeadLetters() {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | undefined>();
  const [busy, setBusy] = useState<string | undefined>();

  const letters = useQuery({
    queryKey: ['queue', 'dlq'],
    queryFn: () => unwrap(api.GET('/api/v1/queue/dlq')),
    refetchInterval: 30_000,
  });
  const stats = useQuery({
    queryKey: ['queue', 'stats'],
    queryFn: () => unwrap(api.GET('/api/v1/queue/stats')),
    refetchInterval: 30_000,
  });

  const groups = useMemo(() => {
    const byQueue = new Map<string, DeadLetter[]>();
    for (const l of letters.data?.items ?? []) byQueue.set(l.queue, [...(byQueue.get(l.queue) ?? []), l]);
    return [...byQueue].sort(([a], [b]) => a.localeCompare(b));
  }, [letters.data]);
  const total = letters.data?.items.length ?? 0;
  const busyQueues = (stats.data?.items ?? []).filter(
    (s) => s.ready + s.deferred + s.active + s.deadLettered > 0,
  );

  const redrive = async (queue: string | undefined) => {
    setBusy(queue ?? '*');
    setNotice(undefined);
    try {
      const { redriven } = await unwrap(
        api.POST('/api/v1/queue/dlq/redrive', { params: { query: queue ? { queue } : {} } }),
      );
      setNotice({
        kind: 'ok',
        text:
          redriven === 0
            ? 'Nothing was left to re-drive.'
            : `${plural(redriven, 'job')} went back to ${queue ?? 'their queues'} to run again.`,
      });
    } catch (err) {
      setNotice({ kind: 'error', text: `Re-driving failed: ${describeError(err)}` });
    } finally {
      setBusy(undefined);
      await queryClient.invalidateQueries({ queryKey: ['queue'] });
    }
  };

  return (
    <Page
      title="Dead letters"
      actions={
        total > 0 && (
          <button
            type="button"
            className="button-primary"
            onClick={() => void redrive(undefined)}
            disabled={busy !== undefined}
          >
            {busy === '*' ? 'Re-driving…' : 'Re-drive all'}
          </button>
        )
      }
    >
      <p className="summary-line">
        Jobs that failed for good wait here. Fix the cause, then re-drive them: they go back to their queue
        and run again.
      </p>
      {notice && <Status kind={notice.kind}>{notice.text}</Status>}
      {letters.isPending && <Status>Loading dead letters…</Status>}
      {letters.isError && <Status kind="error">{describeError(letters.error)}</Status>}
      {letters.isSuccess && total === 0 && (
        <Status>No dead letters. Every job ran or is waiting to run.</Status>
      )}
      {total >= 100 && (
        <Status>The oldest 100 are shown; re-driving a queue moves all of its dead letters.</Status>
      )}
      {groups.map(([queue, items]) => (
        <section key={queue} className="dlq-group" aria-labelledby={`dlq-${queue}`} data-queue={queue}>
          <div className="dlq-head">
            <h2 id={`dlq-${queue}`}>
              <code>{queue}</code> <span className="muted">({plural(items.length, 'dead letter')})</span>
            </h2>
            <button
              type="button"
              className="button"
              onClick={() => void redrive(queue)}
              disabled={busy !== undefined}
              aria-label={`Re-drive the dead letters of ${queue}`}
            >
              {busy === queue ? 'Re-driving…' : 'Re-drive'}
            </button>
          </div>
          <ul className="dlq-list">
            {items.map((l) => (
              <li key={l.id} className="dlq-item" data-job={l.id}>
                <p className="dlq-error">
                  <strong>{errorText(l.error)}</strong>
                </p>
                <p className="cell-sub">
                  Dead-lettered{' '}
                  <time dateTime={l.createdAt}>{formatTime(l.createdAt, me.person.timeZone)}</time>
                  {l.sourceId && (
                    <>
                      {' '}
                      · failed job <code>{l.sourceId}</code>
                    </>
                  )}
                </p>
                <details>
                  <summary>Payload and error</summary>
                  <p className="cell-sub json-label">Payload</p>
                  <pre className="json" tabIndex={0} aria-label="Payload">
                    {JSON.stringify(l.payload, null, 2)}
                  </pre>
                  <p className="cell-sub json-label">Error</p>
                  <pre className="json" tabIndex={0} aria-label="Error">
                    {JSON.stringify(l.error, null, 2)}
                  </pre>
                </details>
              </li>
            ))}
          </ul>
        </section>
      ))}
      <h2>Queues</h2>
      {stats.isError && <Status kind="error">{describeError(stats.error)}</Status>}
      {stats.isSuccess && busyQueues.length === 0 && <Status>No jobs of this workspace are waiting.</Status>}
      {busyQueues.length > 0 && (
        <table
          className="data-table queue-stats"
          aria-label="Jobs waiting, running and dead-lettered by queue"
        >
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col">Ready</th>
              <th scope="col">Deferred</th>
              <th scope="col">Running</th>
              <th scope="col">Oldest waiting</th>
              <th scope="col">Dead letters</th>
            </tr>
          </thead>
          <tbody>
            {busyQueues.map((s) => (
              <tr key={s.queue} data-queue={s.queue}>
                <th scope="row" data-label="Queue">
                  <code>{s.queue}</code>
                </th>
                <td data-label="Ready" data-count="ready">
                  {s.ready}
                </td>
                <td data-label="Deferred">{s.deferred}</td>
                <td data-label="Running">{s.active}</td>
                <td data-label="Oldest waiting">{s.ready > 0 ? formatDuration(s.oldestAgeSeconds) : '—'}</td>
                <td data-label="Dead letters" data-count="dead">
                  {s.deadLettered}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
