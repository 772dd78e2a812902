// The sharding sections of pgdog.toml: typed reading, defaults, warnings, and a ConfigError naming the key
// for every mistake.
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatConfigWarning } from '../../../src/config/config-error.js';
import { formatEffectiveConfig } from '../../../src/config/format.js';
import { parse, parseError } from './helpers.js';

/** Database "prod" with two shards, plus `sections`. */
function twoShards(sections: string): string {
  return `[admin]
password = "secret-admin"

[[databases]]
name = "prod"
host = "127.0.0.1"
shard = 0

[[databases]]
name = "prod"
host = "127.0.0.1"
port = 5433
shard = 1

${sections}`;
}

const ORDERS = `[[sharded_tables]]
database = "prod"
name = "orders"
column = "customer_id"
`;

function expectError(sections: string, key: string | null, fragment: string | RegExp): ConfigError {
  const error = parseError(twoShards(sections));
  expect(error.file).toBe('pgdog.toml');
  expect(error.key).toBe(key);
  expect(error.message).toMatch(fragment);
  expect(error.message).not.toContain('\n');
  return error;
}

describe('[[sharded_tables]]', () => {
  it('reads every key, with PgDog defaults (data_type = "bigint", primary = false, hash sharding)', () => {
    const { config, warnings } = parse(
      twoShards(`${ORDERS}
[[sharded_tables]]
database = "prod"
schema = "sales"
name = "invoices"
column = "account"
data_type = "varchar"
primary = true
hasher = "postgres"

[[sharded_tables]]
database = "prod"
column = "tenant_id"
data_type = "uuid"
`),
    );
    expect(warnings).toEqual([]);
    expect(config.shardedTables).toEqual([
      {
        database: 'prod',
        name: 'orders',
        schema: null,
        column: 'customer_id',
        dataType: 'bigint',
        isPrimary: false,
        mappings: [],
      },
      {
        database: 'prod',
        name: 'invoices',
        schema: 'sales',
        column: 'account',
        dataType: 'varchar',
        isPrimary: true,
        mappings: [],
      },
      {
        database: 'prod',
        name: null,
        schema: null,
        column: 'tenant_id',
        dataType: 'uuid',
        isPrimary: false,
        mappings: [],
      },
    ]);
  });

  it.each(['bigint', 'integer', 'text', 'varchar', 'uuid'])('accepts data_type = "%s"', (dataType) => {
    const { config } = parse(twoShards(`${ORDERS}data_type = "${dataType}"\n`));
    expect(config.shardedTables[0].dataType).toBe(dataType);
  });

  it('warns about names with upper-case letters (they only match quoted identifiers)', () => {
    const { warnings } = parse(twoShards(ORDERS.replace('"orders"', '"Orders"')));
    expect(warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: sharded_tables[0].name: "Orders" has upper-case letters: it only matches the quoted identifier in SQL (unquoted names are folded to lower case)',
    ]);
  });

  it('warns about PgDog vector-sharding keys and unknown keys', () => {
    const { warnings } = parse(twoShards(`${ORDERS}centroid_probes = 4\ncolunm = "x"\n`));
    expect(warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: sharded_tables[0].centroid_probes: recognized PgDog setting, not supported yet; ignored',
      'pgdog.toml: sharded_tables[0].colunm: unknown key (did you mean "column"?)',
    ]);
  });

  it('refuses a missing database', () => {
    expectError('[[sharded_tables]]\ncolumn = "id"\n', 'sharded_tables[0].database', /missing/);
  });

  it('refuses a database that is not in [[databases]]', () => {
    const error = expectError(
      ORDERS.replace('"prod"', '"prdo"'),
      'sharded_tables[0].database',
      /"prdo" is not defined/,
    );
    expect(error.expected).toContain('"prod"');
  });

  it('refuses a missing or empty column', () => {
    expectError('[[sharded_tables]]\ndatabase = "prod"\n', 'sharded_tables[0].column', /missing/);
    expectError(`${ORDERS.replace('"customer_id"', '""')}`, 'sharded_tables[0].column', /empty/);
  });

  it('refuses a schema-qualified name, pointing to the schema key (as PgDog documents)', () => {
    const error = expectError(
      ORDERS.replace('"orders"', '"public.orders"'),
      'sharded_tables[0].name',
      /includes a schema/,
    );
    expect(error.expected).toContain('schema = "public"');
  });

  it('refuses an unknown data_type, and vector sharding', () => {
    expectError(`${ORDERS}data_type = "float"\n`, 'sharded_tables[0].data_type', /"float" is not allowed/);
    expectError(`${ORDERS}data_type = "vector"\n`, 'sharded_tables[0].data_type', /not supported/);
  });

  it('refuses hasher = "sha1" (it would not place rows where PostgreSQL does)', () => {
    expectError(`${ORDERS}hasher = "sha1"\n`, 'sharded_tables[0].hasher', /not supported/);
  });

  it('refuses a primary that is not a boolean', () => {
    expectError(`${ORDERS}primary = "yes"\n`, 'sharded_tables[0].primary', /got string/);
  });

  it('refuses the same table and column twice', () => {
    expectError(`${ORDERS}\n${ORDERS}`, 'sharded_tables[1]', /already sharded by sharded_tables\[0\]/);
  });

  it('accepts one column in two schemas, or on a named and on any table', () => {
    const sections = `${ORDERS}schema = "a"\n\n${ORDERS}schema = "b"\n\n[[sharded_tables]]\ndatabase = "prod"\ncolumn = "customer_id"\n`;
    expect(parse(twoShards(sections)).config.shardedTables).toHaveLength(3);
  });
});

