// The pages a mailed link opens: accepting an invitation (/accept?token=) and choosing a new password
// (/reset?token=). Both choose a password and sign the person in.
import { type FormEvent, useEffect, useState } from 'react';
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, describeError, unwrap } from '../api/client.ts';
import { useSession } from '../api/session.tsx';
import { Field } from '../lib/Field.tsx';

export const MIN_PASSWORD = 12;
export const MAX_PASSWORD = 256;

export function SetPassword({ kind }: { kind: 'invitation' | 'reset' }) {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const { signedIn } = useSession();
  const navigate = useNavigate();
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [fieldError, setFieldError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const title = kind === 'invitation' ? 'Welcome to Relaydesk' : 'Choose a new password';

  useEffect(() => {
    document.title = `${title} · Relaydesk`;
  }, [title]);

  if (done) return <Navigate to="/inbox" replace />;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setFieldError(undefined);
    if (password.length < MIN_PASSWORD) return setFieldError(`At least ${MIN_PASSWORD} characters.`);
    if (password.length > MAX_PASSWORD) return setFieldError(`At most ${MAX_PASSWORD} characters.`);
    if (password !== again) return setFieldError('The two passwords are not the same.');
    setBusy(true);
    try {
      const { session } =
        kind === 'invitation'
          ? await unwrap(
              api.POST('/api/v1/invitations/accept', {
                body: { token, password, ...(displayName.trim() ? { displayName: displayName.trim() } : {}) },
              }),
            )
          : await unwrap(api.POST('/api/v1/password-reset/complete', { body: { token, password } }));
      signedIn(session);
      setDone(true);
      navigate('/inbox', { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'invalid_token') {
        setError(
          kind === 'invitation'
            ? 'This invitation link does not work any more: it was used already or it expired. Ask an admin for a new one.'
            : 'This link does not work any more: it was used already or it expired. Ask for a new one on the sign-in page.',
        );
      } else if (err instanceof ApiError && err.code === 'validation_failed') {
        setFieldError(describeError(err));
      } else {
        setError(describeError(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <span className="brand">Relaydesk</span>
      <h1>{title}</h1>
      {!token ? (
        <p className="notice notice-error" role="alert">
          This page needs the link from your email, complete with its token. Open the link again.
        </p>
      ) : (
        <>
          <p>
            {kind === 'invitation'
              ? 'Choose the password you will sign in with.'
              : 'Choose a new password for your account.'}
          </p>
          {error && (
            <p className="notice notice-error" role="alert">
              {error}
            </p>
          )}
          <form onSubmit={submit}>
            {kind === 'invitation' && (
              <Field
                label="Your name"
                hint="As your colleagues and customers see it (you may leave it as it is)"
                name="displayName"
                autoComplete="name"
                value={displayName}
                onChange={(e) => setDisplayName(e.target.value)}
              />
            )}
            <Field
              label="New password"
              hint={`At least ${MIN_PASSWORD} characters`}
              type="password"
              name="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              error={fieldError}
              required
              autoFocus
            />
            <Field
              label="The same password again"
              type="password"
              name="passwordAgain"
              autoComplete="new-password"
              value={again}
              onChange={(e) => setAgain(e.target.value)}
              required
            />
            <button type="submit" className="button-primary" disabled={busy}>
              {kind === 'invitation' ? 'Set the password and sign in' : 'Save and sign in'}
            </button>
          </form>
        </>
      )}
      <p>
        <Link to="/login">Back to sign-in</Link>
      </p>
    </main>
  );
}
