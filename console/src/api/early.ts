// Requests the first screen will make, started by the console's first, small script (boot.ts) while
// the rest of its code is still coming and starting: the page's answers are in by the time React asks
// for them, instead of a round trip after the code has run. The API client takes an early answer
// once, for a GET of the same path and query, only when it succeeded and is fresh; anything else is
// asked again as usual. A sign-in or sign-out drops them all.

/** How long an early answer may stand in for a request (the first screen asks well within it). */
const FRESH_MS = 5_000;

interface Early {
  startedAt: number;
  response: Promise<Response>;
}

const early = new Map<string, Early>();

/** The same path and query whatever the order or encoding of the parameters. */
function keyOf(url: URL): string {
  const params = [...url.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  // Plain code-unit order: a key needs no language's collation.
  return `${url.pathname}?${params.sort().join('&')}`;
}

/** Starts a GET of this same-origin path now, for the client to take when the screen asks. */
export function fetchEarly(pathAndQuery: string): void {
  const url = new URL(pathAndQuery, window.location.origin);
  const response = fetch(url, { credentials: 'same-origin' });
  // An early request that failed or went unused is not an error of the page.
  response.catch(() => undefined);
  early.set(keyOf(url), { startedAt: performance.now(), response });
}

/**
 * The early answer to this request, if there is one that succeeded and is fresh: taken once. A
 * failed one (a 401 before sign-in, a 503) is left for the client to ask again.
 */
export async function takeEarly(request: Request): Promise<Response | undefined> {
  if (request.method !== 'GET' || early.size === 0) return undefined;
  const key = keyOf(new URL(request.url));
  const found = early.get(key);
  if (!found) return undefined;
  early.delete(key);
  if (performance.now() - found.startedAt > FRESH_MS) return undefined;
  const response = await found.response.catch(() => undefined);
  return response?.ok ? response : undefined;
}

/** Forgets every early answer (the person signed in or out: they were asked as someone else). */
export function dropEarly(): void {
  early.clear();
}
