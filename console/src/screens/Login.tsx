// Sign-in: email and password (and the workspace, when the address is in several), then the
// authenticator code when the account has two-factor sign-in, or single sign-on through the
// workspace's providers. Also asks for a password reset link. Comes back to where the person was.
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { Navigate, useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, describeError, unwrap } from '../api/client.ts';
import { useSession } from '../api/session.tsx';
import { Field, safeReturnTo } from '../lib/Field.tsx';

type Step = 'password' | 'second-factor' | 'reset' | 'reset-sent';

function waitText(seconds: number | undefined): string {
  if (!seconds) return 'Try again later.';
  return seconds < 90
    ? `Try again in ${seconds} seconds.`
    : `Try again in ${Math.ceil(seconds / 60)} minutes.`;
}

export default function Login() {
  const { session, signedIn, expired } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const returnTo = safeReturnTo(params.get('returnTo')) ?? '/inbox';
  const [step, setStep] = useState<Step>('password');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenant, setTenant] = useState(params.get('tenant') ?? '');
  const [askTenant, setAskTenant] = useState(params.has('tenant'));
  const [code, setCode] = useState('');
  const [useRecovery, setUseRecovery] = useState(false);
  const [error, setError] = useState<string | undefined>(
    params.get('error') === 'sso_failed'
      ? 'Single sign-on did not sign you in: your account may not be allowed to use it. Try again or use your password.'
      : undefined,
  );
  const [busy, setBusy] = useState(false);
  const codeRef = useRef<HTMLInputElement>(null);
  const tenantRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = 'Sign in · Relaydesk';
  }, []);
  useEffect(() => {
    if (step === 'second-factor') codeRef.current?.focus();
  }, [step, useRecovery]);
  useEffect(() => {
    if (askTenant && !params.has('tenant')) tenantRef.current?.focus();
  }, [askTenant, params]);

  // The workspace's providers, asked again once the workspace name stops changing.
  const [providerTenant, setProviderTenant] = useState(tenant.trim());
  useEffect(() => {
    const timer = setTimeout(() => setProviderTenant(tenant.trim()), 400);
    return () => clearTimeout(timer);
  }, [tenant]);
  const providers = useQuery({
    queryKey: ['sso-providers', providerTenant],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/sso/providers', {
          params: { query: providerTenant ? { tenant: providerTenant } : {} },
        }),
      ),
    retry: false,
    staleTime: 60_000,
  });

  if (session && !busy) return <Navigate to={returnTo} replace />;

  const signIn = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const { session: next } = await unwrap(
        api.POST('/api/v1/session', {
          body: {
            email: email.trim(),
            password,
            ...(tenant.trim() ? { tenant: tenant.trim() } : {}),
            ...(step === 'second-factor' ? { [useRecovery ? 'recoveryCode' : 'totp']: code.trim() } : {}),
          },
        }),
      );
      signedIn(next);
      navigate(returnTo, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'second_factor_required') {
        setStep('second-factor');
      } else if (err instanceof ApiError && err.code === 'tenant_required') {
        setAskTenant(true);
        setError('This address belongs to several workspaces. Type the name of the one to sign in to.');
      } else if (err instanceof ApiError && err.code === 'invalid_credentials') {
        setError(
          step === 'second-factor'
            ? 'That code is not right. Try the current code of your authenticator app.'
            : 'The email address or the password is not right.',
        );
        if (step === 'second-factor') setCode('');
      } else if (err instanceof ApiError && err.status === 429) {
        setError(`Too many attempts. ${waitText(err.retryAfter)}`);
      } else {
        setError(describeError(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const requestReset = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await unwrap(
        api.POST('/api/v1/password-reset', {
          body: { email: email.trim(), ...(tenant.trim() ? { tenant: tenant.trim() } : {}) },
        }),
      );
      setStep('reset-sent');
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 429
          ? `Too many requests. ${waitText(err.retryAfter)}`
          : describeError(err),
      );
    } finally {
      setBusy(false);
    }
  };

  const ssoHref = (provider: string) => {
    const q = new URLSearchParams({ returnTo: `/console${returnTo}` });
    if (tenant.trim()) q.set('tenant', tenant.trim());
    return `/auth/oidc/${encodeURIComponent(provider)}/start?${q.toString()}`;
  };

  const tenantField = askTenant && (
    <Field
      ref={tenantRef}
      label="Workspace"
      hint="The name of your organisation's workspace"
      name="tenant"
      autoComplete="organization"
      value={tenant}
      onChange={(e) => setTenant(e.target.value)}
      required
    />
  );

  return (
    <main className="signin" id="main">
      <span className="brand">Relaydesk</span>
      {step === 'password' && (
        <>
          <h1>Sign in</h1>
          {expired && !error && (
            <p className="notice" role="status">
              Your session has ended. Sign in again to continue.
            </p>
          )}
          {error && (
            <p className="notice notice-error" role="alert">
              {error}
            </p>
          )}
          <form onSubmit={signIn} noValidate={false}>
            <Field
              label="Email"
              type="email"
              name="email"
              autoComplete="username"
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              required
              autoFocus
            />
            <Field
              label="Password"
              type="password"
              name="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
            {tenantField}
            <button type="submit" className="button-primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Sign in'}
            </button>
          </form>
          <p className="row">
            <button type="button" className="link-button" onClick={() => setStep('reset')}>
              Forgot your password?
            </button>
            {!askTenant && (
              <button type="button" className="link-button" onClick={() => setAskTenant(true)}>
                Choose a workspace
              </button>
            )}
          </p>
          {(providers.data?.providers.length ?? 0) > 0 && (
            <div className="sso" aria-label="Single sign-on" role="group">
              {providers.data!.providers.map((p) => (
                <a key={p.provider} className="button" href={ssoHref(p.provider)}>
                  Sign in with {p.label}
                </a>
              ))}
            </div>
          )}
        </>
      )}
      {step === 'second-factor' && (
        <>
          <h1>Two-factor sign-in</h1>
          {error && (
            <p className="notice notice-error" role="alert">
              {error}
            </p>
          )}
          <form onSubmit={signIn}>
            <Field
              ref={codeRef}
              label={useRecovery ? 'Recovery code' : 'Authenticator code'}
              hint={
                useRecovery
                  ? 'One of the recovery codes you saved when you set up two-factor sign-in. Each works once.'
                  : 'The 6-digit code your authenticator app shows now.'
              }
              name={useRecovery ? 'recoveryCode' : 'totp'}
              autoComplete="one-time-code"
              inputMode={useRecovery ? 'text' : 'numeric'}
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required
            />
            <button type="submit" className="button-primary" disabled={busy}>
              {busy ? 'Checking…' : 'Continue'}
            </button>
          </form>
          <p className="row">
            <button
              type="button"
              className="link-button"
              onClick={() => {
                setUseRecovery((r) => !r);
                setCode('');
                setError(undefined);
              }}
            >
              {useRecovery ? 'Use the authenticator app' : 'Use a recovery code'}
            </button>
            <button
              type="button"
              className="link-button"
              onClick={() => {
                setStep('password');
                setCode('');
                setPassword('');
                setError(undefined);
              }}
            >
              Start again
            </button>
          </p>
        </>
      )}
      {step === 'reset' && (
        <>
          <h1>Reset your password</h1>
          <p>Type your email address: a link to choose a new password is sent to it if it has an account.</p>
          {error && (
            <p className="notice notice-error" role="alert">
              {error}
            </p>
          )}
          <form onSubmit={requestReset}>
            <Field
              label="Email"
              type="email"
              name="email"
              autoComplete="username"
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              required
              autoFocus
            />
            {tenantField}
            <button type="submit" className="button-primary" disabled={busy}>
              Send the link
            </button>
          </form>
          <p>
            <button type="button" className="link-button" onClick={() => setStep('password')}>
              Back to sign-in
            </button>
          </p>
        </>
      )}
      {step === 'reset-sent' && (
        <>
          <h1>Check your email</h1>
          <p role="status">
            If {email.trim() || 'that address'} has an account, a link to choose a new password is on its way.
            It works once, for an hour.
          </p>
          <p>
            <button type="button" className="link-button" onClick={() => setStep('password')}>
              Back to sign-in
            </button>
          </p>
        </>
      )}
    </main>
  );
}
