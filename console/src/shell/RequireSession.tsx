// The gate of every screen behind sign-in: while the session loads, a quiet page; without one, the
// sign-in page (which comes back here afterwards); with a session that must enrol in two-factor
// sign-in first (the tenant requires it), the enrolment page.
import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import { describeError } from '../api/client.ts';
import { useSession } from '../api/session.tsx';

export function RequireSession({ children }: { children: ReactNode }) {
  const { session, loading, error, expired } = useSession();
  const location = useLocation();
  if (loading) {
    return (
      <main className="center" id="main">
        <p role="status">Loading…</p>
      </main>
    );
  }
  if (error && !session) {
    return (
      <main className="center" id="main">
        <h1>The console cannot start</h1>
        <p role="alert">{describeError(error)}</p>
      </main>
    );
  }
  if (!session) {
    const here = location.pathname + location.search;
    const query = new URLSearchParams();
    if (here !== '/') query.set('returnTo', here);
    if (expired) query.set('expired', '1');
    const qs = query.toString();
    return <Navigate to={`/login${qs ? `?${qs}` : ''}`} replace />;
  }
  if (session.totp.required && !session.totp.enabled && location.pathname !== '/account/two-factor') {
    return <Navigate to="/account/two-factor" replace />;
  }
  return children;
}
