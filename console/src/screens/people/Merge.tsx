// Merging a person into another (POST /people/:target/merge): pick who goes, read what moves (their
// addresses, identities, tickets, messages and tokens) and that they are deleted, then confirm.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Button } from 'react-aria-components';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { ModalDialog } from '../../lib/Dialogs.tsx';
import { Status } from '../../shell/Page.tsx';
import { FindPerson } from './FindPerson.tsx';
import type { PersonFull } from './shared.ts';

const PAGE = 200;
/** "3 tickets", "200 or more tickets" from one page of a list. */
const count = (page: { items: unknown[]; nextCursor: string | null } | undefined, noun: string) => {
  if (!page) return `… ${noun}s`;
  const n = page.items.length;
  return `${page.nextCursor ? `${n} or more` : n} ${noun}${n === 1 && !page.nextCursor ? '' : 's'}`;
};

function WhatMoves({ source, target }: { source: PersonFull; target: PersonFull }) {
  const me = useSignedIn();
  const requested = useQuery({
    queryKey: ['merge', source.id, 'requested'],
    queryFn: () =>
      unwrap(api.GET('/api/v1/tickets', { params: { query: { requesterId: source.id, limit: PAGE } } })),
  });
  const assigned = useQuery({
    queryKey: ['merge', source.id, 'assigned'],
    queryFn: () =>
      unwrap(api.GET('/api/v1/tickets', { params: { query: { assigneeId: source.id, limit: PAGE } } })),
  });
  const tokens = useQuery({
    queryKey: ['merge', source.id, 'tokens'],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/people/{id}/tokens', {
          params: { path: { id: source.id }, query: { limit: PAGE } },
        }),
      ),
    enabled: me.can('tokens:manage'),
  });
  const activeTokens = tokens.data && {
    items: tokens.data.items.filter((t) => !t.revokedAt),
    nextCursor: tokens.data.nextCursor,
  };
  const aliases = target.email !== null;
  return (
    <div className="merge-preview">
      <p>
        <strong>{source.displayName}</strong> will be deleted. Moving to <strong>{target.displayName}</strong>
        :
      </p>
      <ul>
        <li>
          {source.emails.length === 0
            ? 'No email address.'
            : `Email address${source.emails.length === 1 ? '' : 'es'} ${source.emails.map((e) => e.address).join(', ')}${aliases ? ' (as aliases)' : ''}.`}
        </li>
        <li>
          {source.identities.length === 0
            ? 'No external identity.'
            : `Identities ${source.identities.map((i) => `${i.kind} ${i.externalId}`).join(', ')}.`}
        </li>
        <li>
          {count(requested.data, 'ticket')} they requested and {count(assigned.data, 'ticket')} assigned to
          them.
        </li>
        <li>The messages they wrote and their part in status histories.</li>
        {me.can('tokens:manage') && (
          <li>
            {activeTokens && activeTokens.items.length === 0
              ? 'No API token.'
              : `${count(activeTokens, 'API token')} (they keep working, as tokens of ${target.displayName}).`}
          </li>
        )}
      </ul>
      <p className="muted">This cannot be undone.</p>
    </div>
  );
}

export function MergeDialog({
  target,
  isOpen,
  onOpenChange,
  onMerged,
}: {
  target: PersonFull;
  isOpen: boolean;
  onOpenChange(open: boolean): void;
  onMerged(message: string): void;
}) {
  const queryClient = useQueryClient();
  const [sourceId, setSourceId] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const source = useQuery({
    queryKey: ['person', sourceId],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id: sourceId! } } })),
    enabled: Boolean(sourceId),
  });
  const close = (open: boolean) => {
    if (open || busy) return;
    onOpenChange(false);
    setSourceId(undefined);
    setError(undefined);
  };
  const same = sourceId === target.id;
  const merge = async () => {
    if (!source.data || same) return;
    setBusy(true);
    setError(undefined);
    try {
      const merged = await unwrap(
        api.POST('/api/v1/people/{id}/merge', {
          params: { path: { id: target.id } },
          body: { sourceId: source.data.id },
        }),
      );
      queryClient.setQueryData(['person', target.id], merged);
      queryClient.removeQueries({ queryKey: ['person', source.data.id] });
      await Promise.all([
        queryClient.invalidateQueries({ queryKey: ['people'] }),
        queryClient.invalidateQueries({ queryKey: ['tickets'] }),
        queryClient.invalidateQueries({ queryKey: ['person', target.id, 'events'] }),
      ]);
      onMerged(`${source.data.displayName} was merged into ${target.displayName}.`);
      setBusy(false);
      close(false);
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };
  return (
    <ModalDialog isOpen={isOpen} onOpenChange={close} title={`Merge into ${target.displayName}`} wide>
      <p>
        Choose the person to merge into {target.displayName}: a duplicate of them, such as a contact created
        from another address.
      </p>
      <FindPerson label="Person to merge" onChange={setSourceId} excludeId={target.id} />
      {same && (
        <p className="status status-error" role="alert">
          A person cannot be merged into themselves.
        </p>
      )}
      {sourceId && !same && source.isPending && <Status>Loading…</Status>}
      {source.isError && <Status kind="error">{describeError(source.error)}</Status>}
      {source.data && !same && <WhatMoves source={source.data} target={target} />}
      {error && (
        <p className="status status-error" role="alert">
          {error}
        </p>
      )}
      <div className="dialog-actions">
        <Button slot="close" className="button" isDisabled={busy}>
          Cancel
        </Button>
        <Button
          className="button-danger"
          onPress={() => void merge()}
          isDisabled={busy || !source.data || same}
        >
          {busy ? 'Merging…' : 'Merge and delete the other'}
        </Button>
      </div>
    </ModalDialog>
  );
}
