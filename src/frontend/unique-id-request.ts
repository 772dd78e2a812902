// A sharded session's requests with PgDog's `pgdog.unique_id()` replaced by ids of the proxy's own, before routing, as
// PgDog does: a simple Query gets each call as a bigint literal (a new id per call, in text order); a Parse gets each
// call as a new parameter after the client's own (`$n::bigint`), and every Bind of that statement gets the ids
// appended (text format), so a named prepared statement executed many times gets new ids each time and stays one
// statement on the servers. `SHOW pgdog.unique_id` (PgDog's own command) becomes `SELECT <id>::bigint AS unique_id`.
// SQL-level `PREPARE name AS …` gets its calls as parameters after its own (`$n::bigint`), and each `EXECUTE name`
// is given new ids as extra arguments (as PgDog does), so every EXECUTE inserts new ids.
// Routing then sees an ordinary statement: an INSERT whose sharding key is a call goes to the shard of its id.
// The request is rewritten frame for frame; running it through again changes nothing (a statement already rewritten is
// recognised by its text, a Bind already given its ids by its parameter count).
import { Frontend } from '../protocol/codes.js';
import { decodeBind, type BindMessage } from '../protocol/bind.js';
import { query } from '../protocol/messages.js';
import { MessageWriter } from '../protocol/writer.js';
import { PgError } from '../errors/pg-error.js';
import type { PlanCache } from '../router/plan-cache.js';
import {
  findPreparedUses,
  findUniqueIdCalls,
  mayMentionUniqueId,
  mentionsUniqueId,
  replaceUniqueIdSites,
  type UniqueIdCalls,
  type UniqueIdSite,
} from '../router/unique-id-calls.js';
import type { UniqueIdGenerator } from '../sharding/unique-id.js';
import type { RequestBatch } from './request-batch.js';

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

export class UniqueIdRequests {
  private readonly named = new Map<string, IdStatement>();
  private unnamed: IdStatement | null = null;
  /** Texts this session's Parses were rewritten to, most recent last: parsed again, they are the same statement. */
  private readonly produced = new Map<string, IdStatement>();
  /** SQL-level prepared statements (PREPARE) with calls: how many ids each EXECUTE of them is given. */
  private readonly sqlPrepared = new Map<string, number>();

  constructor(private readonly support: UniqueIdSupport) {}

  /** The request with ids in place of the calls; null when it has none (nothing changed). Throws PgError. */
  rewrite(types: readonly number[], frames: readonly Buffer[]): { types: number[]; frames: Buffer[] } | null {
    let out: Buffer[] | null = null;
    const replace = (i: number, frame: Buffer): void => {
      out ??= [...frames];
      out[i] = frame;
    };
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      switch (types[i]) {
        case Frontend.Query: {
          const rewritten = this.rewriteQuery(frame);
          if (rewritten !== null) replace(i, rewritten);
          break;
        }
        case Frontend.Parse: {
          const rewritten = this.rewriteParse(frame);
          if (rewritten !== null) replace(i, rewritten);
          break;
        }
        case Frontend.Bind: {
          const rewritten = this.rewriteBind(frame);
          if (rewritten !== null) replace(i, rewritten);
          break;
        }
        case Frontend.Close:
          if (frame[5] === 0x53 /* S */) this.forget(cstring(frame, 6));
          break;
      }
    }
    return out === null ? null : { types: [...types], frames: out };
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
    if (calls === null && (uses === null || uses.length === 0)) return null;
    const edits: TextEdit[] = [];
    const sites = calls?.sites ?? [];
    const counts = new Map<string, number>();
    for (const site of sites) {
      if (site.prepare === undefined) continue;
      counts.set(site.prepare.name, site.prepare.index);
    }
    // In text order: a PREPARE or DEALLOCATE takes effect for the EXECUTEs after it.
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
        const ids = Array.from({ length: count }, () => `${this.support.generator.next()}::bigint`).join(
          ', ',
        );
        edits.push({ start: use.at, end: use.at, text: use.hasArgs ? `, ${ids}` : ` (${ids})` });
      }
    }
    for (const site of sites) {
      const text =
        site.prepare !== undefined
          ? `($${site.prepare.base + site.prepare.index}::bigint)`
          : this.literal(site);
      edits.push({ start: site.start, end: site.end, text });
    }
    if (edits.length === 0) return null;
    edits.sort((a, b) => a.start - b.start);
    let out = '';
    let from = 0;
    for (const edit of edits) {
      out += sql.slice(from, edit.start) + edit.text;
      from = edit.end;
    }
    return query(out + sql.slice(from));
  }

  /** A Parse of a text with calls: the same statement name and declared types, the calls made parameters. */
  private rewriteParse(frame: Buffer): Buffer | null {
    const nameEnd = frame.indexOf(0, 5);
    const textEnd = frame.indexOf(0, nameEnd + 1);
    if (nameEnd < 0 || textEnd < 0) return null; // malformed: routing reports it
    const name = frame.toString('utf8', 5, nameEnd);
    const known = nameEnd === 5 ? this.unnamed : (this.named.get(name) ?? null);
    const mayCall = mayMentionUniqueId(frame, nameEnd + 1, textEnd);
    if (!mayCall && known === null && this.produced.size === 0) return null; // nothing to look at or to forget
    const text = frame.toString('utf8', nameEnd + 1, textEnd);
    if (known !== null && known.text === text) return null; // already rewritten
    const calls = mayCall ? this.callsIn(text) : null;
    if (calls?.isInPrepare === true) {
      throw PgError.featureNotSupported(
        'pgdog.unique_id() inside PREPARE sent with the extended protocol is not supported',
        'Send PREPARE and EXECUTE as simple Queries (each EXECUTE gets new ids), or use a protocol-level prepared statement.',
      );
    }
    if (calls === null) {
      // A text rewritten earlier (a batch's statements run one by one, each parsed again) is still that statement.
      const again = this.produced.get(text);
      if (again !== undefined) this.remember(name, again);
      else this.forget(name);
      return null;
    }
    const declared = frame.length >= textEnd + 3 ? frame.readInt16BE(textEnd + 1) : 0;
    const base = Math.max(calls.maxParam, declared);
    const sql = replaceUniqueIdSites(text, calls.sites, (j, site) => {
      const param = `$${base + j + 1}::bigint`;
      return site.isShow ? `SELECT ${param} AS unique_id` : `(${param})`;
    });
    const statement: IdStatement = { text: sql, base, count: calls.sites.length };
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

  /** A simple Query's replacement of one site: a new id as a bigint literal. */
  private literal(site: UniqueIdSite): string {
    const value = `${this.support.generator.next()}::bigint`;
    return site.isShow ? `SELECT ${value} AS unique_id` : `(${value})`;
  }

  private remember(name: string, statement: IdStatement): void {
    if (name === '') this.unnamed = statement;
    else this.named.set(name, statement);
  }

  private forget(name: string): void {
    if (name === '') this.unnamed = null;
    else this.named.delete(name);
  }
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
