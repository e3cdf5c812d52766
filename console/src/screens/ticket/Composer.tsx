// The reply editor: a reply to the requester (by mail, with Cc and attachments) or an internal note;
// canned replies inserted by typing "/" or "::" and a few letters of their shortcut; Ctrl+Enter
// sends. Collision: it remembers the newest message when writing started and sends it as
// seenMessageId; when the server answers 409 ticket_changed, the agent reads what arrived and may
// send anyway.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  type FormEvent,
  type KeyboardEvent,
  useEffect,
  useId,
  useImperativeHandle,
  useLayoutEffect,
  useRef,
  useState,
} from 'react';
import { api, ApiError, describeError, send, unwrap } from '../../api/client.ts';
import type { Body, Message } from '../../api/types.ts';

export type ComposerMode = 'reply' | 'note';
export interface ComposerHandle {
  open(mode: ComposerMode): void;
}

interface Canned {
  id: string;
  shortcut: string;
  title: string;
}

type NewMessage = Body<'/api/v1/tickets/{id}/messages', 'post'>;

// "/thanks" at the start of a line or after a space, or "::thanks" likewise; what precedes the caret.
const TRIGGER = /(^|\s)(\/|::)([^\s/:]*)$/;

function useCannedReplies(): Canned[] {
  const canned = useQuery({
    queryKey: ['canned-replies'],
    queryFn: () => unwrap(api.GET('/api/v1/canned-replies', { params: { query: { limit: 200 } } })),
    staleTime: 300_000,
  });
  return canned.data?.items ?? [];
}

