// pgdog.unique_id() in a sharded session's requests: where the parser finds calls (and where it leaves them), how a
// simple Query, a Parse and each Bind are rewritten (literals; parameters after the client's with ids appended to every
// Bind), that a request rewritten once is left alone when it is routed again, that routing then sends an INSERT to
// the shard of its id, SQL PREPARE / EXECUTE sent in a Parse, and a Describe of a statement given ids answered with the
// client's parameters only. A fake clock makes the ids known in advance.
import { beforeAll, describe, expect, it } from 'vitest';
import { SessionRouter } from '../../../src/frontend/session-router.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { query, SYNC } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import { decodeBind, parseParamTypes } from '../../../src/protocol/bind.js';
import {
  findUniqueIdCalls,
  mayMentionUniqueId,
  type UniqueIdCalls,
} from '../../../src/router/unique-id-calls.js';
import { shardForLiteral } from '../../../src/sharding/shard-of.js';
import { UNIQUE_ID_EPOCH_MS, UniqueIdGenerator } from '../../../src/sharding/unique-id.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { ResponseScanner } from '../../../src/backend/response-scanner.js';
import { noteDescribeSent } from '../../../src/frontend/describe-trims.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

const MS = UNIQUE_ID_EPOCH_MS + 1_000;
/** The n-th id (0-based) of a fresh router's generator: node 3, all in one millisecond. */
const idAt = (n: number): bigint => (1000n << 22n) | (3n << 12n) | BigInt(n);

function router(): SessionRouter {
  return new SessionRouter({
    schema: SCHEMA,
    plans: new PlanCache(),
    nextReadShard: () => 0,
    textCollation: null,
    uniqueIds: {
      generator: new UniqueIdGenerator({ fn: 'standard', nodeId: 3, minId: 0n, now: () => MS }),
      calls: new PlanCache<UniqueIdCalls | null>(),
    },
  });
}

function parse(name: string, sql: string, types: number[] = []): Buffer {
  const w = new MessageWriter().cstring(name).cstring(sql).int16(types.length);
  for (const t of types) w.int32(t);
  return w.frame(Frontend.Parse);
}

function bind(statement: string, params: (string | null)[], formats: number[] = []): Buffer {
  const w = new MessageWriter().cstring('p1').cstring(statement).int16(formats.length);
  for (const f of formats) w.int16(f);
  w.int16(params.length);
  for (const p of params) {
    if (p === null) w.int32(-1);
    else w.int32(Buffer.byteLength(p)).bytes(Buffer.from(p));
  }
  return w.int16(1).int16(1).frame(Frontend.Bind); // one result format: binary
}

function closeStatement(name: string): Buffer {
  return new MessageWriter().int8(0x53).cstring(name).frame(Frontend.Close);
}

const EXECUTE = new MessageWriter().cstring('p1').int32(0).frame(Frontend.Execute);

function rewrite(r: SessionRouter, frames: Buffer[]): Buffer[] | null {
  return (
    r.withUniqueIds(
      frames.map((f) => f[0]),
      frames,
    )?.frames ?? null
  );
}

function sqlOf(frame: Buffer): string {
  if (frame[0] === Frontend.Query) return frame.toString('utf8', 5, frame.length - 1);
  const nameEnd = frame.indexOf(0, 5);
  return frame.toString('utf8', nameEnd + 1, frame.indexOf(0, nameEnd + 1));
}

function bindValues(frame: Buffer): (string | null)[] {
  return decodeBind(frame).values.map((v) => (v === null ? null : v.toString()));
}

