// A sharded session's requests with PgDog's `pgdog.unique_id()` replaced by ids of the proxy's own, before routing, as
// PgDog does: a simple Query gets each call as a bigint literal (a new id per call, in text order); a Parse gets each
// call as a new parameter after the client's own (`$n::bigint`), and every Bind of that statement gets the ids
// appended (text format), so a named prepared statement executed many times gets new ids each time and stays one
// statement on the servers. `SHOW pgdog.unique_id` (PgDog's own command) becomes `SELECT <id>::bigint AS unique_id`.
// SQL-level `PREPARE name AS …` (simple Query or Parse) gets its calls as parameters after its own (`$n::bigint`), and
// each `EXECUTE name` is given new ids as extra arguments (as PgDog does): literals in a simple Query, parameters of
// the statement in a Parse (so each Bind of it gives new ids), so every EXECUTE inserts new ids. A Describe of a
// statement given ids is answered with the client's parameters only (describe-trims.ts).
// Routing then sees an ordinary statement: an INSERT whose sharding key is a call goes to the shard of its id.
// The request is rewritten frame for frame; running it through again changes nothing (a statement already rewritten is
// recognised by its text, a Bind already given its ids by its parameter count).
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { decodeBind, type BindMessage } from '../protocol/bind.js';
import { query } from '../protocol/messages.js';
import { MessageWriter } from '../protocol/writer.js';
import { PgError } from '../errors/pg-error.js';
import type { PlanCache } from '../router/plan-cache.js';
import {
  findPreparedUses,
  findUniqueIdCalls,
  highestParam,
  mayMentionUniqueId,
  mentionsUniqueId,
  type PreparedUse,
  type UniqueIdCalls,
} from '../router/unique-id-calls.js';
import type { UniqueIdGenerator } from '../sharding/unique-id.js';
import type { RequestBatch } from './request-batch.js';
import { markDescribe } from './describe-trims.js';

/** What a database's sessions share: the proxy's one generator, and the calls found per text. */
export interface UniqueIdSupport {
  readonly generator: UniqueIdGenerator;
  /** Calls found per SQL text (null: none), so a statement sent again is not parsed again. */
  readonly calls: PlanCache<UniqueIdCalls | null>;
}

/** A prepared statement whose calls became parameters `$base+1 … $base+count`. */
interface IdStatement {
  /** Its text as rewritten (what the servers prepare). */
  readonly text: string;
  /** The client's parameters: a Bind with this many values gets the ids appended. */
  readonly base: number;
  readonly count: number;
  /**
   * It EXECUTEs a SQL-level statement PREPAREd with calls: PostgreSQL takes no Bind parameters in EXECUTE's arguments,
   * so its ids are literals written at Parse, good for one Bind (a second would insert the same ids again).
   */
  readonly hasFixedIds: boolean;
}

/** Rewritten texts a session remembers (a split batch parses them again as its pieces run). */
const PRODUCED_MAX = 64;

/** Words of statements that use or end SQL-level prepared statements (checked before a text is parsed for them). */
const PREPARED_WORDS = /execute|prepare|deallocate|discard/i;

/** One change to a text: [start, end) replaced by `text`. */
interface TextEdit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/** A TextEdit whose text is made once the edits are in text order (ids are handed out in that order). */
interface PendingEdit {
  readonly start: number;
  readonly end: number;
  readonly make: () => string;
}

export class UniqueIdRequests {
  private readonly named = new Map<string, IdStatement>();
  private unnamed: IdStatement | null = null;
  /** Texts this session's Parses were rewritten to, most recent last: parsed again, they are the same statement. */
  private readonly produced = new Map<string, IdStatement>();
  /** SQL-level prepared statements (PREPARE) with calls: how many ids each EXECUTE of them is given. */
  private readonly sqlPrepared = new Map<string, number>();
  /** Statements with fixed ids (IdStatement.hasFixedIds) bound once already. */
  private readonly spent = new WeakSet<IdStatement>();
  /** The Bind frames that bound them (a request routed again is rewritten again: the same Bind is no second one). */
  private readonly spentBy = new WeakSet<Buffer>();

  constructor(private readonly support: UniqueIdSupport) {}

