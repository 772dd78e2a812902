// planReload: which changes apply live, which wait for a restart (and keep the running value), never any value.
import { describe, expect, it } from 'vitest';
import { planReload } from '../../../src/lifecycle/reload-plan.js';
import { parse } from '../config/helpers.js';

const PGDOG = (general: string, extra = ''): string => `[general]
${general}
[admin]
password = "admin-pw"

[[databases]]
name = "prod"
host = "10.0.0.1"
shard = 0

[[databases]]
name = "prod"
host = "10.0.0.2"
shard = 1

[[sharded_tables]]
database = "prod"
column = "id"
${extra}`;

const USERS = (alicePassword: string, extra = ''): string => `[[users]]
name = "alice"
database = "prod"
password = "${alicePassword}"
${extra}
[[users]]
name = "bob"
database = "prod"
password = "bob-pw"
`;

describe('planReload', () => {
  const running = parse(PGDOG('port = 6432\ndefault_pool_size = 10'), USERS('a1')).config;

  it('reports no change for the same files', () => {
    const plan = planReload(running, parse(PGDOG('port = 6432\ndefault_pool_size = 10'), USERS('a1')).config);
    expect(plan).toMatchObject({ changed: [], needsRestart: [] });
  });

  it('applies pool sizes, timeouts, users and passwords; lists keys, never values', () => {
    const next = parse(
      PGDOG('port = 6432\ndefault_pool_size = 20\ncheckout_timeout = 100'),
      USERS('a2', 'pool_size = 3').replace(/\[\[users\]\]\nname = "bob"[^[]*$/, '') +
        '[[users]]\nname = "carol"\ndatabase = "prod"\npassword = "c"\n',
    ).config;
    const plan = planReload(running, next);
    expect(plan.changed).toEqual([
      'general.default_pool_size',
      'general.checkout_timeout',
      'users."alice"@prod: password, pool_size',
      'users."carol"@prod: added',
      'users."bob"@prod: removed',
    ]);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.config.general.defaultPoolSize).toBe(20);
    expect(plan.config.users.map((u) => u.name)).toEqual(['alice', 'carol']);
    expect(JSON.stringify(plan.changed)).not.toContain('a2');
  });

  it('keeps listen address, 2PC and metrics settings until a restart', () => {
    const next = parse(
      PGDOG(
        'port = 7000\ndefault_pool_size = 10\ntwo_phase_commit = true\nopenmetrics_port = 9090\nshutdown_timeout = 5',
      ),
      USERS('a1'),
    ).config;
    const plan = planReload(running, next);
    expect(plan.needsRestart).toEqual([
      'general.port',
      'general.two_phase_commit',
      'general.instance_id', // derived from the port
      'general.atomic_visibility', // follows two_phase_commit when not set
      'general.openmetrics_port',
    ]);
    expect(plan.changed).toEqual(['general.shutdown_timeout']);
    expect(plan.config.general.port).toBe(6432);
    expect(plan.config.general.twoPhaseCommit).toBe(false);
    expect(plan.config.general.openmetricsPort).toBeNull();
    expect(plan.config.general.shutdownTimeoutMs).toBe(5);
  });

  it('applies a changed server address, but not a changed shard layout or sharding rules', () => {
    const moved = parse(
      PGDOG('port = 6432\ndefault_pool_size = 10').replace('10.0.0.2', '10.0.0.9'),
      USERS('a1'),
    );
    const plan = planReload(running, moved.config);
    expect(plan.changed).toEqual(['databases."prod" shard 1: host']);
    expect(plan.config.databases.map((d) => d.host)).toEqual(['10.0.0.1', '10.0.0.9']);

    const threeShards = parse(
      `${PGDOG('port = 6432\ndefault_pool_size = 10')}\n[[databases]]\nname = "prod"\nhost = "10.0.0.3"\nshard = 2\n`,
      USERS('a1'),
    ).config;
    const relayout = planReload(running, threeShards);
    expect(relayout.needsRestart).toEqual(['databases."prod": shards or roles']);
    expect(relayout.config.databases).toEqual(running.databases);

    const rules = parse(
      PGDOG('port = 6432\ndefault_pool_size = 10', 'data_type = "integer"'),
      USERS('a1'),
    ).config;
    const rulesPlan = planReload(running, rules);
    expect(rulesPlan.needsRestart).toEqual(['sharding rules']);
    expect(rulesPlan.config.shardedTables).toBe(running.shardedTables);
  });

  it('does not add or remove databases while running', () => {
    const added = parse(
      `${PGDOG('port = 6432\ndefault_pool_size = 10')}\n[[databases]]\nname = "other"\nhost = "10.0.0.5"\n`,
      USERS('a1'),
    ).config;
    const plan = planReload(running, added);
    expect(plan.needsRestart).toEqual(['databases."other": added']);
    expect(plan.config.databases.map((d) => d.name)).toEqual(['prod', 'prod']);
  });
});
