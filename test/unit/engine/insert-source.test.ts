// InsertSourceRun and the requests of an INSERT … SELECT the proxy evaluates: rows become VALUES literals as they
// arrive, the bound is enforced with 54000, the query's error is the statement's, unused parameters get a type.
import { beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../../../src/protocol/codes.js';
import { MessageWriter } from '../../../src/protocol/writer.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { SqlState } from '../../../src/errors/sqlstate.js';
import { initParser } from '../../../src/router/parser.js';
import { splitInsertSelect, type InsertSelectParts } from '../../../src/router/insert-select.js';
import { InsertSourceRun, paramTypesFor, type InsertSourceOwner } from '../../../src/engine/insert-source.js';
import type { RequestStatement } from '../../../src/frontend/request-rewrite.js';

let parts: InsertSelectParts;

beforeAll(async () => {
  await initParser();
  const split = splitInsertSelect('insert into t (a, b) select a, b from s returning a');
  if (split === null) throw new Error('not split');
  parts = split;
});

const QUERY: RequestStatement = {
  text: '',
  paramTypes: [],
  isQuery: true,
  parseIndex: -1,
  bindIndex: -1,
  paramCount: 0,
};

function rowDescription(typeOids: number[]): Buffer {
  const w = new MessageWriter(64).int16(typeOids.length);
  for (const oid of typeOids) w.cstring('c').int32(0).int16(0).int32(oid).int16(-1).int32(-1).int16(0);
  return w.frame(Backend.RowDescription);
}

function dataRow(values: (string | null)[]): Buffer {
  const w = new MessageWriter(64).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(Buffer.byteLength(v)).bytes(Buffer.from(v));
  }
  return w.frame(Backend.DataRow);
}

function run(maxBytes?: number): { run: InsertSourceRun; done: InsertSourceRun[] } {
  const done: InsertSourceRun[] = [];
  const owner: InsertSourceOwner = { onInsertSourceDone: (r) => done.push(r) };
  const session = {
    onServerParameter: () => undefined,
    rankTexts: () => undefined,
    onServerLost: () => undefined,
  };
  return {
    run: new InsertSourceRun(owner, session, { types: [], frames: [] }, QUERY, parts, maxBytes),
    done,
  };
}

describe('InsertSourceRun', () => {
  it('writes the rows it receives (split anywhere) into the INSERT, typed by the row description', () => {
    const { run: r, done } = run();
    const bytes = Buffer.concat([rowDescription([23, 25]), dataRow(['1', "o'k"]), dataRow([null, 'é'])]);
    r.writeToClient(bytes.subarray(0, 10));
    r.writeToClient(bytes.subarray(10));
    r.onFanoutDone();
    expect(done).toHaveLength(1);
    expect(r.outcome()).toEqual({
      kind: 'insert',
      sql: "insert into t (a, b) VALUES (E'1'::pg_catalog.int4, E'o''k'), (NULL, E'é') returning a",
      rows: 2,
    });
  });

  it('gives the query’s error as the statement’s', () => {
    const { run: r } = run();
    r.writeToClient(rowDescription([23]));
    r.writeToClient(new PgError('ERROR', SqlState.InternalError, 'boom').toBuffer());
    const outcome = r.outcome();
    expect(outcome.kind === 'error' ? outcome.error.code : null).toBe('XX000');
  });

  it('refuses rows past its bound with 54000, drops them and asks for the shards to be cancelled', () => {
    const { run: r } = run(64);
    let cancelled = 0;
    r.onOverflow = () => cancelled++;
    r.writeToClient(rowDescription([25]));
    for (let i = 0; i < 10; i++) r.writeToClient(dataRow(['x'.repeat(20)]));
    const outcome = r.outcome();
    expect(outcome.kind === 'error' ? outcome.error.code : null).toBe('54000');
    expect(cancelled).toBe(1);
  });
});

describe('paramTypesFor', () => {
  it('keeps the types of used and declared parameters, and types unused ones by their format', () => {
    const statement: RequestStatement = {
      ...QUERY,
      isQuery: false,
      paramTypes: [0, 0, 0, 20],
      paramCount: 4,
    };
    expect(paramTypesFor(statement, new Set([1]), [0, 0, 1, 0])).toEqual([0, 25, 17, 20]);
  });
});
