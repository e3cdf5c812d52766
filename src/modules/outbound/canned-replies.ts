// Canned replies: text an agent inserts into a reply by typing its shortcut, per tenant, with the
// Liquid variables of mail templates (rendered by template-render.ts, with the same bounds). The
// owner operations of `canned_replies`.
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError, conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { escapeLike } from '../people/service.ts';
import {
  checkTemplate,
  MAX_TEMPLATE_LENGTH,
  renderMailTemplate,
  type TemplateVariables,
} from './template-render.ts';

export interface CannedReply {
  id: string;
  /** What the agent types (after a `/` in the console): letters, digits, `-`, `_`, `.`. */
  shortcut: string;
  title: string;
  /** Liquid. */
  body: string;
  createdAt: string;
  updatedAt: string;
}

export interface CannedReplyInput {
  shortcut: string;
  title: string;
  body: string;
}

interface Row {
  id: string;
  shortcut: string;
  title: string;
  body: string;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'id, shortcut, title, body, created_at, updated_at';
export const MAX_SHORTCUT_LENGTH = 50;
const SHORTCUT_RE = /^[\p{L}\p{N}][\p{L}\p{N}_.-]*$/u;

const toReply = (r: Row): CannedReply => ({
  id: r.id,
  shortcut: r.shortcut,
  title: r.title,
  body: r.body,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The renderer's errors name the part it rendered (`/text`); here that part is the body. */
function asBodyError(err: unknown, what: string): unknown {
  if (!(err instanceof AppError) || err.code !== 'validation_failed') return err;
  const errors = (err.details?.errors ?? []).map((e) => ({ path: '/body', message: e.message }));
  return validation(`${what}: ${errors.map((e) => e.message).join('; ')}`, errors);
}

function checked(input: CannedReplyInput): CannedReplyInput {
  const shortcut = input.shortcut.trim();
  if (shortcut.length > MAX_SHORTCUT_LENGTH || !SHORTCUT_RE.test(shortcut))
    throw validation('shortcut must be one word of letters, digits, "-", "_" and "."', [
      {
        path: '/shortcut',
        message: `must be 1 to ${MAX_SHORTCUT_LENGTH} letters, digits, "-", "_" or "." (starting with a letter or digit)`,
      },
    ]);
  const title = input.title.trim();
  if (title === '' || title.length > 200)
    throw validation('title must be 1 to 200 characters', [
      { path: '/title', message: 'must be 1 to 200 characters (not blank)' },
    ]);
  if (input.body.trim() === '')
    throw validation('body must not be empty', [{ path: '/body', message: 'must not be empty' }]);
  if (input.body.length > MAX_TEMPLATE_LENGTH)
    throw validation(`body is longer than ${MAX_TEMPLATE_LENGTH} characters`, [
      { path: '/body', message: `must be at most ${MAX_TEMPLATE_LENGTH} characters` },
    ]);
  try {
    checkTemplate({ subject: '', text: input.body, html: null });
  } catch (err) {
    throw asBodyError(err, 'The body does not work');
  }
  return { shortcut, title, body: input.body };
}

const shortcutTaken = (shortcut: string) =>
  conflict(`a canned reply with the shortcut "${shortcut}" already exists`, { field: 'shortcut' });

export async function createCannedReply(tx: TenantTx, input: CannedReplyInput): Promise<CannedReply> {
  const c = checked(input);
  const { rows } = await tx.query<Row>(
    `INSERT INTO canned_replies (tenant_id, id, shortcut, title, body, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, clock_timestamp(), clock_timestamp())
     ON CONFLICT (tenant_id, lower(shortcut)) DO NOTHING
     RETURNING ${COLUMNS}`,
    [tx.tenantId, uuidv7(), c.shortcut, c.title, c.body],
  );
  if (!rows[0]) throw shortcutTaken(c.shortcut);
  return toReply(rows[0]);
}

export async function getCannedReply(tx: TenantTx, id: string): Promise<CannedReply> {
  const { rows } = await tx.query<Row>(
    `SELECT ${COLUMNS} FROM canned_replies WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('canned reply');
  return toReply(rows[0]);
}

/** Newest first; `q` keeps those whose shortcut starts with it or whose title contains it (any case). */
export async function listCannedReplies(
  tx: TenantTx,
  input: { q?: string | undefined; limit?: number | undefined; cursor?: string | undefined },
): Promise<Page<CannedReply>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const q = input.q?.trim() ? escapeLike(input.q.trim()) : null;
  const { rows } = await tx.query<Row>(
    `SELECT ${COLUMNS} FROM canned_replies
      WHERE tenant_id = $1
        AND ($2::text IS NULL OR lower(shortcut) LIKE lower($2) || '%' OR title ILIKE '%' || $2 || '%')
        AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $5`,
    [tx.tenantId, q, cursor?.createdAt ?? null, cursor?.id ?? null, limit + 1],
  );
  return toPage(rows, limit, toReply);
}

export async function updateCannedReply(
  tx: TenantTx,
  id: string,
  input: CannedReplyInput,
): Promise<CannedReply> {
  const c = checked(input);
  try {
    const { rows } = await tx.query<Row>(
      `UPDATE canned_replies SET shortcut = $3, title = $4, body = $5, updated_at = clock_timestamp()
        WHERE tenant_id = $1 AND id = $2
       RETURNING ${COLUMNS}`,
      [tx.tenantId, id, c.shortcut, c.title, c.body],
    );
    if (!rows[0]) throw notFound('canned reply');
    return toReply(rows[0]);
  } catch (err) {
    // The shortcut index decides (no check-then-write).
    if ((err as { code?: string }).code === '23505') throw shortcutTaken(c.shortcut);
    throw err;
  }
}

export async function deleteCannedReply(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM canned_replies WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('canned reply');
}

/** The reply's text with the variables filled in (validation_failed when a value pushes it past a bound). */
export function renderCannedReply(reply: CannedReply, vars: TemplateVariables): string {
  try {
    return renderMailTemplate({ subject: '', text: reply.body, html: null }, vars).text;
  } catch (err) {
    throw asBodyError(err, 'The canned reply does not render');
  }
}
