// The router's model of a statement's name scopes. Each SELECT (and each subquery, CTE, set-operation branch, or
// DML target) is a Level with its FROM references; a column is the key "<ref id>.<name>". Per level we record which
// columns the query equates and which constants or parameters restrict them ("pins"), so we can later ask: which key
// values do the rows of this sharded table reference have to match? A global union-find of equated columns across
// all levels answers the other question: are two sharded references joined on their sharding columns (co-located)?
import type { ShardedColumn } from '../sharding/schema.js';
import type { KeySource } from './plan.js';
import { UnionFind } from './union-find.js';

export type LevelRole = 'top' | 'derived' | 'cte' | 'sublink' | 'branch' | 'insert_source' | 'dml';

export interface Ref {
  readonly id: number;
  readonly level: Level;
  readonly kind: 'table' | 'derived' | 'function' | 'excluded';
  readonly schema: string | null;
  readonly name: string | null;
  /** How columns qualify it: the alias, or the table name when there is none. */
  readonly qualifier: string | null;
  readonly hasAlias: boolean;
  /** The sharding column entry; found later for column-based entries (when the query names that column). */
  shardedBy: ShardedColumn | null;
  /** Subquery / CTE level producing this reference's rows. */
  readonly inner: Level | null;
  /** `AS alias(a, b)` column names. */
  readonly columnAliases: readonly string[] | null;
  /** The table key (schema.name) in the statement's table list. */
  readonly tableKey: string | null;
  /** Derived columns already linked to their inner column (so each is linked once). */
  readonly linked: Set<string>;
}

/** An output column of a level: its name, the column it passes through, or the constants it can hold. */
export interface Target {
  readonly name: string | null;
  readonly key: string | null;
  /** Literal / parameter values (one per VALUES row, or the single select-list constant), or null. */
  readonly constants: readonly KeySource[] | null;
}

/** What restricts a column's values in a level, as a tree over the level's conjunctive conditions. */
export type PinExpr =
  | { readonly t: 'pin'; readonly key: string; readonly sources: readonly KeySource[] }
  | { readonly t: 'and'; readonly items: readonly PinExpr[] }
  | { readonly t: 'or'; readonly items: readonly PinExpr[] }
  /** `key` takes its values from a column of another level (IN-subquery, derived table output). */
  | { readonly t: 'sub'; readonly key: string; readonly level: Level; readonly innerKey: string }
  /** Outer join: the nullable side's `key` only matters where it equals the preserved side's `from`. */
  | { readonly t: 'flow'; readonly key: string; readonly from: string };

export class Level {
  readonly id: number;
  readonly parent: Level | null;
  readonly role: LevelRole;
  readonly refs: Ref[] = [];
  /** Columns equated by this level's conjunctive conditions. */
  readonly uf = new UnionFind();
  /** Conjunctive restrictions (all hold for the rows this level reads). */
  readonly pins: PinExpr[] = [];
  readonly sublinks: Level[] = [];
  /** Set-operation branches. */
  readonly branches: Level[] = [];
  targets: Target[] = [];
  hasStar = false;
  /** For a sublink: its type, and the outer column compared with its first output column (IN / = ANY). */
  sublinkType: string | null = null;
  linkKey: string | null = null;
  /** How to name a DML level in reasons ('UPDATE … FROM'), or null. */
  label: string | null = null;
  /** Derived-table / CTE references reading this level's rows. */
  readonly usedBy: Ref[] = [];
  /**
   * A plain SELECT (no aggregation, DISTINCT, window, LIMIT, set operation) used as a derived table or CTE: conditions
   * on its output columns outside restrict which of its input rows matter (predicate pushdown).
   */
  isPushdownSafe = false;
  /** The SELECT node of this level, for shape checks (null for DML levels). */
  select: { readonly [key: string]: unknown } | null = null;

  constructor(id: number, parent: Level | null, role: LevelRole) {
    this.id = id;
    this.parent = parent;
    this.role = role;
  }

  isAncestorOf(other: Level): boolean {
    for (let l = other.parent; l !== null; l = l.parent) if (l === this) return true;
    return false;
  }
}

export function columnKey(ref: Ref, column: string): string {
  return `${ref.id}.${column}`;
}

