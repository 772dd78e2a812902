// The settings of `pgdog.unique_id()`: `unique_id_function` and `unique_id_min` from [general], and the node id from
// the NODE_ID environment variable (read as PgDog reads it: the number after the last `-`). A node id or minimum the
// layout cannot hold refuses start-up; NODE_ID left unset means node 0, with a warning logged where ids can be made
// (a database with 2+ shards), since two proxies with the same node id can make the same id.
import { ConfigError } from './config-error.js';
import { describeValue, type SectionReader } from './toml-values.js';
import type { GeneralConfig } from './types.js';
import {
  maxNodeId,
  parseNodeId,
  UNIQUE_ID_EPOCH_MS,
  UNIQUE_ID_FUNCTIONS,
  UNIQUE_ID_LAYOUTS,
  type UniqueIdFunction,
} from '../sharding/unique-id.js';

/** Where NODE_ID errors say the setting comes from. */
export const NODE_ID_SOURCE = 'environment';

type UniqueIdSettings = Pick<GeneralConfig, 'uniqueIdFunction' | 'uniqueIdMin' | 'nodeId' | 'nodeIdSource'>;

export function readUniqueId(r: SectionReader, env: NodeJS.ProcessEnv, nowMs = Date.now()): UniqueIdSettings {
  const fn = r.oneOf('unique_id_function', UNIQUE_ID_FUNCTIONS) ?? 'standard';
  return {
    uniqueIdFunction: fn,
    uniqueIdMin: readUniqueIdMin(r, fn, nowMs),
    ...readNodeId(env, fn),
  };
}

/**
 * `unique_id_min`: an integer ≥ 0 that still leaves room for ids made now (the id of this millisecond with node and
 * sequence at their maximum, plus the minimum, within the layout's maximum). PgDog only takes a minimum that leaves
 * room for the layout's whole 69 years, which both layouts fill to the last bit: in effect only 0.
 */
function readUniqueIdMin(r: SectionReader, fn: UniqueIdFunction, nowMs: number): bigint {
  const value = r.raw('unique_id_min');
  const layout = UNIQUE_ID_LAYOUTS[fn];
  const shift = BigInt(layout.nodeBits + layout.sequenceBits);
  const elapsed = BigInt(Math.max(0, nowMs - UNIQUE_ID_EPOCH_MS));
  const largestNow = ((elapsed + 1n) << shift) - 1n;
  const max = layout.maxId - largestNow;
  const expected = `an integer from 0 to ${max} (the ${fn} layout's ids reach ${largestNow} now, and stay within ${layout.maxId})`;
  if (value === undefined) return 0n;
  if (typeof value !== 'bigint')
    throw r.error('unique_id_min', `got ${describeValue(value, false)}`, expected);
  if (value < 0n || value > max) throw r.error('unique_id_min', `${value} is out of range`, expected);
  return value;
}

function readNodeId(
  env: NodeJS.ProcessEnv,
  fn: UniqueIdFunction,
): Pick<UniqueIdSettings, 'nodeId' | 'nodeIdSource'> {
  const value = env.NODE_ID;
  if (value === undefined) return { nodeId: 0, nodeIdSource: null };
  const max = maxNodeId(fn);
  const expected = `a number from 0 to ${max}, or a name ending in -<number> such as a StatefulSet pod name (shardgate-0)`;
  const nodeId = parseNodeId(value);
  const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (nodeId === null)
    throw new ConfigError(NODE_ID_SOURCE, 'NODE_ID', `${shown} does not end in a number`, expected);
  if (nodeId > max) {
    throw new ConfigError(
      NODE_ID_SOURCE,
      'NODE_ID',
      `${shown} is node ${nodeId}, more than the ${UNIQUE_ID_LAYOUTS[fn].nodeBits} node bits of unique_id_function = "${fn}" hold`,
      expected,
    );
  }
  return { nodeId, nodeIdSource: value };
}

/**
 * The start-up warning when NODE_ID is unset (null when it is set): which node id the ids then carry. Logged by the
 * proxy when it has a database with 2+ shards, where pgdog.unique_id() is answered.
 */
export function nodeIdWarning(general: GeneralConfig): string | null {
  if (general.nodeIdSource !== null) return null;
  return (
    `NODE_ID is not set: pgdog.unique_id() makes ids with node id ${general.nodeId}. Give every proxy in front of the ` +
    'same shards its own NODE_ID (e.g. its StatefulSet pod name: shardgate-0, shardgate-1, …); two proxies with the ' +
    'same node id can make the same id'
  );
}
