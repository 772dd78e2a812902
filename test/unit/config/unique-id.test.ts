// The settings of pgdog.unique_id(): unique_id_function and unique_id_min in [general], NODE_ID from the environment.
// What the layout cannot hold refuses start-up, naming where the value came from; NODE_ID unset means node 0 and a
// warning for the log; a change of any of them waits for a restart.
import { describe, expect, it } from 'vitest';
import { nodeIdWarning } from '../../../src/config/unique-id.js';
import { formatEffectiveConfig } from '../../../src/config/format.js';
import { planReload } from '../../../src/lifecycle/reload-plan.js';
import { MINIMAL_USERS, parse, parseError, withGeneral } from './helpers.js';

const general = (lines: string, env: NodeJS.ProcessEnv = {}) =>
  parse(withGeneral(lines), MINIMAL_USERS, env).config.general;

describe('unique_id_function and unique_id_min', () => {
  it('PgDog’s keys are read (no "not supported" warning any more)', () => {
    const { config, warnings } = parse(withGeneral('unique_id_function = "compact"\nunique_id_min = 5_000'));
    expect(warnings).toEqual([]);
    expect(config.general).toMatchObject({ uniqueIdFunction: 'compact', uniqueIdMin: 5000n });
    expect(formatEffectiveConfig(config)).toContain('unique_id_function = "compact"\nunique_id_min = 5000');
  });

  it('refuses a layout PgDog does not have', () => {
    const error = parseError(withGeneral('unique_id_function = "uuid"'));
    expect(error.key).toBe('general.unique_id_function');
    expect(error.expected).toBe('one of "standard", "compact"');
  });

  it('refuses a negative, fractional or too large minimum, saying how large it may be', () => {
    expect(parseError(withGeneral('unique_id_min = -1')).message).toMatch(
      /^pgdog\.toml: general\.unique_id_min: -1 is out of range, expected an integer from 0 to \d+/,
    );
    expect(parseError(withGeneral('unique_id_min = 1.5')).message).toContain('got float');
    // Compact ids reach 2^53 - 1 at most: a minimum that close leaves no room for the ids of today.
    const error = parseError(withGeneral(`unique_id_function = "compact"\nunique_id_min = ${2 ** 53 - 10}`));
    expect(error.key).toBe('general.unique_id_min');
    expect(error.expected).toContain('stay within 9007199254740991');
    // The same minimum is fine in the 64-bit layout.
    expect(general(`unique_id_min = ${2 ** 53 - 10}`).uniqueIdMin).toBe(BigInt(2 ** 53 - 10));
  });
});

describe('NODE_ID', () => {
  it('the number at its end is the node id (a StatefulSet pod name, or a bare number)', () => {
    expect(general('', { NODE_ID: 'shardgate-2' })).toMatchObject({ nodeId: 2, nodeIdSource: 'shardgate-2' });
    expect(general('', { NODE_ID: '1023' }).nodeId).toBe(1023);
    expect(general('unique_id_function = "compact"', { NODE_ID: 'shardgate-63' }).nodeId).toBe(63);
  });

  it('check-config shows it with the node id', () => {
    const config = parse(withGeneral(''), MINIMAL_USERS, { NODE_ID: 'shardgate-2' }).config;
    expect(formatEffectiveConfig(config)).toContain(
      '\n# NODE_ID: "shardgate-2" (pgdog.unique_id() node id 2)\n',
    );
    expect(formatEffectiveConfig(parse(withGeneral('')).config)).toContain(
      '# NODE_ID: not set (pgdog.unique_id() node id 0)',
    );
  });

  it('unset: node 0, and a warning for the log saying so', () => {
    const g = general('');
    expect(g).toMatchObject({ nodeId: 0, nodeIdSource: null });
    expect(nodeIdWarning(g)).toMatch(/^NODE_ID is not set: pgdog\.unique_id\(\) makes ids with node id 0\./);
    expect(nodeIdWarning(general('', { NODE_ID: 'shardgate-1' }))).toBeNull();
  });

  it('refuses a value without a number at its end (a Deployment’s pod name), naming the environment', () => {
    const error = parseError(withGeneral(''), MINIMAL_USERS, { NODE_ID: 'shardgate-7d9f8-x2b4c' });
    expect(error.file).toBe('environment');
    expect(error.key).toBe('NODE_ID');
    expect(error.message).toBe(
      'environment: NODE_ID: "shardgate-7d9f8-x2b4c" does not end in a number, expected a number from 0 to 1023, ' +
        'or a name ending in -<number> such as a StatefulSet pod name (shardgate-0)',
    );
  });

  it('refuses a node id the layout has no bits for', () => {
    expect(parseError(withGeneral(''), MINIMAL_USERS, { NODE_ID: 'shardgate-1024' }).message).toContain(
      'is node 1024, more than the 10 node bits of unique_id_function = "standard" hold',
    );
    const compact = parseError(withGeneral('unique_id_function = "compact"'), MINIMAL_USERS, {
      NODE_ID: '64',
    });
    expect(compact.message).toContain('more than the 6 node bits of unique_id_function = "compact" hold');
    expect(compact.expected).toContain('a number from 0 to 63');
  });
});

describe('reload', () => {
  it('a new layout or minimum waits for a restart (the running ids keep theirs)', () => {
    const running = parse(withGeneral('')).config;
    const next = parse(withGeneral('unique_id_function = "compact"\nunique_id_min = 7')).config;
    const plan = planReload(running, next);
    expect(plan.needsRestart).toEqual(['general.unique_id_function', 'general.unique_id_min']);
    expect(plan.config.general).toMatchObject({ uniqueIdFunction: 'standard', uniqueIdMin: 0n });
  });
});
