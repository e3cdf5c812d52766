// Who is signed in: the session (GET /api/v1/session), kept by TanStack Query under ['session'].
// null means signed out. Its CSRF token goes with every write; a request that finds the session gone
// empties it, and the pages behind sign-in send the person to the sign-in page and back.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext, useEffect, useMemo, useState } from 'react';
import { type Permission, permissionsOf, type TokenRole } from '../../../src/modules/tokens/permissions.ts';
import { api, ApiError, setCsrfToken, unwrap, whenSessionLost } from './client.ts';
import { dropEarly } from './early.ts';
import type { SessionInfo } from './types.ts';

export type { SessionInfo };

export const SESSION_KEY = ['session'] as const;

/** The session, or null when there is none (401). Other failures are thrown. */
export async function fetchSession(): Promise<SessionInfo | null> {
  try {
    return (await unwrap(api.GET('/api/v1/session'))).session;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

interface SessionState {
  session: SessionInfo | null | undefined;
  /** True once a request found the session gone (not after signing out on purpose). */
  expired: boolean;
  loading: boolean;
  error: unknown;
  can(permission: Permission): boolean;
  /** Stores a session a sign-in route answered with. */
  signedIn(session: SessionInfo): void;
  /** Forgets the session (after DELETE /session). */
  signedOut(): void;
}

const SessionContext = createContext<SessionState | undefined>(undefined);

export function SessionProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [expired, setExpired] = useState(false);
  const query = useQuery({
    queryKey: SESSION_KEY,
    queryFn: fetchSession,
    staleTime: 60_000,
    retry: (count, err) => !(err instanceof ApiError) && count < 2,
  });
  const session = query.data;
  useEffect(() => setCsrfToken(session?.csrfToken), [session?.csrfToken]);
  useEffect(
    () =>
      whenSessionLost(() => {
        if (queryClient.getQueryData(SESSION_KEY) === null) return;
        dropEarly();
        setExpired(true);
        setCsrfToken(undefined);
        queryClient.setQueryData(SESSION_KEY, null);
        // Nothing fetched for the person before stays on screen for whoever signs in next.
        queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== SESSION_KEY[0] });
      }),
    [queryClient],
  );
  const value = useMemo<SessionState>(() => {
    const permissions: readonly string[] = session ? permissionsOf(session.person.role as TokenRole) : [];
    return {
      session,
      expired,
      loading: query.isPending,
      error: query.error,
      can: (permission) => permissions.includes(permission),
      signedIn(next) {
        dropEarly();
        setExpired(false);
        setCsrfToken(next.csrfToken);
        queryClient.setQueryData(SESSION_KEY, next);
      },
      signedOut() {
        dropEarly();
        setExpired(false);
        setCsrfToken(undefined);
        queryClient.setQueryData(SESSION_KEY, null);
        queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== SESSION_KEY[0] });
      },
    };
  }, [session, expired, query.isPending, query.error, queryClient]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside SessionProvider');
  return state;
}

/** The signed-in session; only for components rendered behind RequireSession. */
export function useSignedIn(): SessionInfo & { can(permission: Permission): boolean } {
  const { session, can } = useSession();
  if (!session) throw new Error('useSignedIn without a session');
  return { ...session, can };
}
