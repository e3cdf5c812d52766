// The body of a Microsoft Graph notification POST: a collection {"value": [...]} of change and
// lifecycle notifications. Only the fields Relaydesk reads are checked, each for the type Graph
// sends; the others are Graph's to add.
import { type FieldError, validation } from '../../../../platform/errors.ts';

/** One entry of a Graph notification collection (change or lifecycle). */
export interface GraphNotification {
  subscriptionId?: string;
  clientState?: string | null;
  changeType?: string;
  resource?: string;
  resourceData?: { id?: string };
  lifecycleEvent?: string;
}

/** Longest message id taken (Graph's are about 150 characters). */
const MAX_ID_LENGTH = 1024;

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** The notifications of a collection body; 400 validation_failed naming each entry that is not one. */
export function graphNotifications(body: unknown): GraphNotification[] {
  if (!isObject(body) || !Array.isArray(body['value']) || body['value'].length === 0) {
    throw validation('expected a Graph notification collection {"value": [...]}', [
      { path: '/value', message: 'must be a non-empty list of notifications' },
    ]);
  }
  const errors: FieldError[] = [];
  const text = (n: Record<string, unknown>, key: string, at: string, nullable = false) => {
    const v = n[key];
    if (v !== undefined && typeof v !== 'string' && !(nullable && v === null))
      errors.push({
        path: `${at}/${key}`,
        message: nullable ? 'must be a string or null' : 'must be a string',
      });
  };
  body['value'].forEach((n: unknown, i) => {
    const at = `/value/${i}`;
    if (!isObject(n)) {
      errors.push({ path: at, message: 'must be a notification object' });
      return;
    }
    text(n, 'subscriptionId', at);
    text(n, 'clientState', at, true);
    text(n, 'changeType', at);
    text(n, 'resource', at);
    text(n, 'lifecycleEvent', at);
    const data = n['resourceData'];
    if (data === undefined) return;
    if (!isObject(data)) errors.push({ path: `${at}/resourceData`, message: 'must be an object' });
    else if (
      data['id'] !== undefined &&
      (typeof data['id'] !== 'string' || data['id'] === '' || data['id'].length > MAX_ID_LENGTH)
    )
      errors.push({
        path: `${at}/resourceData/id`,
        message: `must be a message id (a string of 1 to ${MAX_ID_LENGTH} characters)`,
      });
  });
  if (errors.length > 0) {
    throw validation(errors.map((e) => `${e.path} ${e.message}`).join('; '), errors.slice(0, 20));
  }
  return body['value'] as GraphNotification[];
}