describe('mappings', () => {
  it('nested [[sharded_tables.mapping]]: values → list, start/end → range, neither → default', () => {
    const { config, warnings } = parse(
      twoShards(`${ORDERS}
[[sharded_tables.mapping]]
values = [1, 2, 3]
shard = 0

[[sharded_tables.mapping]]
shard = 1

[[sharded_tables]]
database = "prod"
name = "events"
column = "day"

[[sharded_tables.mapping]]
end = 100
shard = 0

[[sharded_tables.mapping]]
start = 100
shard = 1
`),
    );
    expect(warnings).toEqual([]);
    expect(config.shardedTables[0].mappings.map(({ kind, values, shard }) => [kind, values, shard])).toEqual([
      ['list', [1n, 2n, 3n], 0],
      ['default', [], 1],
    ]);
    expect(config.shardedTables[1].mappings).toEqual([
      { kind: 'range', values: [], start: null, end: 100n, shard: 0, source: 'sharded_tables[1].mapping[0]' },
      { kind: 'range', values: [], start: 100n, end: null, shard: 1, source: 'sharded_tables[1].mapping[1]' },
    ]);
  });

  it('[[sharded_mappings]] attach to their table (PgDog key names), schema optional', () => {
    const { config, warnings } = parse(
      twoShards(`${ORDERS}schema = "sales"
data_type = "uuid"

[[sharded_mappings]]
database = "prod"
table = "orders"
column = "customer_id"
kind = "list"
values = ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{00000000000000000000000000000001}"]
shard = 1

[[sharded_mappings]]
database = "prod"
table = "orders"
schema = "sales"
column = "customer_id"
kind = "default"
shard = 0
`),
    );
    expect(warnings).toEqual([]);
    expect(config.shardedTables[0].mappings).toEqual([
      {
        kind: 'list',
        values: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000001'],
        start: null,
        end: null,
        shard: 1,
        source: 'sharded_mappings[0]',
      },
      { kind: 'default', values: [], start: null, end: null, shard: 0, source: 'sharded_mappings[1]' },
    ]);
  });

  it('text ranges are ordered by bytes', () => {
    const sections = `${ORDERS}data_type = "text"
[[sharded_tables.mapping]]
end = "M"
shard = 0
[[sharded_tables.mapping]]
start = "M"
shard = 1
`;
    expect(parse(twoShards(sections)).config.shardedTables[0].mappings).toHaveLength(2);
  });

  const nested = (lines: string) => `${ORDERS}\n[[sharded_tables.mapping]]\n${lines}\n`;
  const at = 'sharded_tables[0].mapping[0]';

  it('refuses a shard the database does not have', () => {
    const error = expectError(nested('values = [1]\nshard = 2'), `${at}.shard`, /shard 2 does not exist/);
    expect(error.expected).toContain('0 to 1');
  });

  it('refuses a missing or negative shard', () => {
    expectError(nested('values = [1]'), `${at}.shard`, /missing/);
    expectError(nested('values = [1]\nshard = -1'), `${at}.shard`, /out of range/);
  });

  it.each([
    ['a string for a bigint column', 'bigint', '["1"]', `${at}.values[0]`, /got string "1"/],
    ['a float for a bigint column', 'bigint', '[1.5]', `${at}.values[0]`, /got float 1.5/],
    ['an integer out of integer range', 'integer', '[2147483648]', `${at}.values[0]`, /out of range/],
    ['an integer for a text column', 'text', '["a", 1]', `${at}.values[1]`, /got integer 1/],
    ['a bad uuid', 'uuid', '["not-a-uuid"]', `${at}.values[0]`, /is not a uuid/],
    ['an empty list', 'bigint', '[]', `${at}.values`, /empty/],
  ])('refuses %s', (_name, dataType, values, key, fragment) => {
    expectError(
      `${ORDERS}data_type = "${dataType}"\n[[sharded_tables.mapping]]\nvalues = ${values}\nshard = 0\n`,
      key,
      fragment,
    );
  });

  it('refuses values that are not an array', () => {
    expectError(nested('values = 1\nshard = 0'), `${at}.values`, /got integer 1/);
  });

  it('refuses values together with start/end, or a kind that contradicts the keys', () => {
    expectError(nested('values = [1]\nstart = 0\nshard = 0'), `${at}.values`, /together with start\/end/);
    expectError(
      nested('kind = "list"\nstart = 0\nshard = 0'),
      `${at}.start`,
      /not allowed in a list mapping/,
    );
    expectError(nested('kind = "range"\nshard = 0'), `${at}.start`, /missing/);
    expectError(nested('kind = "default"\nvalues = [1]\nshard = 0'), `${at}.values`, /not allowed/);
    expectError(nested('kind = "hash"\nshard = 0'), `${at}.kind`, /"hash" is not allowed/);
  });

  it('refuses a range whose end is not above its start', () => {
    expectError(nested('start = 10\nend = 10\nshard = 0'), `${at}.end`, /not above start/);
  });

  it('refuses overlapping ranges', () => {
    const sections = `${ORDERS}
[[sharded_tables.mapping]]
start = 0
end = 100
shard = 0

[[sharded_tables.mapping]]
start = 50
shard = 1
`;
    expectError(sections, 'sharded_tables[0].mapping[1]', /\[50, unbounded\) overlaps \[0, 100\)/);
  });

  it('refuses two unbounded-below ranges', () => {
    const sections = `${ORDERS}
[[sharded_tables.mapping]]
end = 0
shard = 0

[[sharded_tables.mapping]]
end = 100
shard = 1
`;
    expectError(sections, 'sharded_tables[0].mapping[1]', /overlaps/);
  });

  it('refuses the same list value twice', () => {
    const sections = `${ORDERS}
[[sharded_tables.mapping]]
values = [1, 2]
shard = 0

[[sharded_mappings]]
database = "prod"
table = "orders"
column = "customer_id"
kind = "list"
values = [3, 2]
shard = 1
`;
    expectError(
      sections,
      'sharded_mappings[0].values[1]',
      /2 is already mapped by sharded_tables\[0\]\.mapping\[0\]/,
    );
  });

  it('refuses list and range mappings on one column, and two defaults', () => {
    expectError(
      `${nested('values = [1]\nshard = 0')}\n[[sharded_tables.mapping]]\nstart = 5\nshard = 1\n`,
      'sharded_tables[0].mapping[1]',
      /range mapping .* already has a list mapping/,
    );
    expectError(
      `${nested('shard = 0')}\n[[sharded_tables.mapping]]\nshard = 1\n`,
      'sharded_tables[0].mapping[1]',
      /second default mapping/,
    );
  });

  it('refuses a [[sharded_mappings]] entry without kind (PgDog requires it)', () => {
    const sections = `${ORDERS}\n[[sharded_mappings]]\ndatabase = "prod"\ntable = "orders"\ncolumn = "customer_id"\nvalues = [1]\nshard = 0\n`;
    expectError(sections, 'sharded_mappings[0].kind', /missing/);
  });

  it('refuses a mapping for a column that is not in [[sharded_tables]]', () => {
    const mapping = (table: string) =>
      `${ORDERS}\n[[sharded_mappings]]\ndatabase = "prod"\n${table}column = "customer_id"\nkind = "default"\nshard = 0\n`;
    expectError(mapping('table = "invoices"\n'), 'sharded_mappings[0]', /no \[\[sharded_tables\]\] entry/);
    // Column-only mappings match column-only tables, not a table's column.
    expectError(mapping(''), 'sharded_mappings[0]', /column "customer_id" of any table/);
    expectError(
      `${ORDERS}schema = "a"\n\n[[sharded_mappings]]\ndatabase = "prod"\ntable = "orders"\nschema = "b"\ncolumn = "customer_id"\nkind = "default"\nshard = 0\n`,
      'sharded_mappings[0]',
      /no \[\[sharded_tables\]\] entry/,
    );
  });

  it('refuses a mapping without schema that matches tables in two schemas', () => {
    const sections = `${ORDERS}schema = "a"\n\n${ORDERS}schema = "b"\n\n[[sharded_mappings]]\ndatabase = "prod"\ntable = "orders"\ncolumn = "customer_id"\nkind = "default"\nshard = 0\n`;
    expectError(sections, 'sharded_mappings[0].schema', /matches 2/);
  });

  it('refuses a mapping for an unknown database', () => {
    const sections = `${ORDERS}\n[[sharded_mappings]]\ndatabase = "other"\ncolumn = "customer_id"\nkind = "default"\nshard = 0\n`;
    expectError(sections, 'sharded_mappings[0].database', /"other" is not defined/);
  });
});

