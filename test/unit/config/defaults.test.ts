// Defaults: a minimal pgdog.toml/users.toml pair yields PgDog's defaults (and ours where noted).
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERAL_DEFAULTS } from '../../../src/config/defaults.js';
import { defaultInstanceId, formerDefaultInstanceId } from '../../../src/config/instance-id.js';
import { MINIMAL_PGDOG, parse, withGeneral } from './helpers.js';

describe('parseConfig defaults', () => {
  const { config } = parse(MINIMAL_PGDOG);

  it('fills [general] with PgDog defaults (json logs: ours)', () => {
    expect(config.general).toEqual({
      host: '0.0.0.0',
      port: 6432,
      defaultPoolSize: 10,
      minPoolSize: 1,
      poolerMode: 'transaction',
      connectTimeoutMs: 5000,
      checkoutTimeoutMs: 5000,
      queryTimeoutMs: 0,
      deadlockTimeoutMs: 1000,
      idleTimeoutMs: 60000,
      clientIdleTimeoutMs: 0,
      clientLoginTimeoutMs: 60_000,
      authType: 'scram',
      passthroughAuth: 'disabled',
      tlsCertificate: null,
      tlsPrivateKey: null,
      logLevel: 'info',
      logFormat: 'json',
      twoPhaseCommit: false,
      twoPhaseCommitAuto: false,
      instanceId: defaultInstanceId(hostname(), 6432),
      formerInstanceId: formerDefaultInstanceId(hostname(), 6432).id,
      isFormerInstanceIdAmbiguous: formerDefaultInstanceId(hostname(), 6432).isAmbiguous,
      twoPhaseCommitWalDir: resolve('shardgate_2pc'), // next to pgdog.toml (here: the working folder)
      twoPhaseCommitWalSegmentSizeBytes: 16 * 1024 * 1024,
      twoPhaseCommitWalFsyncIntervalMs: 0,
      twoPhaseCommitSchema: 'shardgate',
      twoPhaseCommitRecoveryIntervalMs: 10_000,
      twoPhaseCommitOrphanTimeoutMs: 60_000,
      twoPhaseCommitPrepareTimeoutMs: 0,
      atomicVisibility: false, // two_phase_commit's default
      atomicVisibilityTimeoutMs: 5000,
      twoPhaseCommitReply: 'after_commit_prepared',
      maxMessageSizeBytes: 64 * 1024 * 1024,
      insertSelectBatchRows: 1000,
      preparedStatementsLimit: null, // PgDog: i64::MAX, no limit
      preparedStatementsCacheSizeBytes: 64 * 1024 * 1024,
      queryCacheLimit: 1000, // PgDog's
      queryCacheSizeBytes: 64 * 1024 * 1024,
      querySizeLimitBytes: null, // PgDog: off
      querySizeLimitAction: 'warn', // PgDog's
      openmetricsPort: null, // off, as in PgDog
      healthcheckPort: null, // off, as in PgDog
      openmetricsNamespace: 'shardgate_', // PgDog: no prefix
      shutdownTimeoutMs: 60_000, // PgDog's default
      // PgDog's replica and load-balancing defaults (pgdog-config general.rs)
      readWriteSplit: 'include_primary',
      loadBalancingStrategy: 'random',
      readWriteStrategy: 'conservative',
      banTimeoutMs: 300_000,
      healthcheckIntervalMs: 30_000,
      idleHealthcheckIntervalMs: 30_000,
      idleHealthcheckDelayMs: 5_000,
      healthcheckTimeoutMs: 5_000,
      lsnCheckIntervalMs: 5_000,
      lsnCheckTimeoutMs: 5_000,
      lsnCheckDelayMs: null,
      banReplicaLagMs: null,
      banReplicaLagBytes: null,
      uniqueIdFunction: 'standard', // PgDog's
      uniqueIdMin: 0n,
      nodeId: 0, // NODE_ID unset
      nodeIdSource: null,
    });
    expect(config.general).toEqual({
      ...GENERAL_DEFAULTS,
      instanceId: config.general.instanceId,
      formerInstanceId: config.general.formerInstanceId,
      isFormerInstanceIdAmbiguous: config.general.isFormerInstanceIdAmbiguous,
      twoPhaseCommitWalDir: config.general.twoPhaseCommitWalDir,
    });
  });

  it('reads PgDog`s default prepared_statements_limit (i64::MAX) as no limit, and refuses a negative one', () => {
    const max = parse(withGeneral('prepared_statements_limit = 9223372036854775807')).config.general;
    expect(max.preparedStatementsLimit).toBeNull();
    expect(parse(withGeneral('prepared_statements_limit = 0')).config.general.preparedStatementsLimit).toBe(
      0,
    );
    expect(() => parse(withGeneral('prepared_statements_limit = -1'))).toThrow(/prepared_statements_limit/);
    expect(() => parse(withGeneral('query_size_limit_action = "drop"'))).toThrow(/"warn", "block"/);
  });

  it('derives instance_id from host name and port, and warns when two_phase_commit_auto has no effect', () => {
    const { config: c, warnings } = parse(withGeneral('port = 7001\ntwo_phase_commit_auto = true'));
    expect(c.general.instanceId).toMatch(/^[A-Za-z0-9_]+_[0-9a-z]{13}_7001$/);
    expect(c.general.instanceId).toBe(defaultInstanceId(hostname(), 7001));
    expect(c.general.formerInstanceId).toBe(formerDefaultInstanceId(hostname(), 7001).id);
    expect(warnings.map((w) => w.key)).toEqual(['general.two_phase_commit_auto']);
    expect(warnings[0].message).toMatch(/two_phase_commit is false/);
  });

  it('turns atomic_visibility on with two_phase_commit unless set, and refuses a zero atomic_visibility_timeout', () => {
    expect(parse(withGeneral('two_phase_commit = true')).config.general.atomicVisibility).toBe(true);
    expect(parse(withGeneral('two_phase_commit = false')).config.general.atomicVisibility).toBe(false);
    expect(parse(withGeneral('atomic_visibility = true')).config.general.atomicVisibility).toBe(true);
    expect(
      parse(withGeneral('two_phase_commit = true\natomic_visibility = false')).config.general
        .atomicVisibility,
    ).toBe(false);
    expect(() => parse(withGeneral('atomic_visibility_timeout = 0'))).toThrow(/atomic_visibility_timeout/);
  });

  it('takes two_phase_commit_reply, and refuses "at_decision" without atomic_visibility, naming both keys', () => {
    const reply = (toml: string): string => parse(withGeneral(toml)).config.general.twoPhaseCommitReply;
    expect(reply('two_phase_commit = true')).toBe('after_commit_prepared');
    expect(reply('two_phase_commit = true\ntwo_phase_commit_reply = "at_decision"')).toBe('at_decision');
    expect(reply('atomic_visibility = true\ntwo_phase_commit_reply = "at_decision"')).toBe('at_decision');
    expect(() => parse(withGeneral('two_phase_commit_reply = "soon"'))).toThrow(
      /"after_commit_prepared", "at_decision"/,
    );
    const refused = [
      'two_phase_commit_reply = "at_decision"',
      'two_phase_commit = true\natomic_visibility = false\ntwo_phase_commit_reply = "at_decision"',
    ];
    for (const toml of refused) {
      expect(() => parse(withGeneral(toml))).toThrow(/two_phase_commit_reply[\s\S]*atomic_visibility = true/);
    }
  });

  it('refuses an instance_id that could not go into a GID as is', () => {
    expect(() => parse(withGeneral('instance_id = "a-b"'))).toThrow(/instance_id.*letters, digits and _/s);
  });

  it('fills [[databases]] defaults: port 5432, database_name = name, shard 0, primary', () => {
    expect(config.databases).toEqual([
      {
        name: 'prod',
        host: '127.0.0.1',
        port: 5432,
        databaseName: 'prod',
        user: null,
        password: null,
        shard: 0,
        role: 'primary',
        lbWeight: 255, // PgDog's
      },
    ]);
  });

  it('fills [[users]] optional fields with null (= use the general setting)', () => {
    expect(config.users).toEqual([
      {
        name: 'alice',
        database: 'prod',
        password: 'hunter2',
        poolSize: null,
        poolerMode: null,
        serverUser: null,
        serverPassword: null,
      },
    ]);
  });

  it('fills [admin] name and user, keeps the given password', () => {
    expect(config.admin).toEqual({ name: 'admin', user: 'admin', password: 'secret-admin' });
  });

  it('keeps the given paths and empty sharding tables', () => {
    expect(config.configPath).toBe('pgdog.toml');
    expect(config.usersPath).toBe('users.toml');
    expect(config.shardedTables).toEqual([]);
    expect(config.omnishardedTables).toEqual([]);
  });

  it('reads every supported key when set', () => {
    const pgdog = withGeneral(`host = "127.0.0.1"
port = 7000
default_pool_size = 20
min_pool_size = 0
pooler_mode = "session"
connect_timeout = 1_000
checkout_timeout = 2_000
query_timeout = 3_000
deadlock_timeout = 250
idle_timeout = 0
client_idle_timeout = 4_000
client_login_timeout = 7_000
auth_type = "md5"
passthrough_auth = "enabled_allow_change"
tls_certificate = "c.pem"
tls_private_key = "k.pem"
log_level = "debug"
log_format = "text"
two_phase_commit = true
two_phase_commit_auto = true
instance_id = "proxy_a"
two_phase_commit_wal_dir = "/var/lib/shardgate/2pc"
two_phase_commit_wal_segment_size = 1_048_576
two_phase_commit_wal_fsync_interval = 2
two_phase_commit_schema = "sg_decisions"
two_phase_commit_recovery_interval = 5_000
two_phase_commit_orphan_timeout = 30_000
two_phase_commit_prepare_timeout = 2_500
atomic_visibility = true
atomic_visibility_timeout = 750
two_phase_commit_reply = "at_decision"
max_message_size = 1_048_576
insert_select_batch_rows = 250
prepared_statements_limit = 500
prepared_statements_cache_size = 8_388_608
query_cache_limit = 200
query_cache_size = 4_194_304
query_size_limit = 100_000
query_size_limit_action = "block"
openmetrics_port = 9090
healthcheck_port = 8080
openmetrics_namespace = "pgdog_"
shutdown_timeout = 5_000
read_write_split = "exclude_primary"
load_balancing_strategy = "round_robin"
read_write_strategy = "conservative"
ban_timeout = 1_000
healthcheck_interval = 100
idle_healthcheck_interval = 0
idle_healthcheck_delay = 10
healthcheck_timeout = 200
lsn_check_interval = 300
lsn_check_timeout = 400
lsn_check_delay = 500
ban_replica_lag = 600
ban_replica_lag_bytes = 700
unique_id_function = "compact"
unique_id_min = 1_000_000`);
    const users = `[[users]]
name = "alice"
database = "prod"
password = "pw"
pool_size = 3
pooler_mode = "session"
server_user = "owner"
server_password = "owner-pw"`;
    const { config: custom, warnings } = parse(pgdog, users);
    expect(warnings).toEqual([]);
    expect(custom.general).toEqual({
      host: '127.0.0.1',
      port: 7000,
      defaultPoolSize: 20,
      minPoolSize: 0,
      poolerMode: 'session',
      connectTimeoutMs: 1000,
      checkoutTimeoutMs: 2000,
      queryTimeoutMs: 3000,
      deadlockTimeoutMs: 250,
      idleTimeoutMs: 0,
      clientIdleTimeoutMs: 4000,
      clientLoginTimeoutMs: 7000,
      authType: 'md5',
      passthroughAuth: 'enabled_allow_change',
      tlsCertificate: 'c.pem',
      tlsPrivateKey: 'k.pem',
      logLevel: 'debug',
      logFormat: 'text',
      twoPhaseCommit: true,
      twoPhaseCommitAuto: true,
      instanceId: 'proxy_a', // used as given: no former default id to recover
      formerInstanceId: null,
      isFormerInstanceIdAmbiguous: false,
      twoPhaseCommitWalDir: '/var/lib/shardgate/2pc',
      twoPhaseCommitWalSegmentSizeBytes: 1048576,
      twoPhaseCommitWalFsyncIntervalMs: 2,
      twoPhaseCommitSchema: 'sg_decisions',
      twoPhaseCommitRecoveryIntervalMs: 5000,
      twoPhaseCommitOrphanTimeoutMs: 30000,
      twoPhaseCommitPrepareTimeoutMs: 2500,
      atomicVisibility: true,
      atomicVisibilityTimeoutMs: 750,
      twoPhaseCommitReply: 'at_decision',
      maxMessageSizeBytes: 1048576,
      insertSelectBatchRows: 250,
      preparedStatementsLimit: 500,
      preparedStatementsCacheSizeBytes: 8_388_608,
      queryCacheLimit: 200,
      queryCacheSizeBytes: 4_194_304,
      querySizeLimitBytes: 100_000,
      querySizeLimitAction: 'block',
      openmetricsPort: 9090,
      healthcheckPort: 8080,
      openmetricsNamespace: 'pgdog_',
      shutdownTimeoutMs: 5000,
      readWriteSplit: 'exclude_primary',
      loadBalancingStrategy: 'round_robin',
      readWriteStrategy: 'conservative',
      banTimeoutMs: 1000,
      healthcheckIntervalMs: 100,
      idleHealthcheckIntervalMs: 0,
      idleHealthcheckDelayMs: 10,
      healthcheckTimeoutMs: 200,
      lsnCheckIntervalMs: 300,
      lsnCheckTimeoutMs: 400,
      lsnCheckDelayMs: 500,
      banReplicaLagMs: 600,
      banReplicaLagBytes: 700,
      uniqueIdFunction: 'compact',
      uniqueIdMin: 1_000_000n,
      nodeId: 0,
      nodeIdSource: null,
    });
    expect(custom.users[0]).toMatchObject({
      poolSize: 3,
      poolerMode: 'session',
      serverUser: 'owner',
      serverPassword: 'owner-pw',
    });
  });

  it('reads database overrides', () => {
    const pgdog = `[admin]\npassword = "x"
[[databases]]
name = "prod"
host = "db.internal"
port = 5433
database_name = "prod_real"
user = "svc"
password = "svc-pw"
role = "auto"
lb_weight = 10\n`;
    expect(parse(pgdog).config.databases[0]).toEqual({
      name: 'prod',
      host: 'db.internal',
      port: 5433,
      databaseName: 'prod_real',
      user: 'svc',
      password: 'svc-pw',
      shard: 0,
      role: 'auto',
      lbWeight: 10,
    });
  });

  it('accepts an empty openmetrics_namespace (metric names without prefix, as PgDog by default)', () => {
    expect(parse(withGeneral('openmetrics_namespace = ""')).config.general.openmetricsNamespace).toBe('');
  });

  it('accepts PgDog max_pool_size as default_pool_size', () => {
    expect(parse(withGeneral('max_pool_size = 25')).config.general.defaultPoolSize).toBe(25);
  });

  it('allows users without a password under auth_type = "trust"', () => {
    const { config } = parse(
      withGeneral('auth_type = "trust"'),
      '[[users]]\nname = "bob"\ndatabase = "prod"\n',
    );
    expect(config.users[0].password).toBeNull();
  });

  it.each(['enabled_plain', 'enabled_plain_allow_change'])(
    'allows users without a password under passthrough_auth = "%s" (the server checks them)',
    (mode) => {
      const { config } = parse(
        withGeneral(`passthrough_auth = "${mode}"`),
        '[[users]]\nname = "bob"\ndatabase = "prod"\n',
      );
      expect(config.general.passthroughAuth).toBe(mode);
      expect(config.users[0].password).toBeNull();
    },
  );

  it('treats an empty password as no password (as PgDog does)', () => {
    const { config } = parse(
      withGeneral('auth_type = "trust"'),
      '[[users]]\nname = "bob"\ndatabase = "prod"\npassword = ""\n',
    );
    expect(config.users[0].password).toBeNull();
  });

  it('lets users.toml [admin] replace pgdog.toml [admin], as PgDog does', () => {
    const users =
      '[admin]\nname = "ops"\npassword = "from-users"\n[[users]]\nname = "a"\ndatabase = "prod"\npassword = "p"\n';
    expect(parse(MINIMAL_PGDOG, users).config.admin).toEqual({
      name: 'ops',
      user: 'admin',
      password: 'from-users',
    });
  });

  it('accepts a sharded cluster with replicas and an auto-role shard', () => {
    const pgdog = `[admin]\npassword = "x"
[[databases]]\nname = "prod"\nhost = "a"\nshard = 0
[[databases]]\nname = "prod"\nhost = "a2"\nshard = 0\nrole = "replica"
[[databases]]\nname = "prod"\nhost = "b"\nshard = 1\nrole = "auto"
[[databases]]\nname = "prod"\nhost = "b2"\nshard = 1\nrole = "auto"\n`;
    expect(parse(pgdog).config.databases.map((d) => [d.shard, d.role])).toEqual([
      [0, 'primary'],
      [0, 'replica'],
      [1, 'auto'],
      [1, 'auto'],
    ]);
  });

  it('types the sharding sections and attaches [[sharded_mappings]] to their table', () => {
    const pgdog = `${MINIMAL_PGDOG}
[[sharded_tables]]
database = "prod"
column = "tenant_id"
data_type = "bigint"

[[sharded_tables.mapping]]
values = [1, 2, 9_007_199_254_740_993]
shard = 0

[[sharded_mappings]]
database = "prod"
column = "tenant_id"
kind = "default"
shard = 0

[[omnisharded_tables]]
database = "prod"
tables = ["countries"]
`;
    const { config, warnings } = parse(pgdog);
    expect(warnings).toEqual([]);
    expect(config.shardedTables).toEqual([
      {
        database: 'prod',
        name: null,
        schema: null,
        column: 'tenant_id',
        dataType: 'bigint',
        isPrimary: false,
        mappings: [
          {
            kind: 'list',
            values: [1n, 2n, 9007199254740993n],
            start: null,
            end: null,
            shard: 0,
            source: 'sharded_tables[0].mapping[0]',
          },
          { kind: 'default', values: [], start: null, end: null, shard: 0, source: 'sharded_mappings[0]' },
        ],
      },
    ]);
    expect(config.omnishardedTables).toEqual([{ database: 'prod', tables: ['countries'] }]);
  });
});
