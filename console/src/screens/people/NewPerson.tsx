// A new person: a contact, or an agent who is invited to the console at once (status `invited`; the
// invitation goes by mail, or its link is shown when no mailbox can send it).
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useNavigate } from 'react-router';
import { api, describeError, unwrap } from '../../api/client.ts';
import { useSignedIn } from '../../api/session.tsx';
import { DialogActions, ModalDialog } from '../../lib/Dialogs.tsx';
import { Field } from '../../lib/Field.tsx';
import { InvitationResult, type Invitation } from './Invite.tsx';
import { personHref } from './PersonLink.tsx';
import { type PersonKind, type PersonRole, ROLE_LABELS } from './shared.ts';

export function NewPerson({ isOpen, onOpenChange }: { isOpen: boolean; onOpenChange(open: boolean): void }) {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [kind, setKind] = useState<PersonKind>('agent');
  const [role, setRole] = useState<PersonRole>('agent');
  const [invite, setInvite] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [invited, setInvited] = useState<{ id: string; invitation: Invitation } | undefined>();
  const mayGrant = me.can('tokens:manage');

  const close = (open: boolean) => {
    if (open) return;
    onOpenChange(false);
    setName('');
    setEmail('');
    setError(undefined);
    setInvited(undefined);
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const inviting = kind === 'agent' && invite;
      const person = await unwrap(
        api.POST('/api/v1/people', {
          body: {
            displayName: name.trim(),
            kind,
            ...(email.trim() ? { email: email.trim() } : {}),
            ...(kind === 'agent' && mayGrant ? { role } : {}),
            ...(inviting ? { status: 'invited' as const } : {}),
          },
        }),
      );
      await queryClient.invalidateQueries({ queryKey: ['people'] });
      if (inviting) {
        const invitation = await unwrap(
          api.POST('/api/v1/people/{id}/invitation', { params: { path: { id: person.id } } }),
        );
        setInvited({ id: person.id, invitation });
      } else {
        close(false);
        navigate(personHref(person.id));
      }
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <ModalDialog isOpen={isOpen} onOpenChange={close} title="New person">
      {invited ? (
        <>
          <InvitationResult invitation={invited.invitation} name={name} />
          <div className="dialog-actions">
            <button
              type="button"
              className="button-primary"
              onClick={() => {
                const id = invited.id;
                close(false);
                navigate(personHref(id));
              }}
            >
              Open their page
            </button>
          </div>
        </>
      ) : (
        <form onSubmit={submit}>
          <Field
            label="Name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            required
            maxLength={200}
          />
          <Field
            label="Email address"
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            required={kind === 'agent' && invite}
          />
          <fieldset className="choice">
            <legend>Kind</legend>
            <label>
              <input type="radio" checked={kind === 'agent'} onChange={() => setKind('agent')} /> Agent (works
              in the console)
            </label>
            <label>
              <input type="radio" checked={kind === 'contact'} onChange={() => setKind('contact')} /> Contact
              (writes to the desk)
            </label>
          </fieldset>
          {kind === 'agent' && (
            <>
              {mayGrant && (
                <div className="field">
                  <label htmlFor="new-person-role">Role</label>
                  <select
                    id="new-person-role"
                    value={role}
                    onChange={(e) => setRole(e.target.value as PersonRole)}
                  >
                    {Object.entries(ROLE_LABELS).map(([r, label]) => (
                      <option key={r} value={r}>
                        {label}
                      </option>
                    ))}
                  </select>
                </div>
              )}
              <label className="check-label">
                <input type="checkbox" checked={invite} onChange={(e) => setInvite(e.target.checked)} />{' '}
                Invite them to the console now
              </label>
            </>
          )}
          {error && (
            <p className="status status-error" role="alert">
              {error}
            </p>
          )}
          <DialogActions
            submitLabel={kind === 'agent' && invite ? 'Create and invite' : 'Create'}
            busy={busy}
          />
        </form>
      )}
    </ModalDialog>
  );
}
