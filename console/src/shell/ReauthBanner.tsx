// The banner across the console when a mailbox needs to be connected again: only for health status
// `needs_reauth` (the provider refused its credentials; nothing but new credentials mends it), never
// for a failed renewal that upkeep retries by itself (`degraded`, `error`). Mailbox health is for
// people who may manage mailboxes: they are the ones who can act on it.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';

export function ReauthBanner() {
  const { can } = useSignedIn();
  const mailboxes = useQuery({
    queryKey: ['mailboxes', 'banner'],
    queryFn: () => unwrap(api.GET('/api/v1/mailboxes', { params: { query: { limit: 200 } } })),
    enabled: can('mailboxes:manage'),
    refetchInterval: 60_000,
  });
  const broken = (mailboxes.data?.items ?? []).filter((m) => m.health.status === 'needs_reauth');
  if (broken.length === 0) return null;
  const names = broken.map((m) => m.address).join(', ');
  return (
    <div className="banner banner-warning" role="alert">
      <strong>
        {broken.length === 1 ? 'A mailbox needs' : `${broken.length} mailboxes need`} to be connected again:
      </strong>{' '}
      {names}. No mail arrives from {broken.length === 1 ? 'it' : 'them'} until then.{' '}
      <Link to="/mailboxes">Open mailboxes</Link>
    </div>
  );
}
