// SQL-level cursors (frontend/sql-cursors.ts), without sockets: DECLARE runs on the one shard its query reads and is
// remembered there; FETCH / MOVE / CLOSE follow it; a cursor over several shards is refused (0A000); an unknown
// cursor goes to any shard (which answers 34000); CLOSE ALL runs on every shard and forgets them all.
import { beforeAll, describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import { SqlCursors } from '../../../src/frontend/sql-cursors.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { routeStatement, type RouteContext } from '../../../src/router/route.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

const plan = (sql: string) => analyzeQuery(sql, SCHEMA)[0];
/** Round-robin reads go to shard 1 here, so an unknown cursor is told apart from one remembered on shard 0. */
const context: RouteContext = {
  schema: SCHEMA,
  sessionShard: null,
  sessionShardingKey: null,
  pickReadShard: () => 1,
};

/** The shard the users row with id `id` lives on, as routing places it. */
function shardOf(id: number): number {
  const route = routeStatement(plan(`SELECT * FROM users WHERE id = ${id}`), null, context);
  if (route.kind !== 'one') throw new Error('not one shard');
  return route.shard;
}

describe('SqlCursors', () => {
  it('DECLARE on the shard its query reads; FETCH, MOVE and CLOSE follow it; after CLOSE it is unknown', () => {
    const id = [1, 2, 3, 4, 5].find((n) => shardOf(n) === 0) as number;
    const cursors = new SqlCursors();
    const declared = cursors.route(
      plan(`DECLARE c CURSOR FOR SELECT * FROM users WHERE id = ${id}`),
      null,
      context,
      2,
    );
    expect(declared).toEqual({ kind: 'one', shard: 0 });
    for (const sql of ['FETCH 2 FROM c', 'MOVE 1 IN c', 'CLOSE c'])
      expect(cursors.route(plan(sql), null, context, 2), sql).toEqual({ kind: 'one', shard: 0 });
    expect(cursors.route(plan('FETCH 1 FROM c'), null, context, 2)).toEqual({ kind: 'one', shard: 1 });
  });

  it('refuses a cursor whose query reads several shards, and remembers nothing for it', () => {
    const cursors = new SqlCursors();
    let error: unknown = null;
    try {
      cursors.route(plan('DECLARE wide CURSOR FOR SELECT * FROM users ORDER BY id'), null, context, 2);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PgError);
    expect((error as PgError).code).toBe('0A000');
    expect(cursors.route(plan('FETCH 1 FROM wide'), null, context, 2)).toEqual({ kind: 'one', shard: 1 });
  });

  it('CLOSE ALL runs on every shard, reported once, and forgets every cursor', () => {
    const id = [1, 2, 3, 4, 5].find((n) => shardOf(n) === 0) as number;
    const cursors = new SqlCursors();
    cursors.route(plan(`DECLARE c CURSOR FOR SELECT * FROM users WHERE id = ${id}`), null, context, 2);
    expect(cursors.route(plan('CLOSE ALL'), null, context, 2)).toEqual({
      kind: 'many',
      shards: [0, 1],
      isReplicated: true,
    });
    expect(cursors.route(plan('FETCH 1 FROM c'), null, context, 2)).toEqual({ kind: 'one', shard: 1 });
  });
});
