// Replica entries and the load-balancing keys: kept with their roles and weights, PgDog's values accepted, clear
// errors naming file, key and what is expected.
import { describe, expect, it } from 'vitest';
import { formatConfigWarning } from '../../../src/config/config-error.js';
import { parse, parseError, withGeneral } from './helpers.js';

const PRIMARY_AND_REPLICAS = `[admin]\npassword = "x"
[[databases]]\nname = "prod"\nhost = "p"
[[databases]]\nname = "prod"\nhost = "r1"\nrole = "replica"\nlb_weight = 3
[[databases]]\nname = "prod"\nhost = "r2"\nrole = "replica"\n`;

describe('replica configuration', () => {
  it('keeps replica entries of a shard, with their weights, and warns about none of them', () => {
    const { config, warnings } = parse(PRIMARY_AND_REPLICAS);
    expect(config.databases.map((d) => [d.host, d.shard, d.role, d.lbWeight])).toEqual([
      ['p', 0, 'primary', 255],
      ['r1', 0, 'replica', 3],
      ['r2', 0, 'replica', 255],
    ]);
    expect(warnings).toEqual([]);
  });

  it.each([
    ['read_write_split', 'include_primary_if_replica_banned', 'readWriteSplit'],
    ['read_write_split', 'prefer_primary', 'readWriteSplit'],
    ['load_balancing_strategy', 'least_active_connections', 'loadBalancingStrategy'],
    ['load_balancing_strategy', 'weighted_round_robin', 'loadBalancingStrategy'],
  ] as const)('accepts %s = "%s"', (key, value, field) => {
    expect(parse(withGeneral(`${key} = "${value}"`)).config.general[field]).toBe(value);
  });

  it.each([
    ['read_write_split = "replicas_only"', 'general.read_write_split', 'one of "include_primary"'],
    ['load_balancing_strategy = "roundrobin"', 'general.load_balancing_strategy', '"round_robin"'],
    ['read_write_strategy = "eager"', 'general.read_write_strategy', '"aggressive"'],
    ['ban_timeout = -1', 'general.ban_timeout', 'integer milliseconds'],
    ['healthcheck_timeout = 0', 'general.healthcheck_timeout', 'between 1 and'],
    ['healthcheck_interval = "30s"', 'general.healthcheck_interval', 'integer milliseconds'],
  ])('refuses %s', (line, key, expected) => {
    const error = parseError(withGeneral(line));
    expect(error.file).toBe('pgdog.toml');
    expect(error.key).toBe(key);
    expect(error.message).toContain(expected);
  });

  it('reads the replay-LSN monitor keys (off by default, as PgDog) and warns about lag bans without it', () => {
    const defaults = parse(PRIMARY_AND_REPLICAS).config.general;
    expect([defaults.lsnCheckDelayMs, defaults.lsnCheckIntervalMs, defaults.lsnCheckTimeoutMs]).toEqual([
      null,
      5000,
      5000,
    ]);
    expect([defaults.banReplicaLagMs, defaults.banReplicaLagBytes]).toEqual([null, null]);
    const on = parse(
      withGeneral(
        'lsn_check_delay = 0\nlsn_check_interval = 200\nlsn_check_timeout = 100\nban_replica_lag = 1000\nban_replica_lag_bytes = 1048576',
      ),
    );
    const g = on.config.general;
    expect([g.lsnCheckDelayMs, g.lsnCheckIntervalMs, g.lsnCheckTimeoutMs]).toEqual([0, 200, 100]);
    expect([g.banReplicaLagMs, g.banReplicaLagBytes]).toEqual([1000, 1048576]);
    expect(on.warnings).toEqual([]);
    const off = parse(withGeneral('ban_replica_lag_bytes = 1048576'));
    expect(off.warnings.map((w) => w.key)).toEqual(['general.ban_replica_lag_bytes']);
    expect(parseError(withGeneral('lsn_check_interval = 0')).key).toBe('general.lsn_check_interval');
  });

  it('refuses an lb_weight outside 0–255, naming the entry', () => {
    const error = parseError(`${PRIMARY_AND_REPLICAS}lb_weight = 256\n`);
    expect(error.key).toBe('databases[2].lb_weight');
    expect(error.message).toContain('between 0 and 255');
  });

  it('still refuses a shard with replicas but no primary', () => {
    const error = parseError(
      `[admin]\npassword = "x"\n[[databases]]\nname = "prod"\nhost = "r"\nrole = "replica"\n`,
    );
    expect(error.key).toBe('databases[0].role');
    expect(error.message).toContain('has no primary');
  });

  it('warns that read_write_strategy = "aggressive" is not implemented yet', () => {
    const { warnings } = parse(withGeneral('read_write_strategy = "aggressive"'));
    expect(warnings.map(formatConfigWarning)).toEqual([
      'pgdog.toml: general.read_write_strategy: "aggressive" is not implemented yet: transactions go to the primary as with "conservative"',
    ]);
  });
});
