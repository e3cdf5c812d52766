// The console around every screen: the top bar (name, tenant, live indicator, account menu), the
// re-authorisation banner, the navigation (a side column at desktop widths, a menu below ~900 px),
// the screen itself and the keyboard shortcuts dialog.
import { lazy, Suspense, useEffect, useState } from 'react';
import { Link, NavLink, Outlet, useLocation, useNavigate } from 'react-router';
import { api, ApiError, describeError, unwrap } from '../api/client.ts';
import { useSession, useSignedIn } from '../api/session.tsx';
import { later } from '../lib/later.tsx';
import { SCREENS } from '../screens/index.ts';
import { useLiveConnected } from './live.tsx';
import { ReauthBanner } from './ReauthBanner.tsx';
import { useKeys } from './shortcuts.ts';

// react-aria's menu and dialog are large: the menu comes after the first screen, the dialog when asked for.
const AccountMenu = later(() => import('./AccountMenu.tsx'));
const HelpDialog = lazy(() => import('./HelpDialog.tsx'));

/** The navigation label with its shortcut letter marked. */
function NavLabel({ label, shortcut }: { label: string; shortcut: string | undefined }) {
  const at = shortcut ? label.toLowerCase().indexOf(shortcut) : -1;
  if (at < 0) return <>{label}</>;
  return (
    <>
      {label.slice(0, at)}
      <span className="nav-key">{label[at]}</span>
      {label.slice(at + 1)}
    </>
  );
}

export function Layout() {
  const me = useSignedIn();
  const { signedOut } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const live = useLiveConnected();
  const [helpOpen, setHelpOpen] = useState(false);
  const [navOpen, setNavOpen] = useState(false);
  const [signOutError, setSignOutError] = useState<string | undefined>();
  // A session that must enrol in two-factor sign-in first may open nothing else.
  const restricted = me.totp.required && !me.totp.enabled;
  const screens = restricted ? [] : SCREENS.filter((s) => s.nav && (!s.permission || me.can(s.permission)));

  useEffect(() => setNavOpen(false), [location.pathname]);

  const bindings: Record<string, () => void> = { '?': () => setHelpOpen(true) };
  for (const s of screens) if (s.key) bindings[`g ${s.key}`] = () => navigate(`/${s.path}`);
  useKeys(bindings);

  const signOut = async (everywhere: boolean) => {
    try {
      await unwrap(everywhere ? api.DELETE('/api/v1/sessions') : api.DELETE('/api/v1/session'));
    } catch (err) {
      // Already signed out (401) is what was wanted; anything else is worth saying.
      if (!(err instanceof ApiError && err.status === 401)) {
        setSignOutError(describeError(err));
        return;
      }
    }
    signedOut();
    navigate('/login', { replace: true });
  };

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="nav-toggle button-plain"
          aria-expanded={navOpen}
          aria-controls="main-nav"
          onClick={() => setNavOpen((o) => !o)}
        >
          Menu
        </button>
        <Link to="/inbox" className="brand">
          Relaydesk
        </Link>
        <span className="tenant" title="Workspace">
          {me.tenant.name}
        </span>
        <span className={live ? 'live live-on' : 'live'} data-live={live ? 'on' : 'off'}>
          {live ? 'Live' : 'Offline'}
        </span>
        <AccountMenu
          name={me.person.displayName}
          onAction={(action) => {
            if (action === 'two-factor') navigate('/account/two-factor');
            if (action === 'help') setHelpOpen(true);
            if (action === 'sign-out') void signOut(false);
            if (action === 'sign-out-everywhere') void signOut(true);
          }}
          fallback={
            <button
              type="button"
              className="button-plain account"
              aria-label={`Account: ${me.person.displayName}`}
              disabled
            >
              {me.person.displayName}
            </button>
          }
        />
      </header>
      {!restricted && <ReauthBanner />}
      {signOutError && (
        <div className="banner banner-error" role="alert">
          Signing out failed: {signOutError}
        </div>
      )}
      <div className="frame">
        <nav id="main-nav" aria-label="Main" className={navOpen ? 'sidebar open' : 'sidebar'}>
          <ul>
            {screens.map((s) => (
              <li key={s.path}>
                <NavLink to={`/${s.path}`} className="nav-link">
                  <NavLabel label={s.nav!} shortcut={s.key} />
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <Suspense
            fallback={
              <p role="status" className="status">
                Loading…
              </p>
            }
          >
            <Outlet />
          </Suspense>
        </main>
      </div>
      {helpOpen && (
        <Suspense fallback={null}>
          <HelpDialog isOpen onOpenChange={setHelpOpen} />
        </Suspense>
      )}
    </div>
  );
}
