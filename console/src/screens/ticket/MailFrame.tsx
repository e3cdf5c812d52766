// A message's HTML (sanitised by the server when it was stored) shown in a sandboxed frame: no script
// can run in it (no allow-scripts, and the console's Content-Security-Policy applies inside too), its
// styles cannot reach the console's, and its links open in a new tab. allow-same-origin only lets
// its inline images (served by /api/v1/attachments with the session cookie) load and lets the
// console size the frame to its content.
import { useCallback, useRef, useState } from 'react';

const FRAME_STYLE = `
  html { color-scheme: light; }
  body { margin: 0; font: 14px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; color: #1a202c;
         overflow-wrap: anywhere; }
  img { max-width: 100%; height: auto; }
  table { max-width: 100%; }
  blockquote { border-left: 3px solid #cbd5e0; margin: 0.5em 0 0.5em 0.25em; padding-left: 0.75em; color: #4a5568; }
  a { color: #1d4ed8; }
  pre { white-space: pre-wrap; }
`;

export function MailFrame({ html, title }: { html: string; title: string }) {
  const ref = useRef<HTMLIFrameElement>(null);
  const [height, setHeight] = useState(80);
  const fit = useCallback(() => {
    const doc = ref.current?.contentDocument;
    if (!doc) return;
    setHeight(Math.min(Math.max(doc.documentElement.scrollHeight, 40), 4000));
    // Images load after the document: measure again when each arrives.
    for (const img of Array.from(doc.images)) {
      if (!img.complete)
        img.addEventListener('load', () => setHeight(Math.min(doc.documentElement.scrollHeight, 4000)), {
          once: true,
        });
    }
  }, []);
  const srcDoc = `<!doctype html><html lang="en"><head><meta charset="utf-8"><base target="_blank"><style>${FRAME_STYLE}</style></head><body>${html}</body></html>`;
  return (
    <iframe
      ref={ref}
      className="mail-frame"
      title={title}
      sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"
      referrerPolicy="no-referrer"
      srcDoc={srcDoc}
      onLoad={fit}
      style={{ height }}
    />
  );
}
