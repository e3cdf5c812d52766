// The first admin token of a new installation lives in <data dir>/initial-admin-token and is shown
// once on the terminal. "Once" must not mean "never": a start can die between creating the tenant
// and printing its token (killed, or its port taken in a race). So the token file is written
// together with <data dir>/initial-admin-token.unshown before the tenant commits, and the marker is
// removed only after the token was printed; a later start that finds the marker shows the token.
// Installations from before the marker existed have none, so their token is not shown again.
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const tokenFile = (dataDir: string) => path.join(dataDir, 'initial-admin-token');
const unshownFile = (dataDir: string) => path.join(dataDir, 'initial-admin-token.unshown');

/** Where the token is kept, for the message that shows it. */
export const initialAdminTokenPath = tokenFile;

/** Keeps a newly minted first admin token, marked as not shown yet. */
export async function saveInitialAdminToken(dataDir: string, token: string): Promise<void> {
  await writeFile(unshownFile(dataDir), '', { mode: 0o600 });
  await writeFile(tokenFile(dataDir), `${token}\n`, { mode: 0o600 });
  // writeFile's mode applies only to a new file; an older file keeps its mode otherwise.
  await chmod(tokenFile(dataDir), 0o600);
}

/** The first admin token if it was saved but never shown; undefined otherwise. */
export async function unshownInitialAdminToken(dataDir: string): Promise<string | undefined> {
  const marked = await readFile(unshownFile(dataDir)).then(
    () => true,
    () => false,
  );
  if (!marked) return undefined;
  const token = (await readFile(tokenFile(dataDir), 'utf8').catch(() => '')).trim();
  return token === '' ? undefined : token;
}

/** Records that the token reached the terminal (or can no longer be used), so it is not shown again. */
export async function markInitialAdminTokenShown(dataDir: string): Promise<void> {
  await rm(unshownFile(dataDir), { force: true });
}
