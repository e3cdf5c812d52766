// Two-factor sign-in for the signed-in person: set it up (the secret and its otpauth URI to type or
// paste into an authenticator app, then a code to confirm), see the recovery codes once, make a new
// set, or turn it off. When the workspace requires it, the console shows only this page until done.
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Link } from 'react-router';
import { api, describeError, unwrap } from '../api/client.ts';
import { SESSION_KEY, useSignedIn } from '../api/session.tsx';
import { Field } from '../lib/Field.tsx';
import { Page } from '../shell/Page.tsx';

type Enrolment = { secret: string; otpauthUri: string };

function RecoveryCodes({ codes }: { codes: string[] }) {
  return (
    <section aria-labelledby="recovery-title">
      <h2 id="recovery-title">Your recovery codes</h2>
      <p className="notice notice-warning">
        Keep these somewhere safe: each signs you in once if you lose your authenticator. They are shown only
        now.
      </p>
      <ol className="recovery-codes">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ol>
    </section>
  );
}

export default function TwoFactor() {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const [enrolment, setEnrolment] = useState<Enrolment | undefined>();
  const [codes, setCodes] = useState<string[] | undefined>();
  const [code, setCode] = useState('');
  const [action, setAction] = useState<'disable' | 'new-codes' | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const enabled = me.totp.enabled;

  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  const refreshSession = () => queryClient.invalidateQueries({ queryKey: SESSION_KEY });

  const start = () =>
    run(async () => {
      setCodes(undefined);
      setEnrolment(await unwrap(api.POST('/api/v1/session/totp')));
    });
  const confirm = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      const { recoveryCodes } = await unwrap(
        api.POST('/api/v1/session/totp/confirm', { body: { code: code.trim() } }),
      );
      setCodes(recoveryCodes);
      setEnrolment(undefined);
      setCode('');
      await refreshSession();
    });
  };
  const withCode = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      if (action === 'disable') {
        await unwrap(api.DELETE('/api/v1/session/totp', { body: { code: code.trim() } }));
        await refreshSession();
      } else {
        const { recoveryCodes } = await unwrap(
          api.POST('/api/v1/session/recovery-codes', { body: { code: code.trim() } }),
        );
        setCodes(recoveryCodes);
      }
      setAction(undefined);
      setCode('');
    });
  };

  return (
    <Page title="Two-factor sign-in">
      {me.totp.required && !enabled && (
        <p className="notice notice-warning" role="status">
          Your workspace requires two-factor sign-in. Set it up to continue to the console.
        </p>
      )}
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      {codes && <RecoveryCodes codes={codes} />}
      {codes && enabled && (
        <p>
          <Link to="/inbox">Continue to the inbox</Link>
        </p>
      )}
      {!enabled && !enrolment && (
        <>
          <p>
            With two-factor sign-in, signing in with your password also asks for a code from an authenticator
            app on your phone.
          </p>
          <button type="button" className="button-primary" onClick={start} disabled={busy}>
            Set up two-factor sign-in
          </button>
        </>
      )}
      {enrolment && (
        <section aria-labelledby="enrol-title">
          <h2 id="enrol-title">Add Relaydesk to your authenticator app</h2>
          <p>
            In the app, add an account by hand with this secret key (time-based, 6 digits, every 30 seconds):
          </p>
          <p>
            <code data-testid="totp-secret">{enrolment.secret}</code>
          </p>
          <p>Or paste this address where the app takes one:</p>
          <p>
            <code data-testid="totp-uri">{enrolment.otpauthUri}</code>
          </p>
          <form onSubmit={confirm}>
            <Field
              label="The code the app shows now"
              name="code"
              inputMode="numeric"
              autoComplete="one-time-code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required
              autoFocus
            />
            <button type="submit" className="button-primary" disabled={busy}>
              Turn on two-factor sign-in
            </button>
          </form>
        </section>
      )}
      {enabled && (
        <>
          <p className="notice" role="status">
            Two-factor sign-in is on for your account.
          </p>
          {!action && (
            <div className="row">
              <button type="button" className="button" onClick={() => setAction('new-codes')}>
                Make new recovery codes
              </button>
              {!me.totp.required && (
                <button type="button" className="button-danger" onClick={() => setAction('disable')}>
                  Turn off two-factor sign-in
                </button>
              )}
            </div>
          )}
          {action && (
            <form onSubmit={withCode}>
              <Field
                label="A code from your authenticator app"
                hint={action === 'new-codes' ? 'The codes you have now stop working.' : undefined}
                name="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                value={code}
                onChange={(e) => setCode(e.target.value)}
                required
                autoFocus
              />
              <div className="row">
                <button
                  type="submit"
                  className={action === 'disable' ? 'button-danger' : 'button-primary'}
                  disabled={busy}
                >
                  {action === 'disable' ? 'Turn off' : 'Make new codes'}
                </button>
                <button type="button" className="button" onClick={() => setAction(undefined)}>
                  Cancel
                </button>
              </div>
            </form>
          )}
        </>
      )}
    </Page>
  );
}
