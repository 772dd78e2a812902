// Reads pgdog.toml `[general]` keys of replicas and load balancing (PgDog's names and defaults: read_write_split,
// load_balancing_strategy, read_write_strategy, ban_timeout, healthcheck_*, lsn_check_*, ban_replica_lag*), and warns
// about combinations that do nothing.
import type { ConfigWarning } from './config-error.js';
import {
  GENERAL_DEFAULTS,
  LOAD_BALANCING_STRATEGIES,
  MAX_TIMEOUT_MS,
  READ_WRITE_SPLITS,
  READ_WRITE_STRATEGIES,
} from './defaults.js';
import type { SectionReader } from './toml-values.js';
import type { GeneralConfig } from './types.js';

export type ReplicaSettings = Pick<
  GeneralConfig,
  | 'readWriteSplit'
  | 'loadBalancingStrategy'
  | 'readWriteStrategy'
  | 'banTimeoutMs'
  | 'healthcheckIntervalMs'
  | 'idleHealthcheckIntervalMs'
  | 'idleHealthcheckDelayMs'
  | 'healthcheckTimeoutMs'
  | 'lsnCheckIntervalMs'
  | 'lsnCheckTimeoutMs'
  | 'lsnCheckDelayMs'
  | 'banReplicaLagMs'
  | 'banReplicaLagBytes'
>;

const MS_RULE = {
  min: 0,
  max: MAX_TIMEOUT_MS,
  expected: `integer milliseconds between 0 and ${MAX_TIMEOUT_MS}`,
};
const POSITIVE_MS_RULE = {
  min: 1,
  max: MAX_TIMEOUT_MS,
  expected: `integer milliseconds between 1 and ${MAX_TIMEOUT_MS}`,
};

/** Lag thresholds: PgDog's "off" (i64::MAX) is refused; leave the key out instead. */
const LAG_RULE = {
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  expected: `an integer between 0 and ${Number.MAX_SAFE_INTEGER} (leave the key out for no limit)`,
};

export function readReplicaSettings(r: SectionReader, warnings: ConfigWarning[]): ReplicaSettings {
  const d = GENERAL_DEFAULTS;
  const settings: ReplicaSettings = {
    readWriteSplit: r.oneOf('read_write_split', READ_WRITE_SPLITS) ?? d.readWriteSplit,
    loadBalancingStrategy:
      r.oneOf('load_balancing_strategy', LOAD_BALANCING_STRATEGIES) ?? d.loadBalancingStrategy,
    readWriteStrategy: r.oneOf('read_write_strategy', READ_WRITE_STRATEGIES) ?? d.readWriteStrategy,
    banTimeoutMs: r.integer('ban_timeout', MS_RULE) ?? d.banTimeoutMs,
    healthcheckIntervalMs: r.integer('healthcheck_interval', MS_RULE) ?? d.healthcheckIntervalMs,
    idleHealthcheckIntervalMs: r.integer('idle_healthcheck_interval', MS_RULE) ?? d.idleHealthcheckIntervalMs,
    idleHealthcheckDelayMs: r.integer('idle_healthcheck_delay', MS_RULE) ?? d.idleHealthcheckDelayMs,
    healthcheckTimeoutMs: r.integer('healthcheck_timeout', POSITIVE_MS_RULE) ?? d.healthcheckTimeoutMs,
    lsnCheckIntervalMs: r.integer('lsn_check_interval', POSITIVE_MS_RULE) ?? d.lsnCheckIntervalMs,
    lsnCheckTimeoutMs: r.integer('lsn_check_timeout', POSITIVE_MS_RULE) ?? d.lsnCheckTimeoutMs,
    lsnCheckDelayMs: r.integer('lsn_check_delay', MS_RULE) ?? d.lsnCheckDelayMs,
    banReplicaLagMs: r.integer('ban_replica_lag', LAG_RULE) ?? d.banReplicaLagMs,
    banReplicaLagBytes: r.integer('ban_replica_lag_bytes', LAG_RULE) ?? d.banReplicaLagBytes,
  };
  const isMonitorOff = settings.lsnCheckDelayMs === null;
  for (const key of ['ban_replica_lag', 'ban_replica_lag_bytes'] as const) {
    if (isMonitorOff && r.has(key)) {
      warnings.push({
        file: r.file,
        key: `general.${key}`,
        message:
          'does nothing while the replay-LSN monitor is off: set lsn_check_delay (e.g. 0) to turn it on',
      });
    }
  }
  if (settings.readWriteStrategy === 'aggressive') {
    warnings.push({
      file: r.file,
      key: 'general.read_write_strategy',
      message: '"aggressive" is not implemented yet: transactions go to the primary as with "conservative"',
    });
  }
  return settings;
}
