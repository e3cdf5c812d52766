// The architecture as the imports show it: no import cycles between files or between modules,
// nothing in src/platform imports a module, and each table is written by one module only.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

const files = sourceFiles(SRC);

/** Every file's relative imports, resolved to files (type-only imports included: they couple too). */
const imports = new Map<string, string[]>(
  files.map((file) => {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => path.resolve(path.dirname(file), name));
    return [file, targets];
  }),
);

const rel = (file: string) => path.relative(ROOT, file);

/** The unit a file belongs to: its module (src/modules/<name>), or platform, cli, app. */
function unitOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  if (parts[0] === 'modules') return `modules/${parts[1]}`;
  return parts[0]!.replace(/\.ts$/, '');
}

/** Cycles in a directed graph (each reported once, as the path around it). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'visiting') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

describe('imports', () => {
  it('resolve to files that exist', () => {
    const missing = [...imports].flatMap(([file, targets]) =>
      targets.filter((t) => !existsSync(t)).map((t) => `${rel(file)} -> ${rel(t)}`),
    );
    expect(missing).toEqual([]);
  });

  it('form no cycle between files', () => {
    const graph = new Map([...imports].map(([f, t]) => [rel(f), new Set(t.map(rel))]));
    expect(cycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('form no cycle between modules (nor between platform, cli and app)', () => {
    const graph = new Map<string, Set<string>>();
    for (const [file, targets] of imports) {
      const from = unitOf(file);
      if (!graph.has(from)) graph.set(from, new Set());
      for (const t of targets) if (unitOf(t) !== from) graph.get(from)!.add(unitOf(t));
    }
    expect(cycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('never go from src/platform into src/modules, src/cli or the composition root', () => {
    const wrong = [...imports].flatMap(([file, targets]) =>
      unitOf(file) === 'platform'
        ? targets.filter((t) => unitOf(t) !== 'platform').map((t) => `${rel(file)} -> ${rel(t)}`)
        : [],
    );
    expect(wrong).toEqual([]);
  });
});

// Which modules a module may import (docs/architecture.md, "Dependencies between modules go one
// way"): a new edge is a design decision, made there and here, not a side effect of an import.
const MODULE_DEPENDENCIES: Record<string, string[]> = {
  audit: [],
  blobs: [],
  console: [],
  events: [],
  people: [],
  queue: [],
  tickets: ['people', 'blobs', 'events'],
  sla: ['tickets', 'events', 'tokens'],
  inbound: ['tickets', 'people', 'blobs', 'events'],
  outbound: ['inbound', 'tickets', 'people', 'blobs', 'events'],
  tokens: ['people'],
  tenants: ['people', 'tokens', 'tickets', 'notify'],
  merge: ['people', 'tokens', 'tickets'],
  notify: ['events', 'outbound', 'people', 'tickets', 'tokens'],
  teams: ['notify', 'outbound', 'inbound', 'tickets', 'people', 'tokens', 'sla', 'audit'],
  slack: ['notify', 'outbound', 'inbound', 'audit'],
  webhooks: ['notify', 'outbound', 'events'],
  sessions: ['people', 'tokens', 'inbound', 'outbound'],
  sso: ['people', 'audit'],
  history: ['tickets', 'people', 'events', 'sla', 'audit'],
  live: ['tickets'],
};

describe('module dependencies', () => {
  it('are the ones docs/architecture.md lists, for every module there is', () => {
    const modules = readdirSync(path.join(SRC, 'modules')).filter((name) =>
      statSync(path.join(SRC, 'modules', name)).isDirectory(),
    );
    expect(modules.filter((m) => !(m in MODULE_DEPENDENCIES)).sort()).toEqual([]);
    const wrong = [...imports].flatMap(([file, targets]) => {
      const from = unitOf(file);
      if (!from.startsWith('modules/')) return [];
      const allowed = MODULE_DEPENDENCIES[from.slice('modules/'.length)] ?? [];
      return targets
        .filter((t) => unitOf(t).startsWith('modules/') && unitOf(t) !== from)
        .filter((t) => !allowed.includes(unitOf(t).slice('modules/'.length)))
        .map((t) => `${rel(file)} -> ${rel(t)}`);
    });
    expect(wrong).toEqual([]);
  });
});

describe('database access', () => {
  it('goes through the scoped helpers of src/platform/db/tx.ts: no statement straight to a pool elsewhere', () => {
    const direct = files
      .filter((file) => !file.startsWith(path.join(SRC, 'platform', 'db') + path.sep))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((text, i) => ({ text, line: i + 1 }))
          .filter(({ text }) => /\bpool\s*\.\s*(query|connect)\s*[<(]/i.test(text))
          .map(({ line }) => `${rel(file)}:${line}`),
      );
    expect(direct).toEqual([]);
  });
});

// Where the wall clock may be read (DESIGN §3.6: business logic reads the injected Clock). The lint
// rule sees `Date.now()` and `new Date()` in src/modules only; this also sees `Date.now` passed on
// uncalled, `performance.now`, `Date()`, and src/platform, whose helpers modules call (a default
// parameter `now = Date.now()` there read the wall clock for the Graph and Gmail clients).
const WALL_CLOCK_ALLOWED: Record<string, string> = {
  'src/platform/clock.ts': 'the system clock itself',
  'src/platform/ids.ts': "a UUIDv7's time prefix orders ids; it decides nothing",
  'src/platform/db/wait.ts':
    'waiting for the database at start and in an outage: a real wait, not business time',
  'src/platform/db/embedded.ts': "the embedded cluster's owner record (when this process started it)",
  'src/platform/http/metrics.ts': 'a gauge of seconds until the earliest subscription expiry, on the scrape',
  'src/modules/inbound/handoff.ts':
    'the age of an in-process cache entry (monotonic); a miss reads the database',
  'src/modules/inbound/hooks.ts': 'an in-process throttle of a health write (monotonic)',
  'src/modules/slack/pacing.ts': 'spacing sends in real time (monotonic), as Slack counts them',
};

/** Wall-clock reads in a file: Date.now (called or not), performance.now, new Date(), Date(). */
function wallClockReads(file: string, text = readFileSync(file, 'utf8')): number[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lines: number[] = [];
  const visit = (node: ts.Node) => {
    const isNow =
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      ['Date', 'performance'].includes(node.expression.text) &&
      node.name.text === 'now';
    const isNewDate =
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'Date' &&
      (node.arguments?.length ?? 0) === 0;
    const isDateCall =
      ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'Date';
    if (isNow || isNewDate || isDateCall)
      lines.push(source.getLineAndCharacterOfPosition(node.getStart()).line + 1);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return lines;
}

describe('time', () => {
  it('is read from the injected Clock in src/modules and src/platform, except where a file says why not', () => {
    const wrong = files
      .filter((file) => ['platform', 'modules'].includes(unitOf(file).split('/')[0]!))
      .filter((file) => !(rel(file) in WALL_CLOCK_ALLOWED))
      .flatMap((file) => wallClockReads(file).map((line) => `${rel(file)}:${line}`));
    expect(wrong).toEqual([]);
  });

  it('finds the ways the wall clock is read', () => {
    const sample = [
      '// Date.now() in a comment is no read; new Date(at) and Date.parse(text) are none either',
      'export const a = Date.now();',
      'export function b(now = Date.now) { return now; }',
      'export const c = performance.now();',
      'export const d = new Date();',
      'export const e = Date();',
      'export const f = new Date(a), g = Date.parse("2026-01-01"), h = Date.UTC(2026, 0, 1);',
    ].join('\n');
    expect(wallClockReads('sample.ts', sample)).toEqual([2, 3, 4, 5, 6]);
  });
});

// Who writes which table (STYLE §13: a module owns its tables; others call its operations).
const OWNERS: Record<string, string[]> = {
  'modules/tenants': ['tenants'],
  'modules/people': [
    'people',
    'person_emails',
    'person_identities',
    'identity_events',
    'unmapped_identities',
  ],
  'modules/tokens': ['api_tokens'],
  'modules/tickets': [
    'tickets',
    'ticket_messages',
    'ticket_status_history',
    'ticket_counters',
    'ticket_participants',
    'attachments',
    'ticket_wakeups',
    'ticket_presence',
  ],
  'modules/blobs': ['blobs'],
  'modules/inbound': [
    'mailboxes',
    'mailbox_health',
    'mailbox_health_events',
    'inbound_messages',
    'message_keys',
    'oauth_states',
  ],
  'modules/sla': [
    'calendars',
    'sla_policies',
    'sla_threshold_fires',
    'sla_ticket_state',
    'sla_events',
    'sla_clocks',
  ],
  'modules/outbound': ['deliveries', 'delivery_keys', 'mail_templates', 'canned_replies'],
  'modules/events': ['events'],
  'modules/notify': ['notification_rules'],
  'modules/audit': ['audit_events'],
  'modules/slack': ['slack_integrations'],
  'modules/webhooks': ['webhook_endpoints'],
  'modules/teams': ['teams_integrations', 'teams_conversation_references'],
  'modules/sessions': [
    'auth_settings',
    'person_credentials',
    'recovery_codes',
    'console_sessions',
    'sign_in_tokens',
  ],
  'modules/sso': ['sso_providers', 'sso_login_states'],
  platform: ['schema_migrations'],
};
const ownerOf = new Map(Object.entries(OWNERS).flatMap(([unit, tables]) => tables.map((t) => [t, unit])));

/** Writes by a trigger into another module's table, each with the reason it is there. */
const TRIGGER_WRITES_ALLOWED: Record<string, string> = {
  'end_sessions_of_suspended -> console_sessions':
    "sessions' own rule (migration 0027): a suspension ends the person's sessions in its transaction, whoever suspends",
  'end_sessions_of_suspended -> sign_in_tokens': 'the same rule, for unused invitation and reset links',
};

/** Tables a piece of SQL text writes: INSERT INTO, UPDATE ... SET (not ON CONFLICT's), DELETE FROM, TRUNCATE. */
function writtenTables(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bINSERT\s+INTO\s+([a-z_][a-z0-9_.]*)/gi,
    /\bUPDATE\s+(?!SET\b)([a-z_][a-z0-9_.]*)(?:\s+(?:AS\s+)?(?!SET\b)[a-z_][a-z0-9_]*)?\s+SET\b/gi,
    /\bDELETE\s+FROM\s+([a-z_][a-z0-9_.]*)/gi,
    /\bTRUNCATE\s+(?:TABLE\s+)?([a-z_][a-z0-9_.]*)/gi,
    /\bMERGE\s+INTO\s+([a-z_][a-z0-9_.]*)/gi,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1]!.toLowerCase());
  return found;
}

