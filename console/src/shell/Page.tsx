// The frame of a screen: its heading (which also names the browser tab) and optional actions beside it.
import { type ReactNode, useEffect } from 'react';

export function Page({
  title,
  actions,
  children,
  wide = false,
}: {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
  wide?: boolean;
}) {
  useEffect(() => {
    document.title = `${title} · Relaydesk`;
  }, [title]);
  return (
    <div className={wide ? 'page page-wide' : 'page'}>
      <div className="page-head">
        <h1>{title}</h1>
        {actions && <div className="page-actions">{actions}</div>}
      </div>
      {children}
    </div>
  );
}

/** A message that a list is loading, is empty, or failed; announced to screen readers. */
export function Status({ kind = 'info', children }: { kind?: 'info' | 'error' | 'ok'; children: ReactNode }) {
  return (
    <p className={`status status-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </p>
  );
}
