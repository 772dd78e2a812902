// Reads pgdog.toml `[general]` keys of replicas and load balancing (PgDog's names and defaults: read_write_split,
// load_balancing_strategy, read_write_strategy, ban_timeout, healthcheck_*), and warns about combinations that do
// nothing.
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
  };
  if (settings.readWriteStrategy === 'aggressive') {
    warnings.push({
      file: r.file,
      key: 'general.read_write_strategy',
      message: '"aggressive" is not implemented yet: transactions go to the primary as with "conservative"',
    });
  }
  return settings;
}
