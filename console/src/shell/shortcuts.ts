// Keyboard shortcuts: one list that the help dialog (`?`) shows, and a hook that binds keys while a
// screen is on. Keys act only when no text field has the focus and no dialog is open (Escape aside),
// and never with Ctrl, Alt or Meta, so the browser's own shortcuts stay as they are. "g i" is a
// sequence: g, then i within a second and a half.
import { useEffect, useRef } from 'react';

export interface ShortcutDoc {
  keys: string;
  does: string;
  where: 'Everywhere' | 'Inbox' | 'Ticket';
}

export const SHORTCUTS: ShortcutDoc[] = [
  { keys: '?', does: 'Show the keyboard shortcuts', where: 'Everywhere' },
  { keys: 'g i', does: 'Go to the inbox', where: 'Everywhere' },
  {
    keys: 'g then a letter',
    does: 'Go to a screen (the letter is underlined in the navigation)',
    where: 'Everywhere',
  },
  { keys: 'j / k', does: 'Next / previous ticket', where: 'Inbox' },
  { keys: 'Enter or o', does: 'Open the current ticket', where: 'Inbox' },
  { keys: 'x', does: 'Select or unselect the current ticket', where: 'Inbox' },
  { keys: '/', does: 'Search', where: 'Inbox' },
  { keys: 'Shift+a', does: 'Select all tickets shown', where: 'Inbox' },
  { keys: 'r', does: 'Reply to the requester', where: 'Ticket' },
  { keys: 'n', does: 'Write an internal note', where: 'Ticket' },
  { keys: 'a', does: 'Assign the ticket', where: 'Ticket' },
  { keys: 'Ctrl+Enter', does: 'Send the reply or note being written', where: 'Ticket' },
  { keys: 'u', does: 'Back to the inbox', where: 'Ticket' },
];

const EDITABLE = 'input, textarea, select, [contenteditable=""], [contenteditable="true"]';

function ignored(event: KeyboardEvent): boolean {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return true;
  const target = event.target instanceof Element ? event.target : null;
  if (event.key === 'Escape') return false;
  if (target?.closest(EDITABLE)) return true;
  // A dialog, menu or listbox handles its own keys.
  if (target?.closest('[role="dialog"], [role="menu"], [role="listbox"], [role="alertdialog"]')) return true;
  return document.querySelector('[aria-modal="true"]') !== null;
}

type Bindings = Record<string, (event: KeyboardEvent) => void>;

// Every mounted binding set; one listener serves them all, so that a sequence's first key ("g" of
// "g a") waits for the second instead of reaching a screen that binds "a".
const active: { current: Bindings }[] = [];
let prefix: { key: string; at: number } | undefined;

function onKey(event: KeyboardEvent): void {
  if (ignored(event)) return;
  const key = event.key;
  const now = performance.now();
  const sets = active.map((s) => s.current);
  const pending = prefix && now - prefix.at < 1500 ? prefix.key : undefined;
  prefix = undefined;
  const run = (handler: ((event: KeyboardEvent) => void) | undefined): boolean => {
    if (!handler) return false;
    event.preventDefault();
    handler(event);
    return true;
  };
  if (pending) {
    const sequence = `${pending} ${key}`;
    if (run(sets.find((s) => s[sequence])?.[sequence])) return;
  }
  if (sets.some((s) => Object.keys(s).some((k) => k.startsWith(`${key} `)))) {
    prefix = { key, at: now };
    return;
  }
  run(sets.find((s) => s[key])?.[key]);
}

/**
 * Binds keys to handlers while the component is mounted: `{ j: next, 'g i': toInbox, '?': help }`.
 * A key's handler runs with the event; the key's default action is prevented.
 */
export function useKeys(bindings: Bindings, enabled = true): void {
  const current = useRef(bindings);
  current.current = bindings;
  useEffect(() => {
    if (!enabled) return;
    const entry = current;
    if (active.length === 0) document.addEventListener('keydown', onKey);
    active.push(entry);
    return () => {
      active.splice(active.indexOf(entry), 1);
      if (active.length === 0) document.removeEventListener('keydown', onKey);
    };
  }, [enabled]);
}
