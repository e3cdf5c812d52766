// The OpenAPI document (/docs/json) as an integrator reads it: every operation says in one line what
// it does (summary), explains itself (description) and sits under at least one tag.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from './app.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

interface Operation {
  summary?: unknown;
  description?: unknown;
  tags?: unknown;
}

let t: TestApp;
let operations: { name: string; op: Operation }[];

beforeAll(async () => {
  t = await useTestApp();
  const res = await t.app.inject({ method: 'GET', url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  const doc = res.json() as { paths?: Record<string, Record<string, Operation>> };
  operations = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m] !== undefined).map((m) => ({
      name: `${m.toUpperCase()} ${path}`,
      op: item[m]!,
    })),
  );
});

const filled = (value: unknown): boolean => typeof value === 'string' && value.trim() !== '';

describe('the OpenAPI document', () => {
  it('has the API operations and the provider webhooks, and none of the hidden routes', () => {
    const names = operations.map((o) => o.name);
    expect(names).toContain('POST /api/v1/tickets');
    expect(names).toContain('POST /hooks/graph/{mailboxId}');
    expect(names).toContain('POST /hooks/gmail/{mailboxId}');
    expect(names.filter((n) => /\/(healthz|readyz|metrics)$/.test(n))).toEqual([]);
  });

  it('gives every operation a summary and a description', () => {
    const missing = operations.flatMap(({ name, op }) => {
      const lacks = [!filled(op.summary) && 'summary', !filled(op.description) && 'description'].filter(
        Boolean,
      );
      return lacks.length > 0 ? [`${name} (no ${lacks.join(', no ')})`] : [];
    });
    expect(missing, `operations of ${operations.length} lacking a summary or description`).toEqual([]);
  });

  it('puts every operation under at least one tag', () => {
    const untagged = operations
      .filter(({ op }) => !Array.isArray(op.tags) || op.tags.length === 0 || !op.tags.every(filled))
      .map((o) => o.name);
    expect(untagged, 'operations without a tag').toEqual([]);
  });
});
