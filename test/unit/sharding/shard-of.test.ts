// shard-of: keys as they arrive (SQL literal, text or binary Bind parameter, NULL) → shard, and every bad key
// refused with PostgreSQL's SQLSTATE and a message naming the column and its type.
import { describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import { hashShard } from '../../../src/sharding/hash.js';
import { plainDecimal } from '../../../src/sharding/key-value.js';
import type { ShardedColumn, ShardFunction, ShardKeyType } from '../../../src/sharding/schema.js';
import {
  shardForBindValue,
  shardForKey,
  shardForLiteral,
  shardForNull,
  shardForParameter,
} from '../../../src/sharding/shard-of.js';

function column(keyType: ShardKeyType, fn: ShardFunction = { kind: 'hash' }): ShardedColumn {
  return { database: 'prod', schema: null, table: 'orders', column: 'customer_id', keyType, fn };
}

/** The PgError `run` throws. */
function pgError(run: () => unknown): PgError {
  try {
    run();
  } catch (error) {
    if (error instanceof PgError) return error;
    throw error;
  }
  throw new Error('expected a PgError');
}

function int8(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigInt64BE(value);
  return buffer;
}

const UUID = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
const UUID_BYTES = Buffer.from(UUID.replace(/-/g, ''), 'hex');

describe('hash sharding from literals and parameters', () => {
  const bigint = column('bigint');

  it('reads integer literals as PostgreSQL does (whitespace, sign, 0x/0o/0b, underscores)', () => {
    const expected = hashShard('bigint', 1000n, 5);
    for (const text of [
      '1000',
      ' 1000 ',
      '+1000',
      '1_000',
      '0x3e8',
      '0X3E8',
      '0o1750',
      '0b1111101000',
      '001000',
    ]) {
      expect(shardForLiteral(bigint, 5, text)).toBe(expected);
    }
    expect(shardForLiteral(bigint, 5, '-42')).toBe(hashShard('bigint', -42n, 5));
    expect(shardForLiteral(bigint, 5, '-9223372036854775808')).toBe(hashShard('bigint', -(1n << 63n), 5));
  });

  it('reads plain decimals of every length the same, around the 15-digit fast path (key-value.ts)', () => {
    const integer = column('integer');
    for (let digits = 1; digits <= 19; digits++) {
      const value = BigInt('9'.repeat(digits)) % (1n << 63n);
      for (const v of [value, -value]) {
        expect(shardForLiteral(bigint, 7, String(v))).toBe(hashShard('bigint', v, 7));
        expect(shardForParameter(bigint, 7, Buffer.from(String(v)), 0)).toBe(hashShard('bigint', v, 7));
      }
    }
    expect(shardForLiteral(bigint, 7, '-0')).toBe(hashShard('bigint', 0n, 7));
    expect(shardForLiteral(integer, 7, '2147483647')).toBe(hashShard('integer', 2147483647n, 7));
    expect(shardForLiteral(integer, 7, '-2147483648')).toBe(hashShard('integer', -2147483648n, 7));
    expect(pgError(() => shardForLiteral(integer, 7, '999999999999999')).code).toBe('22003');
    expect(pgError(() => shardForLiteral(bigint, 7, '12a')).code).toBe('22P02');
  });

  it("reads a plain decimal the same from a literal's text and from a Bind value's bytes in place (key-value.ts)", () => {
    const cases: [string, number | null][] = [
      ['0', 0],
      ['-0', -0],
      ['42', 42],
      ['-42', -42],
      ['000000000000042', 42],
      ['999999999999999', 999999999999999],
      ['-999999999999999', -999999999999999],
      ['9999999999999999', null], // 16 digits: the general path
      ['', null],
      ['-', null],
      ['+42', null],
      [' 42', null],
      ['4_2', null],
      ['4a', null],
      ['4.0', null],
    ];
    for (const [text, value] of cases) {
      expect(plainDecimal(text), text).toBe(value);
      expect(plainDecimal(Buffer.from(text)), text).toBe(value);
      // In place: the value between other bytes of a frame, as protocol/bind.ts locates it.
      const frame = Buffer.concat([Buffer.from('9-x'), Buffer.from(text), Buffer.from('7')]);
      expect(plainDecimal(frame, 3, 3 + text.length), text).toBe(value);
      expect(plainDecimal(`9-x${text}7`, 3, 3 + text.length), text).toBe(value);
    }
    // The Bind value read in place hashes as the same key sent alone.
    const frame = Buffer.from('xx12345yy');
    expect(shardForBindValue(bigint, 7, frame, 2, 7, 0)).toBe(hashShard('bigint', 12345n, 7));
  });

  it('places plain decimals without a BigInt exactly where the general path does (shard-of.ts fast path)', () => {
    const integer = column('integer');
    const general = (c: ShardedColumn, v: bigint, n: number): number => shardForKey(c, n, v);
    const plain = [
      '0',
      '-0',
      '1',
      '-1',
      '42',
      '-42',
      '2147483647',
      '-2147483648',
      '4294967295',
      '4294967296',
    ];
    plain.push('999999999999999', '-999999999999999', '000000000000042', '9007199254740991');
    for (const text of plain) {
      for (const n of [2, 3, 16]) {
        const v = BigInt(text);
        expect(shardForLiteral(bigint, n, text), text).toBe(general(bigint, v, n));
        expect(shardForParameter(bigint, n, Buffer.from(text), 0), text).toBe(general(bigint, v, n));
        if (v >= -(1n << 31n) && v < 1n << 31n) {
          expect(shardForLiteral(integer, n, text), text).toBe(general(integer, v, n));
          expect(shardForParameter(integer, n, Buffer.from(text), 0), text).toBe(general(integer, v, n));
        }
      }
    }
    // Not plain: the general path reads them as PostgreSQL does (leading '+', white space, 16+ digits).
    for (const [text, v] of [
      ['+42', 42n],
      [' 42', 42n],
      ['42\n', 42n],
      ['\t-42 ', -42n],
      ['9223372036854775807', (1n << 63n) - 1n],
      ['-9223372036854775808', -(1n << 63n)],
      ['0000000000000000042', 42n],
    ] as const) {
      expect(shardForLiteral(bigint, 5, text), text).toBe(general(bigint, v, 5));
      expect(shardForParameter(bigint, 5, Buffer.from(text), 0), text).toBe(general(bigint, v, 5));
    }
    // Out of int4 range for an integer key: 22003 as before, from literals and parameters alike.
    for (const text of ['2147483648', '-2147483649', '4294967296']) {
      expect(pgError(() => shardForLiteral(integer, 2, text)).code).toBe('22003');
      expect(pgError(() => shardForParameter(integer, 2, Buffer.from(text), 0)).code).toBe('22003');
    }
    // Invalid text is still 22P02.
    for (const text of ['', '-', '4-2', '42a', '--1', '1.5', ' ', '٤٢']) {
      expect(pgError(() => shardForLiteral(bigint, 2, text)).code, JSON.stringify(text)).toBe('22P02');
      expect(pgError(() => shardForParameter(integer, 2, Buffer.from(text), 0)).code).toBe('22P02');
    }
    // A list mapping reads the same plain keys through the general path.
    const listed = column('bigint', {
      kind: 'list',
      entries: [{ values: ['42'], shard: 1 }],
      defaultShard: 0,
    });
    expect(shardForParameter(listed, 2, Buffer.from('42'), 0)).toBe(1);
  });

  it('gives a text parameter, a binary int8/int4/int2 parameter and a literal the same shard', () => {
    const expected = hashShard('bigint', 123n, 3);
    expect(shardForParameter(bigint, 3, Buffer.from('123'), 0)).toBe(expected);
    expect(shardForParameter(bigint, 3, int8(123n), 1)).toBe(expected);
    expect(shardForParameter(bigint, 3, Buffer.from([0, 0, 0, 123]), 1)).toBe(expected);
    expect(shardForParameter(bigint, 3, Buffer.from([0, 123]), 1)).toBe(expected);
    expect(shardForParameter(column('integer'), 3, Buffer.from([0xff, 0xff, 0xff, 0xff]), 1)).toBe(
      hashShard('integer', -1n, 3),
    );
  });

  it('hashes text keys byte for byte, from literals and parameters in either format', () => {
    const text = column('text');
    const expected = hashShard('text', 'Zürich 数据', 7);
    expect(shardForLiteral(text, 7, 'Zürich 数据')).toBe(expected);
    expect(shardForParameter(text, 7, Buffer.from('Zürich 数据'), 0)).toBe(expected);
    expect(shardForParameter(text, 7, Buffer.from('Zürich 数据'), 1)).toBe(expected);
    expect(shardForLiteral(text, 7, '')).toBe(hashShard('text', '', 7));
    expect(shardForLiteral(text, 7, ' x ')).toBe(hashShard('text', ' x ', 7));
  });

  it('accepts every uuid spelling uuid_in accepts', () => {
    const uuid = column('uuid');
    const expected = hashShard('uuid', UUID, 5);
    for (const text of [
      UUID,
      UUID.toUpperCase(),
      UUID.replace(/-/g, ''),
      `{${UUID}}`,
      'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
      '{a0eebc999c0b4ef8bb6d6bb9bd380a11}',
    ]) {
      expect(shardForLiteral(uuid, 5, text)).toBe(expected);
    }
    expect(shardForParameter(uuid, 5, UUID_BYTES, 1)).toBe(expected);
    expect(shardForParameter(uuid, 5, Buffer.from(UUID), 0)).toBe(expected);
  });

  it('puts NULL on shard 0, as PostgreSQL hash partitioning does', () => {
    expect(shardForNull(bigint, 4)).toBe(0);
    expect(shardForParameter(bigint, 4, null, 0)).toBe(0);
  });
});

describe('bad keys are PgErrors naming the column and type', () => {
  const cases: [string, ShardKeyType, string, string][] = [
    ['letters for bigint', 'bigint', 'abc', '22P02'],
    ['a fraction', 'bigint', '3.5', '22P02'],
    ['an exponent', 'bigint', '1e3', '22P02'],
    ['an empty string', 'bigint', '', '22P02'],
    ['a lone sign', 'bigint', '-', '22P02'],
    ['two signs', 'bigint', '--1', '22P02'],
    ['a leading underscore', 'bigint', '_1', '22P02'],
    ['a trailing underscore', 'bigint', '1_', '22P02'],
    ['a double underscore', 'bigint', '1__0', '22P02'],
    ['inner spaces', 'bigint', '1 0', '22P02'],
    ['a bare hex prefix', 'bigint', '0x', '22P02'],
    ['bad octal digits', 'bigint', '0o8', '22P02'],
    ['int8 overflow', 'bigint', '9223372036854775808', '22003'],
    ['int8 underflow', 'bigint', '-9223372036854775809', '22003'],
    ['hex overflow', 'bigint', '0x8000000000000000', '22003'],
    ['int4 overflow', 'integer', '2147483648', '22003'],
    ['int4 underflow', 'integer', '-2147483649', '22003'],
    ['a short uuid', 'uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', '22P02'],
    ['a long uuid', 'uuid', `${UUID}0`, '22P02'],
    ['a uuid with a misplaced hyphen', 'uuid', 'a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11', '22P02'],
    ['a uuid with two hyphens in a row', 'uuid', 'a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11', '22P02'],
    ['a uuid with a trailing hyphen', 'uuid', `${UUID.replace(/-/g, '')}-`, '22P02'],
    ['a uuid with an unclosed brace', 'uuid', `{${UUID}`, '22P02'],
    ['a uuid with spaces', 'uuid', ` ${UUID}`, '22P02'],
    ['a uuid with a non-hex digit', 'uuid', 'g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '22P02'],
  ];

  it.each(cases)('%s', (_name, keyType, text, code) => {
    const error = pgError(() => shardForLiteral(column(keyType), 2, text));
    expect(error.code).toBe(code);
    expect(error.severity).toBe('ERROR');
    expect(error.message).toContain('orders.customer_id');
    expect(error.message).toContain(keyType);
    // A text-format parameter fails the same way.
    expect(pgError(() => shardForParameter(column(keyType), 2, Buffer.from(text), 0)).code).toBe(code);
  });

  it('a binary integer of the wrong length', () => {
    const error = pgError(() => shardForParameter(column('bigint'), 2, Buffer.alloc(3), 1));
    expect(error.code).toBe('22P03');
    expect(error.message).toContain('orders.customer_id');
  });

  it('a binary int8 that does not fit an integer column', () => {
    const error = pgError(() => shardForParameter(column('integer'), 2, int8(1n << 40n), 1));
    expect(error.code).toBe('22003');
    expect(error.message).toMatch(/out of range for type integer/);
  });

  it('a binary uuid that is not 16 bytes', () => {
    expect(pgError(() => shardForParameter(column('uuid'), 2, Buffer.from(UUID), 1)).code).toBe('22P03');
  });

  it('names the schema, or the bare column for column-only config', () => {
    const qualified = { ...column('bigint'), schema: 'sales' };
    expect(pgError(() => shardForLiteral(qualified, 2, 'x')).message).toContain('sales.orders.customer_id');
    const anyTable = { ...column('bigint'), table: null };
    expect(pgError(() => shardForLiteral(anyTable, 2, 'x')).message).toContain('column customer_id');
  });

  it('cuts very long values in the message', () => {
    const error = pgError(() => shardForLiteral(column('bigint'), 2, 'x'.repeat(10_000)));
    expect(error.message.length).toBeLessThan(200);
  });
});

describe('list and range mappings', () => {
  const list = column('bigint', {
    kind: 'list',
    entries: [
      { values: ['1', '2', '3'], shard: 0 },
      { values: ['4', '-5', '9223372036854775807'], shard: 1 },
    ],
    defaultShard: null,
  });

  it('list: the entry holding the key, compared numerically', () => {
    expect(shardForLiteral(list, 2, '2')).toBe(0);
    expect(shardForLiteral(list, 2, '+4')).toBe(1);
    expect(shardForLiteral(list, 2, '0x4')).toBe(1);
    expect(shardForLiteral(list, 2, '-5')).toBe(1);
    expect(shardForParameter(list, 2, int8(3n), 1)).toBe(0);
    expect(shardForLiteral(list, 2, '9223372036854775807')).toBe(1);
  });

  it('list: a key no entry holds is 23514, as PostgreSQL for a row no partition accepts', () => {
    const error = pgError(() => shardForLiteral(list, 2, '7'));
    expect(error.code).toBe('23514');
    expect(error.message).toContain('orders.customer_id');
    expect(error.message).toContain('7');
    expect(pgError(() => shardForNull(list, 2)).code).toBe('23514');
  });

  it('list: the default mapping takes the rest, NULL included', () => {
    const withDefault = { ...list, fn: { ...list.fn, defaultShard: 1 } as ShardFunction };
    expect(shardForLiteral(withDefault, 2, '7')).toBe(1);
    expect(shardForNull(withDefault, 2)).toBe(1);
  });

  it('list: uuids compare canonically, text exactly', () => {
    const uuid = column('uuid', { kind: 'list', entries: [{ values: [UUID], shard: 1 }], defaultShard: 0 });
    expect(shardForLiteral(uuid, 2, UUID.toUpperCase())).toBe(1);
    expect(shardForParameter(uuid, 2, UUID_BYTES, 1)).toBe(1);
    expect(shardForLiteral(uuid, 2, '00000000-0000-0000-0000-000000000000')).toBe(0);
    const text = column('text', {
      kind: 'list',
      entries: [{ values: ['EU', 'Zürich'], shard: 1 }],
      defaultShard: 0,
    });
    expect(shardForLiteral(text, 2, 'EU')).toBe(1);
    expect(shardForParameter(text, 2, Buffer.from('Zürich'), 0)).toBe(1);
    expect(shardForLiteral(text, 2, 'eu')).toBe(0);
    expect(shardForLiteral(text, 2, 'EU ')).toBe(0);
  });

  const range = column('bigint', {
    kind: 'range',
    entries: [
      { start: null, end: '0', shard: 0 },
      { start: '0', end: '100', shard: 1 },
      { start: '100', end: '1000', shard: 2 },
      { start: '5000', end: null, shard: 3 },
    ],
    defaultShard: null,
  });

  it('range: start inclusive, end exclusive, null unbounded, compared as integers', () => {
    expect(shardForLiteral(range, 4, '-9223372036854775808')).toBe(0);
    expect(shardForLiteral(range, 4, '-1')).toBe(0);
    expect(shardForLiteral(range, 4, '0')).toBe(1);
    expect(shardForLiteral(range, 4, '99')).toBe(1);
    expect(shardForLiteral(range, 4, '100')).toBe(2);
    expect(shardForLiteral(range, 4, '999')).toBe(2);
    expect(shardForLiteral(range, 4, '5000')).toBe(3);
    expect(shardForLiteral(range, 4, '9223372036854775807')).toBe(3);
  });

  it('range: a key in a gap is 23514', () => {
    expect(pgError(() => shardForLiteral(range, 4, '1000')).code).toBe('23514');
    expect(pgError(() => shardForLiteral(range, 4, '4999')).code).toBe('23514');
  });

  it('range: text compares in byte order (C collation)', () => {
    const text = column('text', {
      kind: 'range',
      entries: [
        { start: null, end: 'M', shard: 0 },
        { start: 'M', end: null, shard: 1 },
      ],
      defaultShard: null,
    });
    expect(shardForLiteral(text, 2, 'Alice')).toBe(0);
    expect(shardForLiteral(text, 2, 'Mallory')).toBe(1);
    expect(shardForLiteral(text, 2, 'alice')).toBe(1); // 'a' (0x61) sorts after 'M' (0x4d)
    expect(shardForLiteral(text, 2, 'Émile')).toBe(1); // UTF-8 0xc3 sorts after ASCII
  });

  it('range: uuids compare by bytes', () => {
    const uuid = column('uuid', {
      kind: 'range',
      entries: [{ start: null, end: '80000000-0000-0000-0000-000000000000', shard: 0 }],
      defaultShard: 1,
    });
    expect(shardForLiteral(uuid, 2, '7fffffff-ffff-ffff-ffff-ffffffffffff')).toBe(0);
    expect(shardForLiteral(uuid, 2, '80000000-0000-0000-0000-000000000000')).toBe(1);
  });

  it('shardForKey takes parsed keys directly', () => {
    expect(shardForKey(range, 4, 50n)).toBe(1);
  });
});
