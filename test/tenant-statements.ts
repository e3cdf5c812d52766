// The tenant rule of a statement, checked on PostgreSQL's own parse tree (libpg_query): what lets
// Citus, with every tenant table distributed by tenant_id (docs/scale-out.md), route the statement to
// the one shard of one tenant.
//
// At each query level (a SELECT with a FROM, an UPDATE, a DELETE, a MERGE) every tenant table it
// reads must have its tenant_id equated, through the equalities ANDed in the WHERE clause and the
// join conditions, to one value: a parameter, a constant, a column of an enclosing level (a
// correlated subquery: that level is checked in turn), or the tenant_id of a CTE or subquery (its
// own body is checked in turn). Two tenant tables of a level must be equated to each other (both to
// the same parameter counts). An INSERT must name tenant_id among its columns. Anything under an OR,
// a range, `= ANY(...)` or a list of several values does not pin a tenant.
import { loadModule, parseSync } from 'libpg-query';

export type Rule = 'no-tenant-filter' | 'tenants-not-equated' | 'insert-without-tenant' | 'unparsed';

export interface Violation {
  rule: Rule;
  /** The tenant table (schema.name) the rule is about, and the other one for tenants-not-equated. */
  table?: string;
  other?: string;
  message: string;
}

/** Loads the parser (WebAssembly); call once before checkStatement. */
export const loadParser = (): Promise<void> => loadModule();

// The parse tree is JSON: every node is an object with one key, its type, holding its fields.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const field = (node: Json | undefined, type: string): Obj | undefined => {
  const inner = isObj(node) ? node[type] : undefined;
  return isObj(inner) ? inner : undefined;
};
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
/** The names of a ColumnRef's or an operator's name list (`t.tenant_id` → ['t', 'tenant_id']). */
const names = (nodes: Json | undefined): string[] =>
  list(nodes).map((n) => str(field(n, 'String')?.['sval']) ?? (field(n, 'A_Star') ? '*' : '?'));

/** Every CTE name of the statement: a table reference by one of these names is the CTE, not a table. */
function cteNames(root: Json, into = new Set<string>()): Set<string> {
  if (Array.isArray(root)) for (const v of root) cteNames(v, into);
  else if (isObj(root)) {
    for (const [key, value] of Object.entries(root)) {
      if (key === 'CommonTableExpr' && isObj(value)) {
        const name = str(value['ctename']);
        if (name) into.add(name);
      }
      cteNames(value, into);
    }
  }
  return into;
}

interface Source {
  /** The name the level refers to it by (its alias, or its own name). */
  ref: string;
  kind: 'tenant' | 'table' | 'derived';
  table?: string;
}

/** Union-find over equality terms. A term starting with "=" is a single value (a pin). */
class Classes {
  private parent = new Map<string, string>();
  find(x: string): string {
    let p = this.parent.get(x) ?? x;
    if (p !== x) {
      p = this.find(p);
      this.parent.set(x, p);
    }
    return p;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra, rb);
  }
  /** Whether x's class holds a single value. */
  pinned(x: string, terms: Iterable<string>): boolean {
    const root = this.find(x);
    for (const t of terms) if (t.startsWith('=') && this.find(t) === root) return true;
    return false;
  }
}

/** A node without its `location` fields: two spellings of the same expression compare equal. */
function canonical(node: Json): string {
  return JSON.stringify(node, (key, value: Json) => (key === 'location' ? undefined : value));
}

function hasColumnRef(node: Json): boolean {
  if (Array.isArray(node)) return node.some(hasColumnRef);
  if (!isObj(node)) return false;
  if ('ColumnRef' in node) return true;
  if ('SubLink' in node) return false; // a subquery is a level of its own
  return Object.values(node).some(hasColumnRef);
}

/** Whether a subquery's rows come from a list of several rows or from functions (arrays) only. */
function manyRows(subquery: Json | undefined): boolean {
  const select = field(subquery, 'SelectStmt');
  if (!select) return false;
  if (list(select['valuesLists']).length > 1) return true;
  const from = list(select['fromClause']);
  return from.length > 0 && from.every((f) => field(f, 'RangeFunction') ?? field(f, 'RangeTableFunc'));
}

class Level {
  readonly sources: Source[] = [];
  readonly quals: Json[] = [];
  /** Tenant sources merged by JOIN ... USING (tenant_id). */
  readonly usingPairs: [string, string][] = [];

  private readonly tenantTables: ReadonlySet<string>;
  private readonly ctes: ReadonlySet<string>;

  constructor(tenantTables: ReadonlySet<string>, ctes: ReadonlySet<string>) {
    this.tenantTables = tenantTables;
    this.ctes = ctes;
  }