  /** The request with ids in place of the calls; null when it has none (nothing changed). Throws PgError. */
  rewrite(types: readonly number[], frames: readonly Buffer[]): { types: number[]; frames: Buffer[] } | null {
    let out: Buffer[] | null = null;
    let describes: [Buffer, number | null][] | null = null;
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      switch (types[i]) {
        case Frontend.Query: {
          const rewritten = this.rewriteQuery(frame);
          if (rewritten !== null) (out ??= [...frames])[i] = rewritten;
          break;
        }
        case Frontend.Parse: {
          const rewritten = this.rewriteParse(frame);
          if (rewritten !== null) (out ??= [...frames])[i] = rewritten;
          break;
        }
        case Frontend.Bind: {
          const rewritten = this.rewriteBind(frame);
          if (rewritten !== null) (out ??= [...frames])[i] = rewritten;
          break;
        }
        case Frontend.Close:
          if (frame[5] === 0x53 /* S */) this.forget(cstring(frame, 6));
          break;
        case Frontend.Describe:
          if (frame[5] === 0x53 /* S */)
            (describes ??= []).push([frame, this.clientParams(cstring(frame, 6))]);
          break;
      }
    }
    // Its Describes of statements given ids are answered with the client's parameters only (all of them marked).
    if (describes?.some(([, keep]) => keep !== null) === true)
      for (const [frame, keep] of describes) markDescribe(frame, keep);
    return out === null ? null : { types: [...types], frames: out };
  }

  /** Statements with ids, texts rewritten, or SQL-level PREPAREs with calls: a Parse may need more than a byte test. */
  private get hasState(): boolean {
    return (
      this.unnamed !== null || this.named.size > 0 || this.produced.size > 0 || this.sqlPrepared.size > 0
    );
  }

  /** How many parameters the client gave statement `name`, when the proxy added ids to them; else null. */
  private clientParams(name: string): number | null {
    const statement = name === '' ? this.unnamed : (this.named.get(name) ?? null);
    return statement === null || statement.count === 0 ? null : statement.base;
  }

  /** The calls of `sql`, from the cache; null when it has none (most texts: one regular expression test). */
  private callsIn(sql: string): UniqueIdCalls | null {
    if (!mentionsUniqueId(sql)) return null;
    let calls = this.support.calls.get(sql);
    if (calls === undefined) {
      calls = findUniqueIdCalls(sql);
      this.support.calls.set(sql, calls);
    }
    if (calls?.isPerRow === true) {
      throw PgError.featureNotSupported(
        'pgdog.unique_id() in the select list of a query with FROM is not supported: the proxy puts one id in place of each call, so every row would get the same id',
        'Insert rows with VALUES (one call per row), or leave the key out of the INSERT: a serial or identity key of a sharded table is filled from the sequence of record.',
      );
    }
    return calls;
  }

  /**
   * A simple Query with calls (each a new id literal; in a PREPARE, a parameter of that statement) or EXECUTEs of a
   * statement PREPAREd with calls (given new ids as extra arguments); null when it has neither.
   */
  private rewriteQuery(frame: Buffer): Buffer | null {
    const mayCall = mayMentionUniqueId(frame, 5, frame.length - 1);
    // Nearly every Query: no call, no SQL PREPARE holding one — done without decoding the text.
    if (!mayCall && this.sqlPrepared.size === 0) return null;
    const sql = frame.toString('utf8', 5, frame.length - 1);
    const mayUsePrepared = PREPARED_WORDS.test(sql);
    if (!mayCall && !mayUsePrepared) return null;
    const calls = mayCall ? this.callsIn(sql) : null;
    const uses = mayUsePrepared ? findPreparedUses(sql) : null;
    const newId = (): string => `${this.support.generator.next()}::bigint`;
    const edits = this.edits(calls, uses, newId, newId);
    return edits.length === 0 ? null : query(applyEdits(sql, edits));
  }

  /**
   * A Parse of a text with calls, or with EXECUTEs of a statement PREPAREd with calls: the same statement name and
   * declared types, each call (and each id such an EXECUTE needs) made a parameter after the client's own, so every
   * Bind gives new ids. A SQL-level PREPARE in it gets its calls as parameters of that statement, as in a simple
   * Query; PREPARE, DEALLOCATE and DISCARD ALL take effect for this session's EXECUTEs when parsed.
   */
  private rewriteParse(frame: Buffer): Buffer | null {
    // A session that has met no call (nearly all): only a call in this Parse matters, and one pass over its bytes
    // (name and types included: a false alarm there only takes the long way) says there is none — no offsets found,
    // nothing decoded.
    if (!this.hasState && !mayMentionUniqueId(frame, 5, frame.length)) return null;
    const nameEnd = frame.indexOf(0, 5);
    const textEnd = frame.indexOf(0, nameEnd + 1);
    if (nameEnd < 0 || textEnd < 0) return null; // malformed: routing reports it
    const name = frame.toString('utf8', 5, nameEnd);
    const known = nameEnd === 5 ? this.unnamed : (this.named.get(name) ?? null);
    const mayCall = mayMentionUniqueId(frame, nameEnd + 1, textEnd);
    // Nothing to look at or to forget.
    if (!mayCall && known === null && this.produced.size === 0 && this.sqlPrepared.size === 0) return null;
    const text = frame.toString('utf8', nameEnd + 1, textEnd);
    if (known !== null && known.text === text) return null; // already rewritten
    // A text rewritten earlier (a batch's statements run one by one, each parsed again) is still that statement.
    const again = this.produced.get(text);
    if (again !== undefined) {
      this.remember(name, again.hasFixedIds ? { ...again } : again); // parsed again: bound once more
      return null;
    }
    const calls = mayCall ? this.callsIn(text) : null;
    const mayUsePrepared =
      PREPARED_WORDS.test(text) && (this.sqlPrepared.size > 0 || calls?.isInPrepare === true);
    const uses = mayUsePrepared ? findPreparedUses(text) : null;
    const declared = frame.length >= textEnd + 3 ? frame.readInt16BE(textEnd + 1) : 0;
    let base = declared;
    if (calls !== null || uses?.some((use) => use.kind === 'execute') === true)
      base = Math.max(calls?.maxParam ?? highestParam(text), declared);
    let count = 0;
    let hasFixedIds = false;
    const edits = this.edits(
      calls,
      uses,
      () => `$${base + ++count}::bigint`,
      () => {
        hasFixedIds = true;
        return `${this.support.generator.next()}::bigint`;
      },
    );
    if (edits.length === 0) {
      this.forget(name);
      return null;
    }
    const sql = applyEdits(text, edits);
    const statement: IdStatement = { text: sql, base, count, hasFixedIds };
    this.remember(name, statement);
    this.produced.delete(sql);
    this.produced.set(sql, statement);
    if (this.produced.size > PRODUCED_MAX) this.produced.delete(this.produced.keys().next().value as string);
    // Name bytes and the declared types (after the text) are kept as the client sent them.
    return new MessageWriter(frame.length + sql.length)
      .bytes(frame.subarray(5, nameEnd + 1))
      .cstring(sql)
      .bytes(frame.subarray(textEnd + 1))
      .frame(Frontend.Parse);
  }

  /**
   * The changes a text needs: each call replaced by what `id()` gives (a PREPARE's calls by that statement's own
   * parameters), each EXECUTE of a statement PREPAREd with calls given as many `executeId()`s as extra arguments; the
   * session's PREPAREd statements are updated in text order (a PREPARE or DEALLOCATE takes effect for the EXECUTEs
   * after it). Both are called in text order. Empty: nothing to change.
   */
  private edits(
    calls: UniqueIdCalls | null,
    uses: PreparedUse[] | null,
    id: () => string,
    executeId: () => string,
  ): TextEdit[] {
    const edits: PendingEdit[] = [];
    const sites = calls?.sites ?? [];
    const counts = new Map<string, number>();
    for (const site of sites) {
      if (site.prepare === undefined) continue;
      counts.set(site.prepare.name, site.prepare.index);
    }
    for (const use of uses ?? []) {
      if (use.kind === 'prepare') {
        const count = counts.get(use.name) ?? 0;
        if (count > 0) this.sqlPrepared.set(use.name, count);
        else this.sqlPrepared.delete(use.name);
      } else if (use.kind === 'deallocate') {
        if (use.name === null) this.sqlPrepared.clear();
        else this.sqlPrepared.delete(use.name);
      } else {
        const count = this.sqlPrepared.get(use.name) ?? 0;
        if (count === 0) continue;
        const make = (): string => {
          const ids = Array.from({ length: count }, executeId).join(', ');
          return use.hasArgs ? `, ${ids}` : ` (${ids})`;
        };
        edits.push({ start: use.at, end: use.at, make });
      }
    }
    for (const site of sites) {
      const prepare = site.prepare;
      const make =
        prepare !== undefined
          ? (): string => `($${prepare.base + prepare.index}::bigint)`
          : site.isShow
            ? (): string => `SELECT ${id()} AS unique_id`
            : (): string => `(${id()})`;
      edits.push({ start: site.start, end: site.end, make });
    }
    edits.sort((a, b) => a.start - b.start);
    return edits.map((edit) => ({ start: edit.start, end: edit.end, text: edit.make() }));
  }

  /** A Bind of a statement with calls, still with only the client's values: the ids appended, in text format. */
  private rewriteBind(frame: Buffer): Buffer | null {
    if (this.unnamed === null && this.named.size === 0) return null; // no statement of this session calls it
    const portalEnd = frame.indexOf(0, 5);
    const stmtEnd = portalEnd < 0 ? -1 : frame.indexOf(0, portalEnd + 1);
    if (stmtEnd < 0) return null;
    const statement =
      stmtEnd === portalEnd + 1
        ? this.unnamed
        : (this.named.get(frame.toString('utf8', portalEnd + 1, stmtEnd)) ?? null);
    if (statement === null) return null;
    if (statement.hasFixedIds && !this.spentBy.has(frame)) {
      if (this.spent.has(statement)) {
        throw PgError.featureNotSupported(
          'an EXECUTE of a statement prepared with pgdog.unique_id() gets its ids when parsed, so it can be bound only once',
          'Parse the EXECUTE again for each run (an unnamed statement), or send it as a simple Query.',
        );
      }
      this.spent.add(statement);
      this.spentBy.add(frame);
    }
    if (statement.count === 0) return null;
    let bind: BindMessage;
    try {
      bind = decodeBind(frame);
    } catch {
      return null; // malformed: routing reports it (08P01)
    }
    if (bind.values.length !== statement.base) return null; // already given its ids (or the server will refuse it)
    const ids = Array.from({ length: statement.count }, () =>
      Buffer.from(this.support.generator.next().toString()),
    );
    const isAllText = bind.formats.every((f) => f === 0);
    const w = new MessageWriter(frame.length + 24 * ids.length).bytes(frame.subarray(5, stmtEnd + 1));
    if (isAllText) w.int16(0);
    else {
      w.int16(bind.values.length + ids.length);
      for (const f of bind.formats) w.int16(f);
      for (let k = 0; k < ids.length; k++) w.int16(0);
    }
    w.int16(bind.values.length + ids.length);
    for (const v of [...bind.values, ...ids]) {
      if (v === null) w.int32(-1);
      else w.int32(v.length).bytes(v);
    }
    return w.bytes(bind.resultFormats).frame(Frontend.Bind);
  }

  private remember(name: string, statement: IdStatement): void {
    if (statement.count === 0 && !statement.hasFixedIds) return this.forget(name); // e.g. a PREPARE: no ids at Bind
    if (name === '') this.unnamed = statement;
    else this.named.set(name, statement);
  }

  private forget(name: string): void {
    if (name === '') this.unnamed = null;
    else this.named.delete(name);
  }
}

