// `npm run bench -- console`: the console's figures, one part after the other, each printing its own
// table; the JSON line holds every part's result under its name.
//
// Parts: `search` (bench/console-search.ts: full-text search over 100,000 messages through the API)
// and `inbox` (bench/console-inbox.ts: the inbox's first load to interactive in Chromium with 10,000
// tickets, and the console's JavaScript gzipped). BENCH_CONSOLE_PARTS=search,inbox picks parts; all
// by default.
import { benchConsoleInbox } from './console-inbox.ts';
import { benchConsoleSearch } from './console-search.ts';
import { runCleanups } from './lib.ts';

export interface ConsolePart {
  name: string;
  run: () => Promise<Record<string, unknown>>;
}

export const CONSOLE_PARTS: ConsolePart[] = [
  { name: 'search', run: benchConsoleSearch },
  { name: 'inbox', run: benchConsoleInbox },
];

export async function benchConsole(): Promise<Record<string, unknown>> {
  const only = process.env['BENCH_CONSOLE_PARTS']?.split(',').map((s) => s.trim());
  const result: Record<string, unknown> = { benchmark: 'console' };
  for (const part of CONSOLE_PARTS) {
    if (only && !only.includes(part.name)) continue;
    result[part.name] = await part.run();
    // Each part starts what it needs (its own database); nothing is kept for the next.
    await runCleanups();
  }
  return result;
}
