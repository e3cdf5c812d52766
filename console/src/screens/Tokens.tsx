// API tokens of the workspace, for integrations and scripts: the list (never a plaintext), minting
// one for a person with a role and a label (its plaintext shown once, with a copy button: only its
// hash is stored), and revoking one (after a confirmation: whatever uses it stops working at once).
import { LoadMore } from '../lib/LoadMore.tsx';
import { useInfiniteQuery, useQueries, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useMemo, useRef, useState } from 'react';
import { Button, Dialog, Heading, Modal, ModalOverlay } from 'react-aria-components';
import { api, describeError, unwrap } from '../api/client.ts';
import { useSignedIn } from '../api/session.tsx';
import type { Json } from '../api/types.ts';
import { Field } from '../lib/Field.tsx';
import { PersonPicker } from '../lib/people.tsx';
import { formatTime } from '../lib/time.ts';
import { Page, Status } from '../shell/Page.tsx';
import './operations.css';
import './Tokens.css';

type Token = Json<'/api/v1/tokens', 'get'>['items'][number];
type Minted = Json<'/api/v1/tokens', 'post'>;
type Role = Token['role'];

const ROLES: { id: Role; label: string; hint: string }[] = [
  { id: 'integration', label: 'Integration', hint: 'reads and writes tickets and people, submits mail' },
  { id: 'agent', label: 'Agent', hint: 'works tickets, reads and retries deliveries' },
  { id: 'viewer', label: 'Viewer', hint: 'reads tickets and people' },
  { id: 'admin', label: 'Admin', hint: 'everything, including tokens and settings' },
];
const roleLabel = (r: Role) => ROLES.find((x) => x.id === r)?.label ?? r;

/** The new token's plaintext, once, with a copy button; gone when dismissed. */
function NewToken({ minted, onDone }: { minted: Minted; onDone(): void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | undefined>();
  useEffect(() => heading.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(minted.token);
      setCopied('Copied to the clipboard.');
    } catch {
      // No clipboard access (an old browser, a refused permission): select it for Ctrl+C.
      input.current?.select();
      setCopied('Selected: press Ctrl+C (or ⌘C) to copy it.');
    }
  };
  return (
    <section className="new-token" aria-labelledby="new-token-title">
      <h2 id="new-token-title" ref={heading} tabIndex={-1}>
        New token {minted.label ? `“${minted.label}”` : ''}
      </h2>
      <p>
        Copy it now: this is the only time it is shown. Relaydesk keeps only a hash of it and shows its last
        four characters afterwards.
      </p>
      <div className="new-token-value">
        <label htmlFor="new-token-value" className="visually-hidden">
          The new token
        </label>
        <input
          id="new-token-value"
          ref={input}
          readOnly
          value={minted.token}
          spellCheck={false}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" className="button-primary" onClick={() => void copy()}>
          Copy
        </button>
      </div>
      <p className="status status-ok" role="status">
        {copied ?? ''}
      </p>
      <button type="button" className="button" onClick={onDone}>
        I have stored it
      </button>
    </section>
  );
}

function MintForm({ onMinted }: { onMinted(minted: Minted): void }) {
  const me = useSignedIn();
  const queryClient = useQueryClient();
  const [label, setLabel] = useState('');
  const [role, setRole] = useState<Role>('integration');
  const [personId, setPersonId] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const minted = await unwrap(
        api.POST('/api/v1/tokens', {
          body: { role, label: label.trim(), ...(personId ? { personId } : {}) },
        }),
      );
      setLabel('');
      onMinted(minted);
      await queryClient.invalidateQueries({ queryKey: ['tokens'] });
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="mint panel" onSubmit={submit} aria-labelledby="mint-title">
      <h2 id="mint-title">Create a token</h2>
      <div className="mint-fields">
        <Field
          label="Label"
          hint="What uses it, e.g. “CRM sync”"
          value={label}
          onChange={(e) => setLabel(e.target.value)}
          maxLength={200}
        />
        <div className="field">
          <label htmlFor="mint-role">Role</label>
          <select id="mint-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r.id} value={r.id}>
                {r.label}: {r.hint}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <PersonPicker label="For (empty: yourself)" value={personId} onChange={setPersonId} />
        </div>
      </div>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" className="button-primary" disabled={busy}>
        {busy
          ? 'Creating…'
          : `Create ${roleLabel(role).toLowerCase()} token${personId ? '' : ` for ${me.person.displayName}`}`}
      </button>
    </form>
  );
}