  addFromItem(item: Json): void {
    const rv = field(item, 'RangeVar');
    if (rv) {
      const name = str(rv['relname']) ?? '';
      const schema = str(rv['schemaname']);
      const ref = str(field(rv, 'alias')?.['aliasname']) ?? name;
      if (!schema && this.ctes.has(name)) this.sources.push({ ref, kind: 'derived' });
      else {
        const table = `${schema ?? 'public'}.${name}`;
        this.sources.push({ ref, kind: this.tenantTables.has(table) ? 'tenant' : 'table', table });
      }
      return;
    }
    const join = field(item, 'JoinExpr');
    if (join) {
      const before = this.sources.length;
      this.addFromItem(join['larg'] ?? null);
      const middle = this.sources.length;
      this.addFromItem(join['rarg'] ?? null);
      if (join['quals']) this.quals.push(join['quals']);
      const using = list(join['usingClause']).map((n) => str(field(n, 'String')?.['sval']));
      if (using.includes('tenant_id')) {
        const left = this.sources.slice(before, middle).find((s) => s.kind !== 'table');
        const right = this.sources.slice(middle).find((s) => s.kind !== 'table');
        if (left && right) this.usingPairs.push([left.ref, right.ref]);
      }
      return;
    }
    // A subquery, a function, VALUES, ...: derived rows, whose own levels are checked by themselves.
    // Rows made of arrays or of a list (unnest($1::uuid[], ...), VALUES with several rows) may hold
    // many tenants: their tenant_id is no one value, so equating a table's to it pins nothing.
    for (const type of ['RangeSubselect', 'RangeFunction', 'RangeTableFunc', 'RangeTableSample']) {
      const derived = field(item, type);
      if (derived) {
        const alias = str(field(derived, 'alias')?.['aliasname']);
        const many = type === 'RangeFunction' || type === 'RangeTableFunc' || manyRows(derived['subquery']);
        if (alias) this.sources.push({ ref: alias, kind: many ? 'table' : 'derived' });
        return;
      }
    }
  }

  /** The term for one side of an equality, or undefined when it is no tenant value nor a single value. */
  private term(node: Json): string | undefined {
    const cast = field(node, 'TypeCast');
    if (cast) return this.term(cast['arg'] ?? null);
    const col = field(node, 'ColumnRef');
    if (col) {
      const parts = names(col['fields']);
      const column = parts[parts.length - 1]!;
      const qualifier = parts.length >= 2 ? parts[parts.length - 2] : undefined;
      const source =
        qualifier !== undefined
          ? this.sources.find((s) => s.ref === qualifier)
          : column === 'tenant_id'
            ? (this.sources.find((s) => s.kind === 'tenant') ??
              this.sources.find((s) => s.kind === 'derived'))
            : undefined;
      if (!source) {
        // A column of an enclosing level (correlated): one value per row of that level.
        return qualifier !== undefined && column === 'tenant_id' ? `=outer:${qualifier}` : undefined;
      }
      if (source.kind === 'tenant') return column === 'tenant_id' ? `t:${source.ref}` : undefined;
      if (source.kind === 'derived' && column === 'tenant_id') return `=derived:${source.ref}`;
      return `c:${source.ref}.${column}`; // a reference table's column: a value only if pinned itself
    }
    if (field(node, 'ParamRef') || field(node, 'A_Const') || field(node, 'SubLink'))
      return `=${canonical(node)}`;
    // Any other expression of parameters and constants (current_setting(...), a function of $1).
    if (isObj(node) && !hasColumnRef(node)) return `=${canonical(node)}`;
    return undefined;
  }

  /** The equalities ANDed together in the level's conditions. */
  private equalities(): [string | undefined, string | undefined][] {
    const out: [string | undefined, string | undefined][] = [];
    const visit = (node: Json | undefined) => {
      const bool = field(node, 'BoolExpr');
      if (bool) {
        if (bool['boolop'] === 'AND_EXPR') for (const arg of list(bool['args'])) visit(arg);
        return;
      }
      const expr = field(node, 'A_Expr');
      if (!expr) return;
      const op = names(expr['name']).join('.');
      const single = list(field(expr['rexpr'] ?? null, 'List')?.['items']);
      const kind = str(expr['kind']);
      const rexpr =
        kind === 'AEXPR_IN' && op === '=' && single.length === 1
          ? single[0]
          : kind === 'AEXPR_OP' && op === '='
            ? expr['rexpr']
            : undefined;
      if (rexpr === undefined) return;
      const left = expr['lexpr'] ?? null;
      const lrow = field(left, 'RowExpr');
      const rrow = field(rexpr, 'RowExpr');
      if (lrow && rrow) {
        const l = list(lrow['args']);
        const r = list(rrow['args']);
        l.forEach((a, i) => out.push([this.term(a), this.term(r[i] ?? null)]));
        return;
      }
      out.push([this.term(left), this.term(rexpr)]);
    };
    for (const q of this.quals) visit(q);
    return out;
  }

