// The console's first script, small on purpose: it starts the requests of the screen being opened
// (lib/queries.ts) and loads that screen's code beside the rest, so that the answers and the code
// arrive while React and the shell are still starting, rather than one after the other.
import { fetchEarly } from './api/early.ts';
import { firstRequests, opensInbox } from './lib/queries.ts';

for (const url of firstRequests(window.location.pathname, window.location.search)) fetchEarly(url);
void import('./main.tsx');
// The inbox, the screen opened most, is fetched beside the rest rather than once the rest has run.
if (opensInbox(window.location.pathname)) void import('./screens/Inbox.tsx');

// The first use of the browser's Intl loads its locale data (about 60 ms of this thread on a quiet
// machine): done while the code downloads and the thread has nothing else to do, rather than in the
// middle of rendering the first rows' dates. In a task of its own, after the requests above went out.
setTimeout(
  () => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(Date.now()),
  0,
);
