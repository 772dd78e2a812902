// The statements a client of a sharded database prepared, as routing needs them: protocol-level ones (a Parse's text,
// plans and declared parameter types, found again by a Bind's statement name; a Close forgets one) and SQL-level ones
// (PREPARE name AS …: the text, whose plan routes each EXECUTE; DEALLOCATE and DISCARD ALL forget them); an EXECUTE's
// arguments bound to its prepared statement's parameters; and which statement a request runs. Frames are read through
// protocol/frontend-fields.ts and protocol/bind.ts. One per session; no I/O.
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { decodeBind, parseParamTypes } from '../protocol/bind.js';
import {
  checkedBindStatementStart,
  checkedNameEnd,
  closedStatement,
  isNameAt,
  parseStatement,
  parseText,
  queryText,
} from '../protocol/frontend-fields.js';
import type { BindParams } from '../router/bind-params.js';
import type { StatementPlan } from '../router/plan.js';
import type { ParameterFormat } from '../sharding/shard-of.js';
import type { RequestStatement, StatementSource } from './request-rewrite.js';

/** A statement the client prepared: its plans, and its text and parameter types (to rebuild a split INSERT). */
export interface PreparedEntry extends StatementSource {
  readonly plans: readonly StatementPlan[];
  readonly isQuery: false;
}

/** An EXECUTE's prepared statement (its plan, with the EXECUTE's routing hint) and the EXECUTE's arguments. */
export interface BoundExecute {
  readonly plan: StatementPlan;
  readonly params: BindParams;
}

export class PreparedPlans {
  private readonly plansFor: (sql: string) => readonly StatementPlan[];
  private readonly named = new Map<string, PreparedEntry>();
  /** The named statement the last Bind found, by name (null: none, or `named` changed since). */
  private lastBoundName: string | null = null;
  private lastBound: PreparedEntry | null = null;
  private unnamed: PreparedEntry | null = null;
  /** The Parse frame of `unnamed`, copied (the client's frame points into its read chunk). */
  private unnamedParse: Buffer | null = null;
  /**
   * SQL-level prepared statements (PREPARE name AS …): the PREPARE's text, whose plan (from the plan cache: re-made
   * when what the router knows changes, e.g. a table's columns) routes each EXECUTE.
   */
  private readonly sqlPrepared = new Map<string, string>();

  /** `plansFor`: the plans of a text (the database's plan cache). */
  constructor(plansFor: (sql: string) => readonly StatementPlan[]) {
    this.plansFor = plansFor;
  }

  /** A Parse: its statement is remembered under its name. Throws PgError (42601 for several statements). */
  noteParse(frame: Buffer): void {
    // The same unnamed statement again (pgbench -M extended, node-postgres' parameterized queries): the same bytes are
    // the same name, text and types, so nothing is decoded or looked up.
    const last = this.unnamedParse;
    if (last !== null && last.length === frame.length && last.equals(frame)) return;
    const name = parseStatement(frame);
    const text = parseText(frame);
    const plans = this.plansFor(text);
    if (plans.length > 1)
      throw PgError.syntaxError('cannot insert multiple commands into a prepared statement');
    const entry: PreparedEntry = { plans, text, paramTypes: parseParamTypes(frame), isQuery: false };
    if (name === '') {
      this.unnamed = entry;
      this.unnamedParse = Buffer.from(frame);
    } else {
      this.named.set(name, entry);
      this.lastBoundName = null;
    }
  }

  /** A Close: a named statement it closes is forgotten. */
  noteClose(frame: Buffer): void {
    const name = closedStatement(frame);
    if (name !== null && name !== '') {
      this.named.delete(name);
      this.lastBoundName = null;
    }
  }

  /** The prepared statement a Bind uses, as this session prepared it (null: unknown here). */
  bound(frame: Buffer): PreparedEntry | null {
    const start = checkedBindStatementStart(frame);
    const end = checkedNameEnd(frame, start);
    // The unnamed statement without a map lookup (most Binds).
    if (end === start) return this.unnamed;
    // The named statement of the last Bind again (a prepared client's every request): its name's bytes compared, not
    // decoded and looked up.
    const last = this.lastBoundName;
    if (last !== null && isNameAt(frame, start, end, last)) return this.lastBound;
    const name = frame.toString('utf8', start, end);
    const entry = this.named.get(name) ?? null;
    if (entry !== null) {
      this.lastBoundName = name;
      this.lastBound = entry;
    }
    return entry;
  }

