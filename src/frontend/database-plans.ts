// The plans a sharded database's sessions share, kept in step with what the proxy learns about the database at run
// time: column order and generated columns of sharded tables (learned from a shard, written into the shared schema),
// catalog facts and sequence values. Whenever what is known changes — learned, or forgotten because DDL may have
// changed it — the plans made before are dropped. One per session, over the database's shared caches; no I/O.
import type { GeneratedColumn, ShardingSchema } from '../sharding/schema.js';
import type { CatalogFacts } from '../sharding/catalog-facts.js';
import { analyzeQuery } from '../router/analyze.js';
import type { PlanCache } from '../router/plan-cache.js';
import type { StatementPlan } from '../router/plan.js';
import { SequenceValues } from './sequence-values.js';

/** What a database's sessions share for planning: the schema (written as they learn) and the plan caches. */
export interface SharedPlanning {
  readonly schema: ShardingSchema;
  readonly plans: PlanCache;
  /**
   * Plans of simple-protocol texts with their literals made parameters (router/literals.ts), by that text; null: it
   * does not parse or is not one statement (the raw text is used). Absent: no literal normalization.
   */
  readonly literalPlans?: PlanCache<StatementPlan | null>;
  /** Values of the sequences of record, for columns the proxy fills (absent: a fresh allocator per session). */
  readonly sequenceValues?: SequenceValues;
}

export class DatabasePlans {
  private readonly shared: SharedPlanning;
  private ownSequenceValues: SequenceValues | null = null;

  constructor(shared: SharedPlanning) {
    this.shared = shared;
  }

  /** The plans of `sql`'s statements, from the shared cache (analysed and cached on a miss). Throws PgError. */
  plansFor(sql: string): readonly StatementPlan[] {
    let plans = this.shared.plans.get(sql);
    if (plans === undefined) {
      plans = analyzeQuery(sql, this.shared.schema);
      this.shared.plans.set(sql, plans);
    }
    return plans;
  }

  /** Whether simple Queries are routed by their literal-normalized text (literalPlan). */
  get hasLiteralPlans(): boolean {
    return this.shared.literalPlans !== undefined;
  }

  /**
   * The plan of a literal-normalized text (router/literals.ts), cached; null when it is not one statement or does not
   * analyse as one (the raw text's plan is used then). Undefined when there is no literal cache.
   */
  literalPlan(normalizedText: string): StatementPlan | null | undefined {
    const cache = this.shared.literalPlans;
    if (cache === undefined) return undefined;
    let plan = cache.get(normalizedText);
    if (plan === undefined) {
      try {
        const plans = analyzeQuery(normalizedText, this.shared.schema);
        plan = plans.length === 1 ? plans[0] : null;
      } catch {
        plan = null; // e.g. a literal where a parameter may not stand: the raw text is parsed instead
      }
      cache.set(normalizedText, plan);
    }
    return plan;
  }

  /** Analyse `sql` against this database's sharding schema, uncached (function bodies in catalog lookups). */
  analyze(sql: string): StatementPlan[] {
    return analyzeQuery(sql, this.shared.schema);
  }

  /** The column order of a sharded table, learned from a shard: plans made without it are dropped. */
  learnTableColumns(table: string, columns: readonly string[], generated: readonly GeneratedColumn[]): void {
    const schema = this.shared.schema;
    schema.tableColumns ??= new Map();
    schema.tableColumns.set(table, columns);
    schema.generatedColumns ??= new Map();
    schema.generatedColumns.set(table, generated);
    this.dropPlans();
  }

  /** A column order learned earlier (COPY without a column list uses it too). */
  knownTableColumns(table: string): readonly string[] | undefined {
    return this.shared.schema.tableColumns?.get(table);
  }

  /** The column order of an INSERT's table, when learned (its column list may have to be written out). */
  insertTableColumns(sql: string): readonly string[] {
    const t = this.plansFor(sql)[0]?.tables[0]; // an INSERT's first table is its target
    if (t === undefined) return [];
    return this.knownTableColumns(t.schema !== null ? `${t.schema}.${t.name}` : t.name) ?? [];
  }

  /** DDL may change column order and what relations and functions are: forget what was learned, and its plans. */
  forgetLearned(): void {
    const schema = this.shared.schema;
    const known = schema.tableColumns;
    const facts = schema.catalog;
    const hasColumns = known !== undefined && known.size > 0;
    const hasFacts = facts !== undefined && (facts.relations.size > 0 || facts.functions.size > 0);
    if (!hasColumns && !hasFacts) return;
    known?.clear();
    schema.generatedColumns?.clear();
    facts?.clear();
    this.sequenceValues.clear(); // a sequence may have been dropped and made again: its old values are not ours
    this.dropPlans();
  }

  /** What the router knows changed (catalog facts, column order): plans made before are dropped. */
  dropPlans(): void {
    this.shared.plans.clear();
    this.shared.literalPlans?.clear();
  }

  /** The database's catalog facts (views, temporary tables, functions that may write), learned on first use. */
  get catalogFacts(): CatalogFacts | undefined {
    return this.shared.schema.catalog;
  }

  /** Values of the sequences of record (the columns of sharded tables the proxy fills). */
  get sequenceValues(): SequenceValues {
    return this.shared.sequenceValues ?? (this.ownSequenceValues ??= new SequenceValues());
  }
}
