// Collision detection, the viewing side: while the ticket is open this person's presence is sent
// every 15 s ('viewing', or 'replying' while they write; the server forgets it after 30 s) and taken
// back when they leave; who else is here comes from GET .../presence and then from live events.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import { api, csrfHeaders, unwrap } from '../../api/client.ts';
import type { Presence } from '../../api/types.ts';
import { useLiveEvents } from '../../shell/live.tsx';

export type Present = Presence;

const HEARTBEAT_MS = 15_000;

/**
 * This page's presence requests carry its id and a rising number: the server then takes them in the
 * order they were sent, so a heartbeat still on its way when the page leaves cannot bring it back.
 * (getRandomValues, not randomUUID: that one exists only on HTTPS and localhost.)
 */
const PAGE = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) =>
  b.toString(16).padStart(2, '0'),
).join('');
let sent = 0;
const order = () => ({ page: PAGE, seq: ++sent });

export function usePresence(ticketId: string, myId: string, replying: boolean): Present[] {
  const queryClient = useQueryClient();
  const key = ['ticket', ticketId, 'presence'];
  const others = useQuery({
    queryKey: key,
    queryFn: async () =>
      (await unwrap(api.GET('/api/v1/tickets/{id}/presence', { params: { path: { id: ticketId } } }))).people,
    refetchInterval: 30_000,
    retry: false,
  });
  useLiveEvents((event) => {
    if (event.type === 'presence' && event.data.ticketId === ticketId) {
      queryClient.setQueryData(
        key,
        event.data.people.filter((p) => p.id !== myId),
      );
    }
  });

  const state: Presence['state'] = replying ? 'replying' : 'viewing';
  const stateRef = useRef(state);
  stateRef.current = state;
  useEffect(() => {
    const beat = () =>
      api
        .PUT('/api/v1/tickets/{id}/presence', {
          params: { path: { id: ticketId } },
          body: { state: stateRef.current, ...order() },
        })
        .catch(() => undefined);
    void beat();
    const timer = setInterval(beat, HEARTBEAT_MS);
    const leave = () => {
      // keepalive: the request outlives a closing tab.
      const { page, seq } = order();
      void fetch(`/api/v1/tickets/${ticketId}/presence?page=${page}&seq=${seq}`, {
        method: 'DELETE',
        credentials: 'same-origin',
        keepalive: true,
        headers: csrfHeaders(),
      }).catch(() => undefined);
    };
    window.addEventListener('pagehide', leave);
    return () => {
      clearInterval(timer);
      window.removeEventListener('pagehide', leave);
      leave();
    };
  }, [ticketId]);
  // A change between viewing and replying is told at once, not at the next beat.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    void api
      .PUT('/api/v1/tickets/{id}/presence', {
        params: { path: { id: ticketId } },
        body: { state, ...order() },
      })
      .catch(() => undefined);
  }, [state, ticketId]);
  return (others.data ?? []).filter((p) => p.id !== myId);
}

export function PresenceBar({ people }: { people: Present[] }) {
  const replying = people.filter((p) => p.state === 'replying');
  const viewing = people.filter((p) => p.state !== 'replying');
  const names = (list: Present[]) => list.map((p) => p.displayName).join(', ');
  return (
    <div className="presence" role="status" aria-live="polite">
      {replying.length > 0 && (
        <span className="presence-replying">
          {names(replying)} {replying.length === 1 ? 'is' : 'are'} replying
        </span>
      )}
      {viewing.length > 0 && (
        <span className="presence-viewing">
          {names(viewing)} {viewing.length === 1 ? 'is' : 'are'} viewing this ticket
        </span>
      )}
    </div>
  );
}
