// Reads and checks pgdog.toml `[[databases]]`: one entry per server (name, shard, role), shards
// numbered without gaps, one primary per shard, duplicates warned about.

import type { ConfigWarning } from './config-error.js';
import { ConfigError } from './config-error.js';
import {
  DATABASE_LB_WEIGHT_DEFAULT,
  DATABASE_PORT_DEFAULT,
  DATABASE_ROLE_DEFAULT,
  DATABASE_ROLES,
  DATABASE_SHARD_DEFAULT,
  SUPPORTED_DATABASE_KEYS,
  UNSUPPORTED_DATABASE_KEYS,
} from './defaults.js';
import { hostProblem } from './server-host.js';
import { SectionReader } from './toml-values.js';
import type { DatabaseConfig } from './types.js';

const PORT_RULE = { min: 1, max: 65_535, expected: 'an integer port between 1 and 65535' };
const LB_WEIGHT_RULE = { min: 0, max: 255, expected: 'an integer weight between 0 and 255' };
const HOST_EXPECTED =
  'a PostgreSQL host name or IP address, or the absolute path of the directory holding its Unix-domain socket ' +
  '(e.g. "/var/run/postgresql")';
const SHARD_RULE = { min: 0, max: 65_535, expected: 'an integer shard number between 0 and 65535' };

export function readDatabases(root: SectionReader, warnings: ConfigWarning[]): DatabaseConfig[] {
  const entries = root.tables('databases').map((table, index) => {
    const r = new SectionReader(root.file, `databases[${index}]`, table);
    const database = readDatabase(r);
    warnings.push(...r.warnAboutUnusedKeys(UNSUPPORTED_DATABASE_KEYS, SUPPORTED_DATABASE_KEYS));
    return database;
  });
  if (entries.length === 0) {
    throw root.error(
      'databases',
      'no [[databases]] entry',
      'at least one [[databases]] entry with name and host',
    );
  }
  checkShards(root, entries);
  warnings.push(...findDuplicateDatabases(root.file, entries));
  return entries;
}

function readDatabase(r: SectionReader): DatabaseConfig {
  const name = r.requiredString('name', 'the database name clients connect to (string)');
  const host = r.requiredString('host', HOST_EXPECTED);
  const port = r.integer('port', PORT_RULE) ?? DATABASE_PORT_DEFAULT;
  const problem = hostProblem(host, port);
  if (problem !== null) throw r.error('host', problem, HOST_EXPECTED);
  return {
    name,
    host,
    port,
    databaseName: r.has('database_name')
      ? r.requiredString('database_name', 'a database name (string)')
      : name,
    user: r.optionalString('user'),
    password: r.optionalString('password'),
    shard: r.integer('shard', SHARD_RULE) ?? DATABASE_SHARD_DEFAULT,
    role: r.oneOf('role', DATABASE_ROLES) ?? DATABASE_ROLE_DEFAULT,
    lbWeight: r.integer('lb_weight', LB_WEIGHT_RULE) ?? DATABASE_LB_WEIGHT_DEFAULT,
  };
}

/** Per database name: shards numbered 0..n-1 without gaps, each with exactly one primary. */
function checkShards(root: SectionReader, databases: DatabaseConfig[]): void {
  for (const name of new Set(databases.map((database) => database.name))) {
    const indexes = databases.flatMap((database, index) => (database.name === name ? [index] : []));
    const shardCount = Math.max(...indexes.map((index) => databases[index].shard)) + 1;
    for (let shard = 0; shard < shardCount; shard++) {
      const inShard = indexes.filter((index) => databases[index].shard === shard);
      if (inShard.length === 0) throw shardGapError(root, databases, indexes, name, shard);
      checkOnePrimary(root, databases, inShard, name, shard);
    }
  }
}

function shardGapError(
  root: SectionReader,
  databases: DatabaseConfig[],
  indexes: number[],
  name: string,
  missingShard: number,
): ConfigError {
  const after = indexes.find((index) => databases[index].shard > missingShard) ?? indexes[0];
  const problem = `database "${name}" has shard ${databases[after].shard} but no shard ${missingShard}`;
  return root.errorAt(`databases[${after}].shard`, problem, 'shard numbers 0 to n-1 without gaps');
}

function checkOnePrimary(
  root: SectionReader,
  databases: DatabaseConfig[],
  inShard: number[],
  name: string,
  shard: number,
): void {
  const expected = 'exactly one role = "primary" entry per shard';
  const primaries = inShard.filter((index) => databases[index].role === 'primary');
  if (primaries.length > 1) {
    const problem = `second primary for database "${name}" shard ${shard} (the first is databases[${primaries[0]}])`;
    throw root.errorAt(`databases[${primaries[1]}].role`, problem, expected);
  }
  const hasAuto = inShard.some((index) => databases[index].role === 'auto');
  if (primaries.length === 0 && !hasAuto) {
    const problem = `database "${name}" shard ${shard} has no primary`;
    throw root.errorAt(`databases[${inShard[0]}].role`, problem, `${expected} (or role = "auto")`);
  }
}

/** Same name, shard, role and server as an earlier entry: probably a copy-paste slip (PgDog warns too). */
function findDuplicateDatabases(file: string, databases: DatabaseConfig[]): ConfigWarning[] {
  const seen = new Map<string, number>();
  const warnings: ConfigWarning[] = [];
  databases.forEach((database, index) => {
    const { name, shard, role, host, port, databaseName } = database;
    const identity = JSON.stringify([name, shard, role, host, port, databaseName]);
    const first = seen.get(identity);
    if (first === undefined) seen.set(identity, index);
    else warnings.push({ file, key: `databases[${index}]`, message: `duplicate of databases[${first}]` });
  });
  return warnings;
}