describe('[[omnisharded_tables]]', () => {
  it('reads database and tables; sticky is recognized but not supported yet', () => {
    const { config, warnings } = parse(
      twoShards(
        '[[omnisharded_tables]]\ndatabase = "prod"\ntables = ["countries", "public.settings"]\nsticky = true\n',
      ),
    );
    expect(config.omnishardedTables).toEqual([
      { database: 'prod', tables: ['countries', 'public.settings'] },
    ]);
    expect(warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: omnisharded_tables[0].sticky: recognized PgDog setting, not supported yet; ignored',
    ]);
  });

  it('refuses missing tables, a non-array, an empty name and an unknown database', () => {
    const entry = (lines: string) => `[[omnisharded_tables]]\n${lines}\n`;
    expectError(entry('database = "prod"'), 'omnisharded_tables[0].tables', /missing/);
    expectError(
      entry('database = "prod"\ntables = "countries"'),
      'omnisharded_tables[0].tables',
      /got string/,
    );
    expectError(
      entry('database = "prod"\ntables = ["a", ""]'),
      'omnisharded_tables[0].tables[1]',
      /got string ""/,
    );
    expectError(entry('database = "x"\ntables = []'), 'omnisharded_tables[0].database', /not defined/);
  });

  it('refuses a table that is also sharded', () => {
    const sections = `${ORDERS}schema = "sales"\n[[omnisharded_tables]]\ndatabase = "prod"\ntables = ["countries", "sales.orders"]\n`;
    expectError(sections, 'omnisharded_tables[0].tables[1]', /sharded by sharded_tables\[0\]/);
  });
});

describe('effective configuration', () => {
  it('prints sharding sections as TOML with mappings nested and integers kept exact', () => {
    const { config } = parse(
      twoShards(`${ORDERS}
[[sharded_tables.mapping]]
values = [9_223_372_036_854_775_807]
shard = 1

[[sharded_tables.mapping]]
shard = 0

[[omnisharded_tables]]
database = "prod"
tables = ["countries"]
`),
    );
    const reparsed = parseToml(formatEffectiveConfig(config), { integersAsBigInt: true }) as Record<
      string,
      unknown
    >;
    expect(reparsed.sharded_tables).toEqual([
      {
        database: 'prod',
        name: 'orders',
        column: 'customer_id',
        data_type: 'bigint',
        primary: false,
        mapping: [
          { kind: 'list', values: [9223372036854775807n], shard: 1n },
          { kind: 'default', shard: 0n },
        ],
      },
    ]);
    expect(reparsed.omnisharded_tables).toEqual([{ database: 'prod', tables: ['countries'] }]);
  });
});
