// Parts of the console that may come after a screen's first content: the account menu, the person
// pickers (react-aria's menu and combo box are large). Their code is fetched once the browser is
// first idle (or after a second at the latest), so that it does not compete with the screen being
// opened; until then a stand-in shows, disabled, with the same name.
import { type ComponentType, lazy, type ReactNode, Suspense, useEffect, useState } from 'react';

let idle = false;
let scheduled = false;
const waiting = new Set<() => void>();

/** Calls `then` once the page has been idle (at once if it has been already); answers a cancel. */
function whenIdle(then: () => void): () => void {
  if (idle) {
    then();
    return () => undefined;
  }
  waiting.add(then);
  if (!scheduled) {
    scheduled = true;
    const run = () => {
      idle = true;
      for (const w of waiting) w();
      waiting.clear();
    };
    if (typeof requestIdleCallback === 'function') requestIdleCallback(run, { timeout: 1000 });
    else setTimeout(run, 200);
  }
  return () => waiting.delete(then);
}

function useIdle(): boolean {
  const [now, setNow] = useState(idle);
  useEffect(() => (now ? undefined : whenIdle(() => setNow(true))), [now]);
  return now;
}

/** A component whose code is fetched once the page is idle; `fallback` shows until it is in. */
export function later<P extends object>(
  load: () => Promise<{ default: ComponentType<P> }>,
): ComponentType<P & { fallback: ReactNode }> {
  const Lazy = lazy(load) as unknown as ComponentType<P>;
  return function Later({ fallback, ...props }: P & { fallback: ReactNode }) {
    const ready = useIdle();
    if (!ready) return fallback;
    return (
      <Suspense fallback={fallback}>
        <Lazy {...(props as P)} />
      </Suspense>
    );
  };
}
