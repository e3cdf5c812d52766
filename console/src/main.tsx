// The console's entry: the query cache, the session, the routes (react-router in library mode, under
// /console/), and the sign-in pages outside the shell.
import './styles.css';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, StrictMode, Suspense } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter, Navigate, Route, Routes } from 'react-router';
import { ApiError } from './api/client.ts';
import { SessionProvider, useSession } from './api/session.tsx';
import { preloadScreenAt, SCREENS } from './screens/index.ts';
import { Layout } from './shell/Layout.tsx';
import { LiveEvents } from './shell/live.tsx';
import { RequireSession } from './shell/RequireSession.tsx';

const Login = lazy(() => import('./screens/Login.tsx'));
const Accept = lazy(() => import('./screens/Accept.tsx'));
const Reset = lazy(() => import('./screens/Reset.tsx'));

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not change by asking again; a lost connection or a 503 may.
      retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 2,
      staleTime: 10_000,
    },
  },
});

function Forbidden() {
  return (
    <div className="page">
      <h1>Not available</h1>
      <p>Your role does not give access to this screen.</p>
    </div>
  );
}

function Screens() {
  const { can } = useSession();
  return (
    <Routes>
      <Route path="login" element={<Login />} />
      <Route path="accept" element={<Accept />} />
      <Route path="reset" element={<Reset />} />
      <Route
        element={
          <RequireSession>
            <LiveEvents>
              <Layout />
            </LiveEvents>
          </RequireSession>
        }
      >
        <Route index element={<Navigate to="/inbox" replace />} />
        {SCREENS.map((s) => (
          <Route
            key={s.path}
            path={s.path}
            element={!s.permission || can(s.permission) ? <s.component /> : <Forbidden />}
          />
        ))}
        <Route
          path="*"
          element={
            <div className="page">
              <h1>Not found</h1>
              <p>There is no such page in the console.</p>
            </div>
          }
        />
      </Route>
    </Routes>
  );
}

preloadScreenAt(window.location.pathname);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <SessionProvider>
        <BrowserRouter basename="/console">
          <Suspense
            fallback={
              <p role="status" className="status">
                Loading…
              </p>
            }
          >
            <Screens />
          </Suspense>
        </BrowserRouter>
      </SessionProvider>
    </QueryClientProvider>
  </StrictMode>,
);
