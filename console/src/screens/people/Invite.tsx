// Inviting an agent to the console (POST /people/:id/invitation), and what came of it: the link went
// by mail, or, when no mailbox can send it, the link itself to hand over.
import { useState } from 'react';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { formatTime } from '../../lib/time.ts';

export interface Invitation {
  expiresAt: string;
  link?: string;
}

export function InvitationResult({ invitation, name }: { invitation: Invitation; name: string }) {
  const me = useSignedIn();
  const until = formatTime(invitation.expiresAt, me.person.timeZone);
  if (!invitation.link)
    return (
      <p className="status status-ok" role="status">
        An invitation went to {name} by mail. Its link works once, until {until}.
      </p>
    );
  return (
    <div role="status">
      <p className="status status-ok">
        No mailbox can send the invitation: give {name} this link yourself. It works once, until {until}.
      </p>
      <label className="field">
        Invitation link
        <input readOnly value={invitation.link} onFocus={(e) => e.target.select()} />
      </label>
    </div>
  );
}

export function InviteButton({ personId, name }: { personId: string; name: string }) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Invitation | undefined>();
  const [error, setError] = useState<string | undefined>();
  const invite = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setResult(
        await unwrap(api.POST('/api/v1/people/{id}/invitation', { params: { path: { id: personId } } })),
      );
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="invite">
      <button type="button" className="button" onClick={() => void invite()} disabled={busy}>
        {result ? 'Send a new invitation' : 'Invite to the console'}
      </button>
      {result && <InvitationResult invitation={result} name={name} />}
      {error && (
        <p className="status status-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