function RevokeDialog({
  token,
  owner,
  onClose,
  onRevoked,
}: {
  token: Token | undefined;
  owner: string;
  onClose(): void;
  onRevoked(text: string): void;
}) {
  const queryClient = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => setError(undefined), [token]);
  const revoke = async () => {
    if (!token) return;
    setBusy(true);
    try {
      await unwrap(api.DELETE('/api/v1/tokens/{id}', { params: { path: { id: token.id } } }));
      onRevoked(`The token ${token.label ? `“${token.label}” ` : ''}ending in ${token.preview} is revoked.`);
      onClose();
      await queryClient.invalidateQueries({ queryKey: ['tokens'] });
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <ModalOverlay
      className="modal-overlay"
      isOpen={token !== undefined}
      onOpenChange={(open) => !open && onClose()}
      isDismissable
    >
      <Modal className="modal">
        <Dialog className="dialog" role="alertdialog" aria-labelledby="revoke-title">
          <Heading slot="title" id="revoke-title">
            Revoke this token?
          </Heading>
          {token && (
            <p>
              The {roleLabel(token.role).toLowerCase()} token {token.label ? `“${token.label}” ` : ''}of{' '}
              {owner}, ending in <code>{token.preview}</code>, stops working at once: whatever uses it gets
              “unauthorized” from then on. This cannot be undone.
            </p>
          )}
          {error && <Status kind="error">{error}</Status>}
          <div className="dialog-actions">
            <Button slot="close" className="button">
              Keep it
            </Button>
            <button type="button" className="button-danger" onClick={() => void revoke()} disabled={busy}>
              {busy ? 'Revoking…' : 'Revoke'}
            </button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

export default function Tokens() {
  const me = useSignedIn();
  const tz = me.person.timeZone;
  const [minted, setMinted] = useState<Minted | undefined>();
  const [revoking, setRevoking] = useState<Token | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [showRevoked, setShowRevoked] = useState(false);

  const tokens = useInfiniteQuery({
    queryKey: ['tokens', 'list'],
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/tokens', {
          params: { query: { limit: 100, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const all = useMemo(() => tokens.data?.pages.flatMap((p) => p.items) ?? [], [tokens.data]);
  const rows = showRevoked ? all : all.filter((t) => !t.revokedAt);
  const revokedCount = all.length - all.filter((t) => !t.revokedAt).length;

  // Whose each token is: one request per person, kept a while (most tokens belong to a few people).
  const personIds = useMemo(() => [...new Set(all.map((t) => t.personId))], [all]);
  const people = useQueries({
    queries: personIds.map((id) => ({
      queryKey: ['person', id],
      queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id } } })),
      staleTime: 300_000,
    })),
  });
  const names = new Map<string, string>();
  personIds.forEach((id, i) => {
    const p = people[i]?.data;
    if (p) names.set(id, id === me.person.id ? `${p.displayName} (you)` : p.displayName);
  });
  const ownerOf = (t: Token) => names.get(t.personId) ?? 'someone';

  return (
    <Page title="Tokens" wide>
      <p className="summary-line">
        Tokens let integrations and scripts use the API (
        <code className="nowrap">Authorization: Bearer rd_…</code>). People sign in to the console with their
        password or single sign-on, not with a token.
      </p>
      {minted ? (
        <NewToken minted={minted} onDone={() => setMinted(undefined)} />
      ) : (
        <MintForm
          onMinted={(m) => {
            setNotice(undefined);
            setMinted(m);
          }}
        />
      )}
      {notice && <Status kind="ok">{notice}</Status>}
      <div className="tokens-head">
        <h2>Tokens</h2>
        <label className="check-label">
          <input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} />{' '}
          Show revoked tokens{revokedCount > 0 ? ` (${revokedCount})` : ''}
        </label>
      </div>
      {tokens.isPending && <Status>Loading tokens…</Status>}
      {tokens.isError && <Status kind="error">{describeError(tokens.error)}</Status>}
      {tokens.isSuccess && rows.length === 0 && <Status>No tokens{showRevoked ? '' : ' in use'}.</Status>}
      {rows.length > 0 && (
        <table className="data-table tokens" aria-label="API tokens">
          <thead>
            <tr>
              <th scope="col">Label</th>
              <th scope="col">Person</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.id} data-token={t.preview} data-state={t.revokedAt ? 'revoked' : 'active'}>
                <th scope="row" data-label="Label" className="token-label">
                  <span>
                    {t.label || <span className="muted">No label</span>}
                    <span className="cell-sub">
                      ends in <code>{t.preview}</code>
                    </span>
                  </span>
                </th>
                <td data-label="Person">{ownerOf(t)}</td>
                <td data-label="Role">{roleLabel(t.role)}</td>
                <td data-label="Created">
                  <time dateTime={t.createdAt}>{formatTime(t.createdAt, tz)}</time>
                </td>
                <td data-label="Last used">
                  {t.lastUsedAt ? (
                    <time dateTime={t.lastUsedAt}>{formatTime(t.lastUsedAt, tz)}</time>
                  ) : (
                    <span className="muted">Never</span>
                  )}
                </td>
                <td data-label="State">
                  {t.revokedAt ? (
                    <span>
                      <span className="state state-neutral">Revoked</span>
                      <span className="cell-sub">{formatTime(t.revokedAt, tz)}</span>
                    </span>
                  ) : (
                    <span className="state state-ok">Active</span>
                  )}
                </td>
                <td className="actions" data-label="Actions">
                  {!t.revokedAt && (
                    <button
                      type="button"
                      className="button-danger button-small"
                      onClick={() => {
                        setNotice(undefined);
                        setRevoking(t);
                      }}
                      aria-label={`Revoke the token ending in ${t.preview}`}
                    >
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={tokens} />
      <RevokeDialog
        token={revoking}
        owner={revoking ? ownerOf(revoking) : ''}
        onClose={() => setRevoking(undefined)}
        onRevoked={setNotice}
      />
    </Page>
  );
}