describe('table ownership', () => {
  it('every table of the migrations has an owner', () => {
    const migrations = readdirSync(path.join(ROOT, 'migrations')).map((f) =>
      readFileSync(path.join(ROOT, 'migrations', f), 'utf8'),
    );
    const created = new Set(
      migrations.flatMap((sql) =>
        [...sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)/gi)].map((m) => m[1]!),
      ),
    );
    for (const sql of migrations) {
      for (const m of sql.matchAll(/ALTER TABLE ([a-z_]+) RENAME TO ([a-z_]+)/gi)) {
        created.delete(m[1]!);
        created.add(m[2]!);
      }
      for (const m of sql.matchAll(/DROP TABLE (?:IF EXISTS )?([a-z_]+)/gi)) created.delete(m[1]!);
    }
    expect([...created].filter((t) => !ownerOf.has(t)).sort()).toEqual([]);
  });

  it('is written only by its owner (and the job queue only through src/platform/queue)', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const unit = unitOf(file);
      for (const table of writtenTables(readFileSync(file, 'utf8'))) {
        if (table.startsWith('pgboss.') || table.startsWith('${queue_schema}')) {
          if (!rel(file).startsWith('src/platform/queue/')) wrong.push(`${rel(file)} writes ${table}`);
          continue;
        }
        const owner = ownerOf.get(table);
        if (owner !== unit) wrong.push(`${rel(file)} writes ${table} (owner: ${owner ?? 'none'})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("is the job queue's: pg-boss itself (JobQueue.boss) is used only inside src/platform/queue", () => {
    const wrong = files
      .filter((file) => !rel(file).startsWith('src/platform/queue/'))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((text, i) => ({ text, line: i + 1 }))
          .filter(({ text }) => /\.\s*boss\b/.test(text))
          .map(({ line }) => `${rel(file)}:${line}`),
      );
    expect(wrong).toEqual([]);
  });

  it("is written by SQL functions and triggers of the migrations only for their caller's module", () => {
    // A trigger acts for the module that owns its table; a function for the modules whose code calls it.
    const sql = readdirSync(path.join(ROOT, 'migrations'))
      .map((f) => readFileSync(path.join(ROOT, 'migrations', f), 'utf8'))
      .join('\n');
    const bodies = new Map<string, string>();
    for (const m of sql.matchAll(/CREATE (?:OR REPLACE )?FUNCTION ([a-z_]+)\([^]*?\$\$([^]*?)\$\$/gi))
      bodies.set(m[1]!, m[2]!);
    const callers = new Map<string, Set<string>>();
    for (const m of sql.matchAll(
      /CREATE TRIGGER \w+ [^;]*? ON ([a-z_]+)[^;]*?EXECUTE FUNCTION ([a-z_]+)\(/gi,
    ))
      callers.set(m[2]!, new Set([...(callers.get(m[2]!) ?? []), ownerOf.get(m[1]!) ?? `none (${m[1]})`]));
    for (const file of files)
      for (const name of bodies.keys())
        if (new RegExp(`\\b${name}\\s*\\(`).test(readFileSync(file, 'utf8')))
          callers.set(name, new Set([...(callers.get(name) ?? []), unitOf(file)]));
    const wrong: string[] = [];
    for (const [name, body] of bodies)
      for (const table of writtenTables(body))
        for (const caller of callers.get(name) ?? [])
          if (ownerOf.get(table) !== caller && !TRIGGER_WRITES_ALLOWED[`${name} -> ${table}`])
            wrong.push(`${name} writes ${table} (owner: ${ownerOf.get(table) ?? 'none'}) for ${caller}`);
    expect(wrong).toEqual([]);
  });

  it('finds writes in SQL the way they are written here', () => {
    expect(
      writtenTables(`INSERT INTO a (x) VALUES (1) ON CONFLICT (x) DO UPDATE SET x = 2;
        UPDATE b w SET y = 1 FROM c; UPDATE d SET z = 1; DELETE FROM e USING f;
        SELECT 1 FROM g FOR UPDATE SKIP LOCKED; SELECT 1 FROM h FOR NO KEY UPDATE; TRUNCATE i;
        MERGE INTO j USING k ON true WHEN MATCHED THEN DELETE`),
    ).toEqual(['a', 'b', 'd', 'e', 'i', 'j']);
  });
});