  /** PREPARE, DEALLOCATE and DISCARD ALL change the SQL-level prepared statements. */
  noteStatement(plan: StatementPlan): void {
    const sqlName = plan.sqlStatement?.name;
    if (plan.kind === 'prepare' && sqlName != null) this.sqlPrepared.set(sqlName, plan.text);
    else if (plan.kind === 'deallocate') {
      if (sqlName == null) this.sqlPrepared.clear();
      else this.sqlPrepared.delete(sqlName);
    } else if (plan.kind === 'discard' && plan.setsManualShard === null) this.sqlPrepared.clear(); // DISCARD ALL
  }

  /**
   * EXECUTE name(args) (`plan`) with the Bind's parameters (`bind`, for `$n` arguments): the prepared statement's plan
   * — with the EXECUTE's routing hint, which wins over the PREPARE's — and the arguments as its parameters (constants,
   * or the EXECUTE's own parameters). Null when the statement is not prepared in this session. Refuses (0A000) an
   * argument that decides where the statement runs but is an expression.
   */
  bindExecute(plan: StatementPlan, bind: BindParams | null): BoundExecute | null {
    const name = plan.sqlStatement?.name ?? '';
    const text = this.sqlPrepared.get(name);
    const prepared = text === undefined ? null : (this.plansFor(text)[0]?.inner ?? null);
    if (prepared === null) return null;
    const values: (Buffer | null)[] = [];
    const formats: ParameterFormat[] = [];
    const unknown = new Set<number>();
    (plan.sqlStatement?.args ?? []).forEach((arg, i) => {
      if (arg.kind === 'constant') {
        values.push(arg.value === null ? null : Buffer.from(arg.value, 'utf8'));
        formats.push(0);
      } else if (arg.kind === 'param' && bind !== null && arg.index >= 1 && arg.index <= bind.values.length) {
        values.push(bind.values[arg.index - 1]);
        formats.push(bind.formats[arg.index - 1] ?? 0);
      } else {
        unknown.add(i + 1);
        values.push(null);
        formats.push(0);
      }
    });
    const inner =
      plan.manualShard !== null || plan.manualShardingKey !== null
        ? { ...prepared, manualShard: plan.manualShard, manualShardingKey: plan.manualShardingKey }
        : prepared;
    for (const index of routingParams(inner)) {
      if (unknown.has(index)) {
        throw PgError.featureNotSupported(
          `EXECUTE ${name}: argument ${index} decides where the statement runs, but it is an expression shardgate cannot evaluate`,
          'Pass a constant (or a parameter) for it.',
        );
      }
    }
    return { plan: inner, params: { values, formats } };
  }

  /**
   * The statement a request runs: a Query's text, or the statement its Bind binds (parsed in the request or earlier),
   * with where the Parse and Bind sit. Null when it runs none.
   */
  requestStatement(types: readonly number[], frames: readonly Buffer[]): RequestStatement | null {
    let statement: RequestStatement | null = null;
    let parseIndex = -1;
    let paramCount = 0;
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      if (types[i] === Frontend.Query) {
        const text = queryText(frame);
        statement = { text, paramTypes: [], isQuery: true, parseIndex: -1, bindIndex: -1, paramCount: 0 };
      } else if (types[i] === Frontend.Parse) {
        parseIndex = i;
        const paramTypes = parseParamTypes(frame);
        paramCount = Math.max(paramCount, paramTypes.length);
        statement = {
          text: parseText(frame),
          paramTypes,
          isQuery: false,
          parseIndex,
          bindIndex: -1,
          paramCount,
        };
      } else if (types[i] === Frontend.Bind) {
        const entry = this.bound(frame);
        const parsed = statement as RequestStatement | null; // set by a Parse earlier in the loop
        const text = parseIndex < 0 && entry !== null ? entry.text : parsed?.text;
        const paramTypes = parseIndex < 0 && entry !== null ? entry.paramTypes : (parsed?.paramTypes ?? []);
        if (text === undefined) continue;
        paramCount = Math.max(paramCount, decodeBind(frame).values.length, paramTypes.length);
        statement = { text, paramTypes, isQuery: false, parseIndex, bindIndex: i, paramCount };
      }
    }
    return statement;
  }
}

/** The parameters (1-based) that decide where a statement runs or how its rows merge: key values, LIMIT, OFFSET. */
function routingParams(plan: StatementPlan): number[] {
  const out: number[] = [];
  for (const s of plan.shardKey?.sources ?? []) if (s.kind === 'param') out.push(s.index);
  for (const k of plan.insert?.insertKeys ?? []) if (k !== null && k.kind === 'param') out.push(k.index);
  for (const c of [plan.select?.limit, plan.select?.offset])
    if (c != null && c.kind === 'param') out.push(c.index);
  return out;
}