export function Composer({
  ticketId,
  newestMessageId,
  onWriting,
  ref,
}: {
  ticketId: string;
  newestMessageId: string | undefined;
  onWriting(writing: boolean): void;
  ref?: React.Ref<ComposerHandle>;
}) {
  const queryClient = useQueryClient();
  const id = useId();
  const textRef = useRef<HTMLTextAreaElement>(null);
  // Where the caret goes once an inserted canned reply is in the text: set as React writes the new
  // value, before any further key is handled (a later frame would move it back under what was typed).
  const caretAfter = useRef<number | undefined>(undefined);
  const [mode, setMode] = useState<ComposerMode>('reply');
  const [text, setText] = useState('');
  const [cc, setCc] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [seen, setSeen] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [changed, setChanged] = useState(false);
  const [sentNotice, setSentNotice] = useState<string | undefined>();
  const canned = useCannedReplies();
  const [trigger, setTrigger] = useState<{ start: number; query: string } | undefined>();
  const [active, setActive] = useState(0);

  useImperativeHandle(ref, () => ({
    open(next) {
      setMode(next);
      textRef.current?.focus();
    },
  }));

  useLayoutEffect(() => {
    const area = textRef.current;
    const at = caretAfter.current;
    if (!area || at === undefined) return;
    caretAfter.current = undefined;
    area.focus();
    area.setSelectionRange(at, at);
  }, [text]);

  const writing = text.trim() !== '';
  useEffect(() => onWriting(writing), [writing, onWriting]);
  // The newest message when writing started: what the agent had read.
  useEffect(() => {
    if (!writing) setSeen(undefined);
    else setSeen((s) => s ?? newestMessageId);
  }, [writing, newestMessageId]);
  const arrivedWhileWriting =
    writing && seen !== undefined && newestMessageId !== undefined && newestMessageId !== seen;

  const matches = trigger
    ? canned
        .filter(
          (c) =>
            c.shortcut.toLowerCase().startsWith(trigger.query.toLowerCase()) ||
            c.title.toLowerCase().includes(trigger.query.toLowerCase()),
        )
        .slice(0, 8)
    : [];
  const suggesting = trigger !== undefined && matches.length > 0;

  const findTrigger = (value: string, caret: number) => {
    const m = TRIGGER.exec(value.slice(0, caret));
    if (!m) return setTrigger(undefined);
    setTrigger({ start: caret - m[2]!.length - m[3]!.length, query: m[3]! });
    setActive(0);
  };

  const insert = async (reply: Canned) => {
    const area = textRef.current;
    if (!area || !trigger) return;
    const caret = area.selectionStart;
    const { start } = trigger;
    setTrigger(undefined);
    try {
      const { text: rendered } = await unwrap(
        api.POST('/api/v1/canned-replies/{id}/render', {
          params: { path: { id: reply.id } },
          body: { ticketId },
        }),
      );
      const next = text.slice(0, start) + rendered + text.slice(caret);
      caretAfter.current = start + rendered.length;
      setText(next);
    } catch (err) {
      setError(`The canned reply could not be inserted: ${describeError(err)}`);
    }
  };

  const post = async (withSeen: boolean) => {
    const visibility = mode === 'reply' ? 'public' : 'internal';
    const ccList = mode === 'reply' ? cc.split(/[\s,;]+/).filter(Boolean) : [];
    const seenMessageId = withSeen ? seen : undefined;
    if (files.length > 0) {
      const form = new FormData();
      form.append('text', text);
      form.append('visibility', visibility);
      if (ccList.length > 0) form.append('cc', ccList.join(','));
      if (seenMessageId) form.append('seenMessageId', seenMessageId);
      for (const f of files) form.append('attachments', f, f.name);
      return send<Message>('POST', `/api/v1/tickets/${ticketId}/messages`, form);
    }
    const body: NewMessage = {
      text,
      visibility,
      ...(ccList.length > 0 ? { cc: ccList } : {}),
      ...(seenMessageId ? { seenMessageId } : {}),
    };
    return unwrap(api.POST('/api/v1/tickets/{id}/messages', { params: { path: { id: ticketId } }, body }));
  };

  const submit = async (withSeen = true) => {
    if (!writing || busy) return;
    setBusy(true);
    setError(undefined);
    setSentNotice(undefined);
    try {
      await post(withSeen);
      setText('');
      setCc('');
      setFiles([]);
      setChanged(false);
      setSentNotice(mode === 'reply' ? 'Reply sent.' : 'Note added.');
      await queryClient.invalidateQueries({ queryKey: ['ticket', ticketId] });
      void queryClient.invalidateQueries({ queryKey: ['tickets'] });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'ticket_changed') {
        setChanged(true);
        void queryClient.invalidateQueries({ queryKey: ['ticket', ticketId, 'messages'] });
      } else {
        setError(describeError(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (suggesting) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        setActive((a) => (a + (event.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length);
        return;
      }
      if (event.key === 'Enter' || event.key === 'Tab') {
        event.preventDefault();
        void insert(matches[active]!);
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        setTrigger(undefined);
        return;
      }
    }
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      void submit();
    }
  };

  const listId = `${id}-canned`;
  return (
    <section className={`composer composer-${mode}`} aria-label="Reply or note">
      <div className="composer-modes" role="group" aria-label="Kind of message">
        <button
          type="button"
          className="mode"
          aria-pressed={mode === 'reply'}
          onClick={() => setMode('reply')}
        >
          Reply
        </button>
        <button type="button" className="mode" aria-pressed={mode === 'note'} onClick={() => setMode('note')}>
          Internal note
        </button>
      </div>
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void submit();
        }}
      >
        {mode === 'reply' && (
          <div className="field">
            <label htmlFor={`${id}-cc`}>Cc</label>
            <input
              id={`${id}-cc`}
              type="text"
              inputMode="email"
              placeholder="Addresses, separated by commas"
              value={cc}
              onChange={(e) => setCc(e.target.value)}
            />
          </div>
        )}
        <div className="field composer-text">
          <label htmlFor={`${id}-text`}>
            {mode === 'reply' ? 'Reply to the requester' : 'Note for the team (not sent)'}
          </label>
          <span className="field-hint" id={`${id}-hint`}>
            Type / or :: and a shortcut for a canned reply. Ctrl+Enter sends.
          </span>
          <textarea
            id={`${id}-text`}
            ref={textRef}
            rows={7}
            value={text}
            aria-describedby={`${id}-hint`}
            aria-autocomplete="list"
            aria-controls={suggesting ? listId : undefined}
            aria-activedescendant={suggesting ? `${listId}-${active}` : undefined}
            onChange={(e) => {
              setText(e.target.value);
              findTrigger(e.target.value, e.target.selectionStart);
            }}
            onKeyDown={onKeyDown}
            onBlur={() => setTimeout(() => setTrigger(undefined), 150)}
          />
          {suggesting && (
            <ul className="canned" id={listId} role="listbox" aria-label="Canned replies">
              {matches.map((c, i) => (
                <li
                  key={c.id}
                  id={`${listId}-${i}`}
                  role="option"
                  aria-selected={i === active}
                  className={i === active ? 'canned-item active' : 'canned-item'}
                  onMouseDown={(e) => {
                    e.preventDefault();
                    void insert(c);
                  }}
                >
                  <kbd>{c.shortcut}</kbd> {c.title}
                </li>
              ))}
            </ul>
          )}
        </div>
        {mode === 'reply' && (
          <div className="field">
            <label htmlFor={`${id}-files`}>Attachments</label>
            <input
              id={`${id}-files`}
              type="file"
              multiple
              onChange={(e) => {
                // Taken now: the list empties when the input is reset below, before React runs an updater.
                const chosen = Array.from(e.target.files ?? []);
                setFiles((f) => [...f, ...chosen]);
                e.target.value = '';
              }}
            />
            {files.length > 0 && (
              <ul className="files">
                {files.map((f, i) => (
                  <li key={`${f.name}-${i}`}>
                    {f.name}{' '}
                    <button
                      type="button"
                      className="link-button"
                      onClick={() => setFiles(files.filter((_, j) => j !== i))}
                    >
                      Remove <span className="visually-hidden">{f.name}</span>
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
        {arrivedWhileWriting && !changed && (
          <p className="notice notice-warning" role="status">
            A new message arrived on this ticket while you were writing. Read it before sending.
          </p>
        )}
        {changed && (
          <div className="notice notice-warning" role="alert">
            <p>
              <strong>The ticket changed while you were writing:</strong> a new message arrived. It is shown
              above; read it, then send yours anyway or change it first.
            </p>
            <div className="row">
              <button
                type="button"
                className="button-primary"
                onClick={() => void submit(false)}
                disabled={busy}
              >
                Send anyway
              </button>
              <button
                type="button"
                className="button"
                onClick={() => {
                  setChanged(false);
                  setSeen(newestMessageId);
                }}
              >
                Keep editing
              </button>
            </div>
          </div>
        )}
        {error && (
          <p className="notice notice-error" role="alert">
            {error}
          </p>
        )}
        {sentNotice && !writing && (
          <p className="status status-ok" role="status">
            {sentNotice}
          </p>
        )}
        <div className="row">
          <button type="submit" className="button-primary" disabled={busy || !writing || changed}>
            {busy ? 'Sending…' : mode === 'reply' ? 'Send reply' : 'Add note'}
          </button>
        </div>
      </form>
    </section>
  );
}
