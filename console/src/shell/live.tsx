// Live updates: one EventSource on /api/v1/stream while signed in. A ticket event refreshes the
// lists and that ticket, a mailbox event the mailboxes; screens listen for what else they need
// (presence). After a broken connection it reconnects with back-off and refreshes what it may have
// missed.
import { useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext, useEffect, useRef, useState } from 'react';
import type { Presence } from '../api/types.ts';

export type LiveEvent =
  /** ticketId null with change "reload": many tickets changed, or some changes went unheard. */
  | { type: 'ticket'; data: { ticketId: string | null; number: string | null; change: string } }
  | { type: 'presence'; data: { ticketId: string; people: Presence[] } }
  | { type: 'mailbox'; data: { mailboxId: string; status: string; previousStatus: string | null } };

type Listener = (event: LiveEvent) => void;
const listeners = new Set<Listener>();

const LiveContext = createContext(false);

/** Whether the live connection is open (shown in the header). */
export const useLiveConnected = (): boolean => useContext(LiveContext);

/** Calls the listener with every live event while the component is mounted. */
export function useLiveEvents(listener: Listener): void {
  const current = useRef(listener);
  current.current = listener;
  useEffect(() => {
    const l: Listener = (e) => current.current(e);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
}

export function LiveEvents({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    let source: EventSource | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let refresh: ReturnType<typeof setTimeout> | undefined;
    let delay = 1000;
    let stopped = false;
    let hadError = false;
    // Many changes at once (a bulk update) refresh the lists once.
    const refreshLists = () => {
      if (refresh) return;
      refresh = setTimeout(() => {
        refresh = undefined;
        void queryClient.invalidateQueries({ queryKey: ['tickets'] });
      }, 250);
    };
    const dispatch = (event: LiveEvent) => {
      if (event.type === 'ticket') {
        refreshLists();
        void queryClient.invalidateQueries({
          queryKey: event.data.ticketId === null ? ['ticket'] : ['ticket', event.data.ticketId],
        });
      }
      if (event.type === 'mailbox') void queryClient.invalidateQueries({ queryKey: ['mailboxes'] });
      for (const l of listeners) l(event);
    };
    const open = () => {
      if (stopped) return;
      source = new EventSource('/api/v1/stream');
      source.addEventListener('open', () => {
        delay = 1000;
        setConnected(true);
        if (hadError) {
          hadError = false;
          void queryClient.invalidateQueries({ queryKey: ['tickets'] });
          void queryClient.invalidateQueries({ queryKey: ['ticket'] });
        }
      });
      for (const type of ['ticket', 'presence', 'mailbox'] as const) {
        source.addEventListener(type, (message) => {
          try {
            dispatch({ type, data: JSON.parse((message as MessageEvent<string>).data) } as LiveEvent);
          } catch {
            // Not JSON: nothing a screen could use.
          }
        });
      }
      source.addEventListener('error', () => {
        source?.close();
        setConnected(false);
        hadError = true;
        timer = setTimeout(open, delay);
        delay = Math.min(delay * 2, 60_000);
      });
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(refresh);
      source?.close();
    };
  }, [queryClient]);
  return <LiveContext.Provider value={connected}>{children}</LiveContext.Provider>;
}