describe('where calls are found', () => {
  const sites = (sql: string): string[] =>
    (findUniqueIdCalls(sql)?.sites ?? []).map((s) => sql.slice(s.start, s.end));

  it('calls without arguments in expressions: any spelling PostgreSQL reads as pgdog.unique_id', () => {
    expect(sites('select PGDOG . Unique_Id ( ), "pgdog"."unique_id"() AS x')).toEqual([
      'PGDOG . Unique_Id ( )',
      '"pgdog"."unique_id"()',
    ]);
    expect(
      sites('UPDATE users SET ref = pgdog.unique_id() WHERE id = 1 RETURNING pgdog.unique_id()'),
    ).toHaveLength(2);
    expect(sites('EXPLAIN INSERT INTO t SELECT pgdog.unique_id() FROM s')).toHaveLength(1);
    expect(sites("SELECT 'é', pgdog.unique_id()")).toEqual(['pgdog.unique_id()']); // a multibyte character before it
  });

  it('not in DDL, not as a FROM function, not with arguments or OVER, not another schema’s function', () => {
    expect(findUniqueIdCalls('CREATE TABLE t (id bigint DEFAULT pgdog.unique_id())')).toBeNull();
    expect(findUniqueIdCalls('CREATE VIEW v AS SELECT pgdog.unique_id()')).toBeNull();
    expect(sites('SELECT * FROM pgdog.unique_id(), generate_series(1, pgdog.unique_id())')).toEqual([
      'pgdog.unique_id()',
    ]);
    expect(findUniqueIdCalls('SELECT pgdog.unique_id(1), max(pgdog.unique_id) OVER ()')).toBeNull();
    expect(findUniqueIdCalls('SELECT "PGDOG".unique_id(), other.unique_id(), unique_id()')).toBeNull();
    expect(findUniqueIdCalls("SELECT 'pgdog.unique_id()'")).toBeNull(); // a string
  });

  it('the byte test before any decoding: unique_id in any case, nothing for other _id names', () => {
    const bytes = (sql: string): boolean => mayMentionUniqueId(query(sql), 5, query(sql).length - 1);
    expect(bytes('SELECT PGDOG.UNIQUE_ID()')).toBe(true);
    expect(bytes('select pgdog."Unique_Id"()')).toBe(true);
    expect(bytes('SELECT user_id, order_id FROM orders WHERE id = 1')).toBe(false);
    expect(bytes('unique_id')).toBe(true);
    expect(bytes('nique_id')).toBe(false);
    expect(bytes('SELECT uNiQuE_iD')).toBe(true); // at the very end of the range
    expect(bytes('SELECT unique_i')).toBe(false);
    expect(bytes('SELECT unique id, unique-id, UNIQUE__ID, _id, unique_')).toBe(false);
    // Only the range given is looked at.
    const frame = query('unique_id');
    expect(mayMentionUniqueId(frame, 5, frame.length - 2)).toBe(false);
    expect(mayMentionUniqueId(frame, 6, frame.length - 1)).toBe(false);
  });

  it('a session that has met no call: a Parse without one is left as it is (a name that says unique_id too); one with a call is rewritten', () => {
    const r = router();
    const plain = parse('unique_id_stmt', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1');
    expect(rewrite(r, [plain, plain])).toBeNull();
    const out = rewrite(r, [parse('', 'INSERT INTO t (id) VALUES (pgdog.unique_id())')]);
    expect(out?.map(sqlOf)).toEqual(['INSERT INTO t (id) VALUES (($1::bigint))']);
  });

  it('SHOW pgdog.unique_id, PgDog’s own command; the highest $n; a text that does not parse', () => {
    expect(sites('/* c */ SHOW pgdog.unique_id ;')).toEqual(['SHOW pgdog.unique_id']);
    expect(findUniqueIdCalls('SELECT $3, pgdog.unique_id(), $1')?.maxParam).toBe(3);
    expect(findUniqueIdCalls('SELEC pgdog.unique_id()')).toBeNull();
  });
});

describe('simple Query', () => {
  it('each call becomes a new id, in text order, as a bigint literal; the rest of the text is kept', () => {
    const r = router();
    const out = rewrite(r, [
      query('/* shard: 1 */ SELECT pgdog.unique_id(), pgdog.unique_id() AS b; SELECT 1'),
    ]);
    expect(out?.map(sqlOf)).toEqual([
      `/* shard: 1 */ SELECT (${idAt(0)}::bigint), (${idAt(1)}::bigint) AS b; SELECT 1`,
    ]);
    expect(rewrite(r, [query('SELECT pgdog.unique_id()')])?.map(sqlOf)).toEqual([
      `SELECT (${idAt(2)}::bigint)`,
    ]);
  });

  it('SHOW pgdog.unique_id becomes a SELECT of one id named unique_id', () => {
    expect(rewrite(router(), [query('SHOW pgdog.unique_id')])?.map(sqlOf)).toEqual([
      `SELECT ${idAt(0)}::bigint AS unique_id`,
    ]);
  });

  it('requests without calls are not touched', () => {
    const r = router();
    expect(rewrite(r, [query('SELECT unique_id FROM t')])).toBeNull();
    expect(rewrite(r, [parse('', 'SELECT $1'), bind('', ['1']), EXECUTE, SYNC])).toBeNull();
  });

  it('an INSERT whose key is a call goes to the shard of its id', () => {
    const r = router();
    const frames = rewrite(r, [query("INSERT INTO users (id, name) VALUES (pgdog.unique_id(), 'a')")]) ?? [];
    const target = r.route([Frontend.Query], frames);
    expect(target).toMatchObject({
      kind: 'one',
      shard: shardForLiteral(SCHEMA.shardedColumns[0], 2, String(idAt(0))),
    });
  });

  it('in the select list of a query with FROM: refused (every row would get the one id); elsewhere in it, allowed', () => {
    const perRow = (sql: string): boolean | undefined => findUniqueIdCalls(sql)?.isPerRow;
    expect(perRow('INSERT INTO users (id, name) SELECT pgdog.unique_id(), name FROM staging')).toBe(true);
    expect(perRow('SELECT CASE WHEN x THEN pgdog.unique_id() END FROM t')).toBe(true);
    expect(perRow('SELECT * FROM users WHERE id = pgdog.unique_id()')).toBe(false);
    expect(perRow('INSERT INTO users (id) SELECT pgdog.unique_id()')).toBe(false); // one row
    expect(perRow('SELECT (SELECT pgdog.unique_id()) FROM t')).toBe(false); // once, as PostgreSQL's InitPlan
    expect(perRow('SELECT * FROM generate_series(1, pgdog.unique_id())')).toBe(false);
    expect(
      perRow("INSERT INTO users (id, name) VALUES (pgdog.unique_id(), 'a'), (pgdog.unique_id(), 'b')"),
    ).toBe(false);
    const err = (() => {
      try {
        rewrite(router(), [query('SELECT pgdog.unique_id(), name FROM users')]);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).code).toBe('0A000');
    expect((err as PgError).message).toMatch(/every row would get the same id/);
  });

  it('inside PREPARE: the calls become parameters after its own, and each EXECUTE is given new ids', () => {
    const r = router();
    const prepared = rewrite(r, [
      query(
        'PREPARE p (text) AS INSERT INTO users (id, name) VALUES (pgdog.unique_id(), $1) RETURNING pgdog.unique_id()',
      ),
    ]);
    expect(sqlOf((prepared ?? [])[0])).toBe(
      'PREPARE p (text) AS INSERT INTO users (id, name) VALUES (($2::bigint), $1) RETURNING ($3::bigint)',
    );
    expect(sqlOf((rewrite(r, [query("EXECUTE p('ada')")]) ?? [])[0])).toBe(
      `EXECUTE p('ada', ${idAt(0)}::bigint, ${idAt(1)}::bigint)`,
    );
    // Spaces, a comment and a ';' after the arguments; a second EXECUTE gets ids of its own.
    expect(sqlOf((rewrite(r, [query("execute p ( 'bo' ) /* again */ ;")]) ?? [])[0])).toBe(
      `execute p ( 'bo' , ${idAt(2)}::bigint, ${idAt(3)}::bigint) /* again */ ;`,
    );
    // Without arguments, in a Query with other statements; an unrelated EXECUTE is left alone.
    r.withUniqueIds([Frontend.Query], [query('PREPARE q AS SELECT pgdog.unique_id() AS id')]);
    expect(sqlOf((rewrite(r, [query('EXECUTE q; EXECUTE other(1)')]) ?? [])[0])).toBe(
      `EXECUTE q (${idAt(4)}::bigint); EXECUTE other(1)`,
    );
    // DEALLOCATE forgets it; PREPARE again without calls too.
    expect(rewrite(r, [query('DEALLOCATE q')])).toBeNull();
    expect(rewrite(r, [query('EXECUTE q')])).toBeNull();
    expect(rewrite(r, [query('PREPARE p AS SELECT 1')])).toBeNull();
    expect(rewrite(r, [query("EXECUTE p('x')")])).toBeNull();
  });

  it('PREPARE, EXECUTE, DEALLOCATE sent in a Parse: as in a Query; an EXECUTE’s ids are literals, good for one Bind', () => {
    const r = router();
    const prepared = rewrite(r, [
      parse('', 'PREPARE p (text) AS INSERT INTO users (id, name) VALUES (pgdog.unique_id(), $1)'),
    ]);
    expect(sqlOf((prepared ?? [])[0])).toBe(
      'PREPARE p (text) AS INSERT INTO users (id, name) VALUES (($2::bigint), $1)',
    );
    // PostgreSQL takes no Bind parameters in EXECUTE's arguments: the id is written into the text.
    const executed = rewrite(r, [parse('run', "EXECUTE p('ada')"), bind('run', []), EXECUTE, SYNC]) ?? [];
    expect(sqlOf(executed[0])).toBe(`EXECUTE p('ada', ${idAt(0)}::bigint)`);
    expect(bindValues(executed[1])).toEqual([]);
    expect(rewrite(r, executed)).toBeNull(); // routed again: the same Bind, not a second one
    expect(() => rewrite(r, [bind('run', []), EXECUTE, SYNC])).toThrow(/can be bound only once/);
    // Parsed again (unnamed, as drivers do): new ids.
    const again = rewrite(r, [parse('', "EXECUTE p('bo')"), bind('', []), EXECUTE, SYNC]) ?? [];
    expect(sqlOf(again[0])).toBe(`EXECUTE p('bo', ${idAt(1)}::bigint)`);
    // DEALLOCATE in a Parse forgets it.
    expect(rewrite(r, [parse('', 'DEALLOCATE p')])).toBeNull();
    expect(rewrite(r, [parse('', "EXECUTE p('x')")])).toBeNull();
    rewrite(r, [parse('', 'PREPARE q AS SELECT pgdog.unique_id()')]);
    expect(rewrite(r, [parse('', 'DISCARD ALL')])).toBeNull();
    expect(rewrite(r, [parse('', 'EXECUTE q')])).toBeNull();
  });
});

describe('extended protocol', () => {
  it('a Parse gets the calls as parameters after the client’s; its Bind gets the ids appended in text format', () => {
    const r = router();
    const out =
      rewrite(r, [
        parse(
          'ins',
          'INSERT INTO users (id, name) VALUES (pgdog.unique_id(), $1) RETURNING pgdog.unique_id()',
          [25],
        ),
        bind('ins', ['ada'], [1]),
        EXECUTE,
        SYNC,
      ]) ?? [];
    expect(sqlOf(out[0])).toBe(
      'INSERT INTO users (id, name) VALUES (($2::bigint), $1) RETURNING ($3::bigint)',
    );
    expect(out[0].toString('utf8', 5, 9)).toBe('ins\0'); // the client's statement name
    expect(parseParamTypes(out[0])).toEqual([25]); // its declared types, as sent
    const b = decodeBind(out[1]);
    expect(bindValues(out[1])).toEqual(['ada', String(idAt(0)), String(idAt(1))]);
    expect(b.formats).toEqual([1, 0, 0]); // the client's binary parameter stays binary; ids are text
    expect(b.portal).toBe('p1');
    expect([...b.resultFormats]).toEqual([0, 1, 0, 1]);
    expect(out[2]).toBe(EXECUTE);
  });

  it('a named statement executed three times: each Bind (no Parse) gets new ids, and routes by them', () => {
    const r = router();
    const first = rewrite(r, [
      parse('s', 'INSERT INTO users (id) VALUES (pgdog.unique_id())'),
      bind('s', []),
      EXECUTE,
      SYNC,
    ]);
    expect(first).not.toBeNull();
    r.route(
      (first ?? []).map((f) => f[0]),
      first ?? [],
    );
    const ids = [String(idAt(0))];
    for (let n = 1; n <= 2; n++) {
      const out = rewrite(r, [bind('s', []), EXECUTE, SYNC]) ?? [];
      expect(bindValues(out[0])).toEqual([String(idAt(n))]);
      ids.push(String(idAt(n)));
      const target = r.route(
        out.map((f) => f[0]),
        out,
      );
      expect(target).toMatchObject({
        kind: 'one',
        shard: shardForLiteral(SCHEMA.shardedColumns[0], 2, ids[n]),
      });
    }
    expect(bindValues((first ?? [])[1])).toEqual([ids[0]]);
  });

  it('a request routed again after a lookup is left as it is (no second set of ids)', () => {
    const r = router();
    const once = rewrite(r, [parse('', 'SELECT pgdog.unique_id()'), bind('', []), EXECUTE, SYNC]) ?? [];
    expect(rewrite(r, once)).toBeNull();
    // A later Bind of the unnamed statement still gets its id.
    expect(bindValues((rewrite(r, [bind('', []), EXECUTE, SYNC]) ?? [])[0])).toEqual([String(idAt(1))]);
  });

  it('declared parameter types beyond the text’s $n come before the ids; SHOW as a Parse', () => {
    const r = router();
    const out = rewrite(r, [parse('', 'SELECT $1, pgdog.unique_id()', [23, 23]), bind('', ['1', '2'])]) ?? [];
    expect(sqlOf(out[0])).toBe('SELECT $1, ($3::bigint)');
    expect(bindValues(out[1])).toEqual(['1', '2', String(idAt(0))]);
    const show = rewrite(r, [parse('sh', 'SHOW pgdog.unique_id'), bind('sh', [])]) ?? [];
    expect(sqlOf(show[0])).toBe('SELECT $1::bigint AS unique_id');
    expect(bindValues(show[1])).toEqual([String(idAt(1))]);
  });

  it('a batch of two unnamed statements, run one by one afterwards: each piece keeps its ids, and a later Bind gets new ones', () => {
    const r = router();
    const batch =
      rewrite(r, [
        parse('', 'SELECT pgdog.unique_id()'),
        bind('', []),
        EXECUTE,
        parse('', 'SELECT $1::int, pgdog.unique_id()'),
        bind('', ['5']),
        EXECUTE,
        SYNC,
      ]) ?? [];
    expect(
      batch.map((f) => (f[0] === Frontend.Bind ? bindValues(f) : null)).filter((v) => v !== null),
    ).toEqual([[String(idAt(0))], ['5', String(idAt(1))]]);
    // The pieces (as extended-script.ts cuts them) go through again: nothing is added.
    expect(rewrite(r, [...batch.slice(0, 3), SYNC])).toBeNull();
    expect(rewrite(r, [...batch.slice(3, 6), SYNC])).toBeNull();
    // The unnamed statement is the second one: bound again, it gets a new id.
    expect(bindValues((rewrite(r, [bind('', ['6']), EXECUTE, SYNC]) ?? [])[0])).toEqual([
      '6',
      String(idAt(2)),
    ]);
  });

  it('a statement closed, or parsed again without calls, gets no more ids', () => {
    const r = router();
    rewrite(r, [parse('s', 'SELECT pgdog.unique_id()')]);
    expect(rewrite(r, [closeStatement('s'), bind('s', [])])).toBeNull();
    rewrite(r, [parse('t', 'SELECT pgdog.unique_id()')]);
    expect(rewrite(r, [parse('t', 'SELECT 1'), bind('t', [])])).toBeNull();
  });
});

describe('Describe of a statement given ids', () => {
  const describeS = (name: string): Buffer =>
    new MessageWriter().int8(0x53).cstring(name).frame(Frontend.Describe);
  const parameterDescription = (...oids: number[]): Buffer => {
    const w = new MessageWriter().int16(oids.length);
    for (const oid of oids) w.int32(oid);
    return w.frame(0x74);
  };
  /** What a scanner told about `frames` (as the session tells it when it sends them) forwards for `replies`. */
  function forwarded(frames: Buffer[], replies: Buffer): Buffer {
    const out: Buffer[] = [];
    const scanner = new ResponseScanner({
      forward: (b) => out.push(Buffer.from(b)),
      readyForQuery: () => undefined,
      parameterStatus: () => undefined,
      errorSeen: () => undefined,
      fatalSeen: () => undefined,
      protocolError: () => undefined,
    });
    for (const f of frames) {
      if (f[0] === Frontend.Describe) noteDescribeSent(f, scanner);
      if (f[0] === Frontend.Sync) scanner.readyExpected++;
    }
    scanner.scan(replies);
    return Buffer.concat(out);
  }

  it('is answered with the client’s parameters only; other statements’ Describes in the request are untouched', () => {
    const r = router();
    const frames = [
      parse('plain', 'SELECT $1::int, $2::int'),
      parse('ins', 'INSERT INTO users (id, name) VALUES (pgdog.unique_id(), $1)'),
      describeS('plain'),
      describeS('ins'),
      SYNC,
    ];
    const out = rewrite(r, frames) ?? [];
    const ready = new MessageWriter().int8(0x49).frame(0x5a);
    const replies = Buffer.concat([parameterDescription(23, 23), parameterDescription(25, 20), ready]);
    expect(forwarded(out, replies)).toEqual(
      Buffer.concat([parameterDescription(23, 23), parameterDescription(25), ready]),
    );
    // Described again in a later request: still the client's count.
    const later = [describeS('ins'), SYNC];
    expect(rewrite(r, later)).toBeNull();
    expect(forwarded(later, Buffer.concat([parameterDescription(25, 20), ready]))).toEqual(
      Buffer.concat([parameterDescription(25), ready]),
    );
    // A request without such a statement is not marked.
    const other = [parse('', 'SELECT $1::int'), describeS(''), SYNC];
    rewrite(r, other);
    expect(forwarded(other, Buffer.concat([parameterDescription(23), ready]))).toEqual(
      Buffer.concat([parameterDescription(23), ready]),
    );
  });
});