  violations(): Violation[] {
    const tenants = this.sources.filter((s) => s.kind === 'tenant');
    if (tenants.length === 0) return [];
    const classes = new Classes();
    const terms = new Set<string>();
    for (const [a, b] of this.equalities()) {
      if (a === undefined || b === undefined) continue;
      terms.add(a);
      terms.add(b);
      classes.union(a, b);
    }
    for (const [a, b] of this.usingPairs) {
      const ta = this.sources.find((s) => s.ref === a)?.kind === 'tenant' ? `t:${a}` : `=derived:${a}`;
      const tb = this.sources.find((s) => s.ref === b)?.kind === 'tenant' ? `t:${b}` : `=derived:${b}`;
      terms.add(ta);
      terms.add(tb);
      classes.union(ta, tb);
    }
    const out: Violation[] = [];
    for (const s of tenants) {
      if (!classes.pinned(`t:${s.ref}`, terms))
        out.push({
          rule: 'no-tenant-filter',
          table: s.table,
          message: `${s.table}${s.ref !== s.table?.split('.')[1] ? ` (as ${s.ref})` : ''} is read without its tenant_id equated to one value`,
        });
    }
    for (let i = 0; i < tenants.length; i++) {
      for (let j = i + 1; j < tenants.length; j++) {
        const a = tenants[i]!;
        const b = tenants[j]!;
        if (classes.find(`t:${a.ref}`) !== classes.find(`t:${b.ref}`))
          out.push({
            rule: 'tenants-not-equated',
            table: a.table,
            other: b.table,
            message: `${a.ref}.tenant_id and ${b.ref}.tenant_id are not equated`,
          });
      }
    }
    return out;
  }
}

/**
 * The parse tree of a statement as pg_stat_statements records it. Two of its forms are no statement:
 * an expression of PL/pgSQL (`EXISTS (SELECT ...)` of an IF in a trigger), which PL/pgSQL runs as a
 * SELECT of it; and a utility statement whose names it replaced by parameters (`SAVEPOINT $1`, from
 * PostgreSQL 18 on). Each is parsed as what it stands for; a parameter read as a name never makes a
 * statement pass (it is no tenant value).
 */
function parse(sql: string): Json | Error {
  let first: Error | undefined;
  for (const text of [sql, `SELECT ${sql}`, sql.replace(/\$(\d+)/g, 'param_$1')]) {
    try {
      return parseSync(text) as unknown as Json;
    } catch (err) {
      first ??= err as Error;
    }
  }
  return first!;
}

/** The violations of one statement (of several, when the text holds several) against the tenant rule. */
export function checkStatement(sql: string, tenantTables: ReadonlySet<string>): Violation[] {
  const tree = parse(sql);
  if (tree instanceof Error)
    return [{ rule: 'unparsed', message: `PostgreSQL's parser rejects it: ${tree.message}` }];
  const ctes = cteNames(tree);
  const out: Violation[] = [];
  const level = () => new Level(tenantTables, ctes);

  const visit = (node: Json): void => {
    if (Array.isArray(node)) {
      for (const v of node) visit(v);
      return;
    }
    if (!isObj(node)) return;
    for (const [type, value] of Object.entries(node)) {
      if (!isObj(value)) {
        visit(value);
        continue;
      }
      if (type === 'SelectStmt' && list(value['fromClause']).length > 0) {
        const l = level();
        for (const item of list(value['fromClause'])) l.addFromItem(item);
        if (value['whereClause']) l.quals.push(value['whereClause']);
        out.push(...l.violations());
      } else if (type === 'UpdateStmt' || type === 'DeleteStmt') {
        const l = level();
        l.addFromItem({ RangeVar: value['relation'] ?? null });
        for (const item of list(value[type === 'UpdateStmt' ? 'fromClause' : 'usingClause']))
          l.addFromItem(item);
        if (value['whereClause']) l.quals.push(value['whereClause']);
        out.push(...l.violations());
      } else if (type === 'MergeStmt') {
        const l = level();
        l.addFromItem({ RangeVar: value['relation'] ?? null });
        l.addFromItem(value['sourceRelation'] ?? null);
        if (value['joinCondition']) l.quals.push(value['joinCondition']);
        out.push(...l.violations());
      } else if (type === 'InsertStmt') {
        const rv = field({ RangeVar: value['relation'] ?? null }, 'RangeVar')!;
        const name = str(rv['relname']) ?? '';
        const table = `${str(rv['schemaname']) ?? 'public'}.${name}`;
        const cols = list(value['cols']).map((c) => str(field(c, 'ResTarget')?.['name']));
        if (tenantTables.has(table) && !ctes.has(name) && !cols.includes('tenant_id'))
          out.push({
            rule: 'insert-without-tenant',
            table,
            message: `an INSERT into ${table} that does not name tenant_id among its columns`,
          });
      }
      if (type === 'SelectStmt') {
        // The two sides of a UNION are SelectStmts without the node wrapper around them.
        const { larg, rarg, ...rest } = value;
        if (isObj(larg)) visit({ SelectStmt: larg });
        if (isObj(rarg)) visit({ SelectStmt: rarg });
        visit(rest);
      } else visit(value);
    }
  };
  visit(tree);
  return out;
}