/** `sql` with `edits` (in text order, not overlapping) made. */
function applyEdits(sql: string, edits: readonly TextEdit[]): string {
  let out = '';
  let from = 0;
  for (const edit of edits) {
    out += sql.slice(from, edit.start) + edit.text;
    from = edit.end;
  }
  return out + sql.slice(from);
}

function cstring(frame: Buffer, from: number): string {
  const end = frame.indexOf(0, from);
  return frame.toString('utf8', from, end < 0 ? frame.length : end);
}

/**
 * The requests queued in `batch` with ids in place of the calls, rewritten in the batch (a session with one shard and
 * replicas, which sends its batch as it comes). A request refused (0A000) is answered by `fail` and dropped; false when
 * nothing is left to send now.
 */
export function withUniqueIds(
  ids: UniqueIdRequests,
  batch: RequestBatch,
  fail: (err: PgError, count: number) => void,
): boolean {
  for (;;) {
    const { types, frames } = batch.peek(batch.length);
    try {
      const rewritten = ids.rewrite(types, frames);
      if (rewritten !== null) {
        batch.takeFirst(batch.length);
        batch.unshift(rewritten.types, rewritten.frames);
      }
      return true;
    } catch (err) {
      fail(err instanceof PgError ? err : PgError.internal(String(err)), batch.firstRequestLength());
      if (batch.isEmpty || !batch.isFlushPoint) return false;
    }
  }
}
