// The banner across the console when a mailbox needs to be connected again: only for health status
// `needs_reauth` (the provider refused its credentials; nothing but new credentials mends it; a
// Graph or Gmail mailbox without any was never connected, and the Mailboxes screen says so), never
// for a failed renewal that upkeep retries by itself (`degraded`, `error`). People who may manage
// mailboxes read their health (refreshed by live mailbox events); the others may not read mailboxes,
// so they see the banner from the live mailbox events of their session only.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import { notConnected } from '../lib/mailboxes.ts';
import { useLiveEvents } from './live.tsx';

export function ReauthBanner() {
  const { can } = useSignedIn();
  const manages = can('mailboxes:manage');
  const mailboxes = useQuery({
    queryKey: ['mailboxes', 'banner'],
    queryFn: () => unwrap(api.GET('/api/v1/mailboxes', { params: { query: { limit: 200 } } })),
    enabled: manages,
    refetchInterval: 60_000,
  });
  const [heard, setHeard] = useState<ReadonlySet<string>>(new Set());
  useLiveEvents((event) => {
    if (event.type !== 'mailbox' || manages) return;
    setHeard((h) => {
      const next = new Set(h);
      if (event.data.status === 'needs_reauth') next.add(event.data.mailboxId);
      else next.delete(event.data.mailboxId);
      return next;
    });
  });
  // A mailbox never connected (no credentials yet) is not one to connect *again*: the mailboxes
  // screen shows it as not connected.
  const refused = (mailboxes.data?.items ?? []).filter(
    (m) => m.health.status === 'needs_reauth' && !notConnected(m),
  );
  const count = manages ? refused.length : heard.size;
  if (count === 0) return null;
  const names = manages ? refused.map((m) => m.address).join(', ') : undefined;
  return (
    <div className="banner banner-warning" role="alert">
      <strong>{count === 1 ? 'A mailbox needs' : `${count} mailboxes need`} to be connected again</strong>
      {names ? `: ${names}.` : '.'} No mail arrives from {count === 1 ? 'it' : 'them'} until then.{' '}
      {manages ? <Link to="/mailboxes">Open mailboxes</Link> : 'An admin can connect it again.'}
    </div>
  );
}