/** The ref id a column key belongs to. */
export function refIdOfKey(key: string): number {
  return Number(key.slice(0, key.indexOf('.')));
}

export function sameSource(a: KeySource, b: KeySource): boolean {
  if (a.kind === 'literal') return b.kind === 'literal' && a.value === b.value;
  return b.kind === 'param' && a.index === b.index && a.isArray === b.isArray;
}

export function unionSources(lists: readonly (readonly KeySource[])[]): KeySource[] {
  const out: KeySource[] = [];
  for (const l of lists) for (const s of l) if (!out.some((o) => sameSource(o, s))) out.push(s);
  return out;
}

/**
 * Answers "which key values can the rows of column `key` (read at `level`) have?" from the level's pins, the
 * pins of outer levels it is correlated with, and the levels its derived tables come from. Null = unrestricted.
 */
export class PinEvaluator {
  private readonly refs: readonly Ref[];
  private readonly visiting = new Set<string>();

  constructor(refs: readonly Ref[]) {
    this.refs = refs;
  }

  keySources(level: Level, key: string): KeySource[] | null {
    const root = level.uf.find(key);
    const mark = `${level.id}:${root}`;
    if (this.visiting.has(mark)) return null;
    this.visiting.add(mark);
    try {
      let best: KeySource[] | null = null;
      const consider = (s: KeySource[] | null): void => {
        if (s !== null && (best === null || s.length < best.length)) best = s;
      };
      for (const p of level.pins) consider(this.evalPin(level, p, root));
      if (level.isPushdownSafe && level.usedBy.length > 0) consider(this.fromOutside(level, root));
      // Correlated with an outer level (`WHERE o.user_id = u.id` inside a subquery): the outer pins hold too.
      for (const member of level.uf.classOf(key)) {
        const owner = this.refs[refIdOfKey(member)];
        if (owner !== undefined && owner.level !== level && owner.level.isAncestorOf(level)) {
          consider(this.keySources(owner.level, member));
        }
      }
      return best;
    } finally {
      this.visiting.delete(mark);
    }
  }

  /** Pins on this level's output columns in every query reading it (union over the readers), or null. */
  private fromOutside(level: Level, root: string): KeySource[] | null {
    const parts: KeySource[][] = [];
    for (const reader of level.usedBy) {
      let best: KeySource[] | null = null;
      level.targets.forEach((t, i) => {
        if (t.key === null || level.uf.find(t.key) !== root) return;
        const name = reader.columnAliases?.[i] ?? t.name;
        if (name === null) return;
        const s = this.keySources(reader.level, columnKey(reader, name));
        if (s !== null && (best === null || s.length < best.length)) best = s;
      });
      if (best === null && level.hasStar && reader.columnAliases === null) {
        // Through `*`: the outer column has the inner column's name.
        for (const member of level.uf.classOf(root)) {
          const owner = this.refs[refIdOfKey(member)];
          if (owner === undefined || owner.level !== level) continue;
          const s = this.keySources(reader.level, columnKey(reader, member.slice(member.indexOf('.') + 1)));
          if (s !== null && (best === null || s.length < best.length)) best = s;
        }
      }
      if (best === null) return null;
      parts.push(best);
    }
    return unionSources(parts);
  }

  private evalPin(level: Level, p: PinExpr, root: string): KeySource[] | null {
    switch (p.t) {
      case 'pin':
        return level.uf.find(p.key) === root ? [...p.sources] : null;
      case 'sub':
        return level.uf.find(p.key) === root ? this.keySources(p.level, p.innerKey) : null;
      case 'flow':
        return level.uf.find(p.key) === root ? this.keySources(level, p.from) : null;
      case 'and': {
        let best: KeySource[] | null = null;
        for (const item of p.items) {
          const s = this.evalPin(level, item, root);
          if (s !== null && (best === null || s.length < best.length)) best = s;
        }
        return best;
      }
      case 'or': {
        const parts: KeySource[][] = [];
        for (const item of p.items) {
          const s = this.evalPin(level, item, root);
          if (s === null) return null;
          parts.push(s);
        }
        return unionSources(parts);
      }
    }
  }
}
