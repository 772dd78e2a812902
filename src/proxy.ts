// The running proxy: listens for clients, owns the pools, cancel keys, statement names and counters, serves the admin
// console and the OpenMetrics endpoint, reloads its configuration, and shuts down gracefully.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { loadConfig, type LoadedConfig } from './config/load.js';
import { PoolManager } from './backend/pool-manager.js';
import { CancelRegistry } from './frontend/cancel-registry.js';
import { ClientSession, type SessionDeps } from './frontend/client-session.js';
import { StatementNames } from './frontend/prepared-statements.js';
import { PgError } from './errors/pg-error.js';
import { initParser } from './router/parser.js';
import { CatalogFacts } from './sharding/catalog-facts.js';
import { SequenceValues } from './frontend/sequence-values.js';
import { UniqueIdGenerator } from './sharding/unique-id.js';
import { nodeIdWarning } from './config/unique-id.js';
import type { UniqueIdCalls } from './router/unique-id-calls.js';
import { PlanCache, type PlanCacheStats } from './router/plan-cache.js';
import type { StatementPlan } from './router/plan.js';
import { shardingSchemaFor } from './sharding/schema-from-config.js';
import type { DatabaseRouting } from './frontend/session-router.js';
import type { UniqueIdSupport } from './frontend/unique-id-request.js';
import { loadFailpointsFromEnv } from './txn/failpoints.js';
import type { TransactionManager } from './txn/manager.js';
import { startTransactionManager, type StartedTxn } from './txn/start.js';
import { VisibilityFences } from './txn/visibility-fence.js';
import { ConfigShardAccess } from './backend/shard-access.js';
import { probeTextCollation } from './lifecycle/collation-probe.js';
import { DeadlockWatch, type DeadlockStats } from './txn/deadlock-watch.js';
import { StatsRegistry } from './stats/stats-registry.js';
import { AdminConsole } from './admin/console.js';
import type { AdminContext, ReloadOutcome } from './admin/context.js';
import { planReload } from './lifecycle/reload-plan.js';
import { refuseConnection } from './lifecycle/refuse-connection.js';
import { buildMetricsRegistry, type MetricsSource } from './metrics/proxy-metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics/metrics-server.js';
import { startHealthServer, type HealthServer } from './metrics/health-server.js';

export interface StartProxyOptions {
  /** How RELOAD and SIGHUP read the configuration again; default: both files the configuration came from. */
  reloadConfig?: () => LoadedConfig;
}

export interface RunningProxy {
  host: string;
  port: number;
  /** Connected client sessions (for tests and the admin console). */
  readonly clients: ReadonlySet<ClientSession>;
  readonly pools: PoolManager;
  readonly stats: StatsRegistry;
  /** The two-phase commit transaction manager (null when two_phase_commit is off). */
  readonly txn: TransactionManager | null;
  /** Distributed deadlock detection's counters. */
  readonly deadlocks: DeadlockStats;
  /** Port of the OpenMetrics endpoint; null when openmetrics_port is not set. */
  readonly metricsPort: number | null;
  /** Port of the health endpoint; null when healthcheck_port is not set. */
  readonly healthPort: number | null;
  /** The configuration in force (changes with each reload). */
  config(): Config;
  /** Re-read the configuration (SIGHUP, admin RELOAD); a configuration that fails validation changes nothing. */
  reload(): ReloadOutcome;
  /**
   * Graceful stop (SIGTERM, SIGINT, admin SHUTDOWN): new clients are refused (57P03), idle ones disconnected (57P01),
   * running transactions get up to shutdown_timeout to finish; then everything closes. Same promise on every call.
   */
  shutdown(): Promise<void>;
  /** Stop now: every client is disconnected at once (a second signal, tests). */
  close(): Promise<void>;
  /** Settles once the proxy has stopped, however that was asked for; isClean is false if closing failed. */
  readonly stopped: Promise<{ isClean: boolean }>;
}

/** How often a graceful shutdown or PAUSE looks again at clients and pools. */
const POLL_MS = 25;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function loadTlsContext(config: Config): tls.SecureContext | null {
  const { tlsCertificate, tlsPrivateKey } = config.general;
  if (!tlsCertificate || !tlsPrivateKey) return null;
  return tls.createSecureContext({ cert: readFileSync(tlsCertificate), key: readFileSync(tlsPrivateKey) });
}

function readFilesAgain(config: Config): () => LoadedConfig {
  const { configPath, usersPath } = config;
  return () => {
    if (configPath === null || usersPath === null)
      throw new Error('the configuration was not read from files');
    return loadConfig({ configPath, usersPath });
  };
}

export async function startProxy(
  initialConfig: Config,
  logger: Logger,
  opts: StartProxyOptions = {},
): Promise<RunningProxy> {
  let config = initialConfig;
  const reloadSource = opts.reloadConfig ?? readFilesAgain(initialConfig);
  const stats = new StatsRegistry(config);
  const pools = new PoolManager(config, logger, stats);
  const cancels = new CancelRegistry();
  const statementNames = new StatementNames(() => ({
    maxCount: config.general.preparedStatementsLimit ?? Number.MAX_SAFE_INTEGER,
    maxBytes: config.general.preparedStatementsCacheSizeBytes,
  }));
  const clients = new Set<ClientSession>();
  const refusing = new Set<net.Socket>();
  let tlsContext = loadTlsContext(config);
  // One pgdog.unique_id() generator for the whole proxy: its node id and sequence keep ids unique across databases.
  const generator = new UniqueIdGenerator({
    fn: config.general.uniqueIdFunction,
    nodeId: config.general.nodeId,
    minId: config.general.uniqueIdMin,
  });
  const routing = await buildRouting(config, generator);
  // Databases with one shard and replicas replace pgdog.unique_id() calls too (PgDog's parser is on there).
  const oneShardIds: UniqueIdSupport = {
    generator,
    calls: new PlanCache<UniqueIdCalls | null>(
      config.general.queryCacheLimit,
      config.general.queryCacheSizeBytes,
    ),
  };
  if (routing.size > 0) {
    const { uniqueIdFunction, nodeId, nodeIdSource, uniqueIdMin } = config.general;
    logger.info(
      { uniqueIdFunction, nodeId, nodeIdSource, uniqueIdMin: uniqueIdMin.toString() },
      `pgdog.unique_id(): ${uniqueIdFunction} layout, node ${nodeId}`,
    );
    const warning = nodeIdWarning(config.general);
    if (warning !== null) logger.warn(warning);
  }
  loadFailpointsFromEnv();
  // atomic_visibility: one fence per sharded database, shared by sessions (readers, plain commits) and the manager.
  const fences = config.general.atomicVisibility ? new VisibilityFences() : null;
  const txn: StartedTxn | null = config.general.twoPhaseCommit
    ? await startTransactionManager(
        () => config,
        logger,
        (database, shard) => pools.currentPrimary(database, shard),
        fences,
      )
    : null;
  const deadlocks = new DeadlockWatch(
    () => ({
      deadlockTimeoutMs: config.general.deadlockTimeoutMs,
      connectTimeoutMs: config.general.connectTimeoutMs,
    }),
    logger,
  );
  let phase: 'running' | 'draining' | 'closed' = 'running';
  await learnCollations(
    () => config,
    routing,
    logger,
    () => phase === 'closed',
  );
  let isForced = false;

  const adminContext: AdminContext = {
    config: () => config,
    pools,
    stats,
    clients: () => [...clients].map((c) => c.describe()),
    txn: () => txn?.manager ?? null,
    fences: () => fences,
    reload: () => reload(),
    pause: () => pause(),
    resume: () => {
      pools.resume();
      logger.info('pools resumed');
    },
    shutdown: () => void shutdown(),
  };

  // What every client session uses of the proxy: made once, not per connection (thousands of idle clients would each
  // hold its closures).
  const sessionDeps: SessionDeps = {
    pools,
    cancels,
    statementNames,
    logger,
    general: () => config.general,
    admin: () => config.admin,
    tlsContext: () => tlsContext,
    onClose: (s) => {
      clients.delete(s);
      const db = stats.find(s.database);
      if (db !== undefined) {
        const info = s.describe();
        db.closedClientBytesReceived += info.bytesReceived;
        db.closedClientBytesSent += info.bytesSent;
      }
    },
    routingFor: (database) => routing.get(database) ?? null,
    oneShardUniqueIds: oneShardIds,
    txn: () => txn?.manager ?? null,
    fences,
    deadlocks,
    openAdminConsole: (io, log) => new AdminConsole(adminContext, io, log),
  };

  const server = net.createServer({ noDelay: true }, (socket) => {
    if (phase !== 'running') {
      refusing.add(socket);
      socket.once('close', () => refusing.delete(socket));
      refuseConnection(socket, PgError.notAcceptingClients(), cancels);
      return;
    }
    const session = new ClientSession(socket, sessionDeps);
    clients.add(session);
  });
  server.maxConnections = 100_000;

  await new Promise<void>((resolve, reject) => {
    const onListenError = (err: Error): void => {
      void txn?.close();
      reject(err);
    };
    server.once('error', onListenError);
    server.listen({ host: config.general.host, port: config.general.port }, () => {
      server.removeListener('error', onListenError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err: err.message }, 'listener error'));

  let metrics: MetricsServer | null = null;
  if (config.general.openmetricsPort !== null) {
    const source: MetricsSource = {
      stats,
      clients: adminContext.clients,
      pools: () => pools.all(),
      txn: adminContext.txn,
      deadlocks: () => deadlocks.stats,
      fences: () => fences,
      planCaches: () =>
        [...routing].map(([database, r]) => ({
          database,
          stats: combinedStats(r.plans.stats(), r.literalPlans?.stats()),
        })),
      get isPaused() {
        return pools.paused;
      },
    };
    try {
      metrics = await startMetricsServer({
        host: config.general.host,
        port: config.general.openmetricsPort,
        registry: buildMetricsRegistry(source, config.general.openmetricsNamespace),
        logger,
      });
    } catch (err) {
      server.close();
      await txn?.close();
      throw new Error(`openmetrics_port ${config.general.openmetricsPort}: ${(err as Error).message}`);
    }
  }
  let health: HealthServer | null = null;
  if (config.general.healthcheckPort !== null) {
    try {
      health = await startHealthServer({
        host: config.general.host,
        port: config.general.healthcheckPort,
        pools: () => pools.all(),
        logger,
      });
    } catch (err) {
      server.close();
      await metrics?.close();
      await txn?.close();
      throw new Error(`healthcheck_port ${config.general.healthcheckPort}: ${(err as Error).message}`);
    }
  }
  const addr = server.address() as net.AddressInfo;
  logger.info({ host: addr.address, port: addr.port, tls: tlsContext !== null }, 'shardgate listening');

  function reload(): ReloadOutcome {
    if (phase !== 'running') return { ok: false, error: 'shardgate is shutting down' };
    const refuse = (error: string): ReloadOutcome => {
      logger.error({ err: error }, 'configuration reload refused; the running configuration is unchanged');
      return { ok: false, error };
    };
    let loaded: LoadedConfig;
    try {
      loaded = reloadSource();
    } catch (err) {
      return refuse((err as Error).message);
    }
    for (const w of loaded.warnings) logger.warn({ file: w.file, key: w.key }, w.message);
    const plan = planReload(config, loaded.config);
    let nextTls: tls.SecureContext | null;
    try {
      nextTls = loadTlsContext(plan.config);
    } catch (err) {
      return refuse(`TLS certificate or key: ${(err as Error).message}`);
    }
    config = plan.config;
    tlsContext = nextTls;
    pools.reconfigure(config);
    if (plan.changed.includes('general.log_level')) logger.level = config.general.logLevel;
    logger.info(
      { changed: plan.changed },
      plan.changed.length === 0 ? 'configuration reloaded: no change applies' : 'configuration reloaded',
    );
    for (const setting of plan.needsRestart) {
      logger.warn({ setting }, 'configuration change needs a restart; ignored until then');
    }
    return { ok: true, changed: plan.changed, needsRestart: plan.needsRestart };
  }

  async function pause(): Promise<void> {
    pools.pause();
    logger.info('pools paused: no server connection is handed out until RESUME');
    while (pools.paused && pools.activeCount() > 0) await sleep(POLL_MS);
  }

  let resolveStopped: (result: { isClean: boolean }) => void = () => undefined;
  const stopped = new Promise<{ isClean: boolean }>((resolve) => (resolveStopped = resolve));
  let shutdownRun: Promise<void> | null = null;

  /** Disconnect idle clients until none is left or time is up; clients in a transaction finish first. */
  async function drain(timeoutMs: number): Promise<void> {
    phase = 'draining';
    pools.refuseCheckouts(PgError.shuttingDown()); // checkouts waiting (also paused ones) fail now
    pools.resume();
    logger.info(
      { clients: clients.size, shutdownTimeoutMs: timeoutMs },
      'shutting down: refusing new clients, waiting for running transactions',
    );
    const deadline = Date.now() + timeoutMs;
    while (!isForced) {
      for (const c of [...clients]) {
        const activity = c.activity;
        if (activity === 'idle') c.fatal(PgError.shuttingDown());
        else if (activity === 'login') c.fatal(PgError.notAcceptingClients());
      }
      if (clients.size === 0 || Date.now() >= deadline) break;
      await sleep(POLL_MS);
    }
    if (clients.size > 0) {
      logger.warn(
        { clients: clients.size },
        isForced
          ? 'shutting down now: disconnecting clients still in a transaction'
          : 'shutdown_timeout reached: disconnecting clients still in a transaction',
      );
    }
  }

  /** Close the listener, every client and pool, the metrics endpoint and the decision log. */
  async function closeAll(): Promise<void> {
    phase = 'closed';
    let isClean = true;
    const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of [...clients]) c.fatal(PgError.shuttingDown());
    for (const s of refusing) s.destroy();
    pools.close();
    deadlocks.close();
    await listenerClosed;
    await metrics?.close();
    await health?.close();
    try {
      // Two-phase commits cut short here are in the decision log (or were never decided): recovery finishes them.
      await txn?.close();
    } catch (err) {
      isClean = false;
      logger.error({ err: (err as Error).message }, 'closing the two-phase commit decision log failed');
    }
    logger.info('shardgate stopped');
    resolveStopped({ isClean });
  }

  function shutdown(): Promise<void> {
    shutdownRun ??= drain(config.general.shutdownTimeoutMs).then(closeAll);
    return shutdownRun;
  }

  return {
    host: addr.address,
    port: addr.port,
    clients,
    pools,
    stats,
    txn: txn?.manager ?? null,
    deadlocks: deadlocks.stats,
    metricsPort: metrics?.port ?? null,
    healthPort: health?.port ?? null,
    config: () => config,
    reload,
    shutdown,
    async close(): Promise<void> {
      isForced = true;
      await shutdown();
    },
    stopped,
  };
}

/**
 * Routing state for every database with 2+ shards; loads the SQL parser only when one exists, or when a database has
 * replicas (the read/write split classifies requests: frontend/read-intent.ts).
 */
async function buildRouting(
  config: Config,
  generator: UniqueIdGenerator,
): Promise<Map<string, DatabaseRouting>> {
  const counts = new Map<string, number>();
  for (const d of config.databases) counts.set(d.name, Math.max(counts.get(d.name) ?? 0, d.shard + 1));
  const routing = new Map<string, DatabaseRouting>();
  const general = config.general;
  for (const [name, shardCount] of counts) {
    if (shardCount < 2) continue;
    let next = 0;
    // Views, temporary tables and functions that may write are learned from the shards' catalogs on first use.
    const schema = shardingSchemaFor(config, name);
    schema.catalog = new CatalogFacts();
    routing.set(name, {
      schema,
      plans: new PlanCache(general.queryCacheLimit, general.queryCacheSizeBytes),
      literalPlans: new PlanCache<StatementPlan | null>(general.queryCacheLimit, general.queryCacheSizeBytes),
      sequenceValues: new SequenceValues(),
      uniqueIds: {
        generator,
        calls: new PlanCache<UniqueIdCalls | null>(general.queryCacheLimit, general.queryCacheSizeBytes),
      },
      nextReadShard: () => {
        next = (next + 1) % shardCount;
        return next;
      },
      textCollation: UNKNOWN_COLLATION,
    });
  }
  if (routing.size > 0 || config.databases.some((d) => d.role !== 'primary')) await initParser();
  return routing;
}

/** One database's routing caches as one (the raw texts' plans and the literal-normalized ones). */
function combinedStats(a: PlanCacheStats, b: PlanCacheStats | undefined): PlanCacheStats {
  if (b === undefined) return a;
  return {
    hits: a.hits + b.hits,
    misses: a.misses + b.misses,
    evictions: a.evictions + b.evictions,
    size: a.size + b.size,
    capacity: a.capacity + b.capacity,
    bytes: a.bytes + b.bytes,
    maxBytes: a.maxBytes + b.maxBytes,
  };
}

const UNKNOWN_COLLATION = '(unknown: no shard has answered yet)';
const COLLATION_RETRY_MS = 30_000;

/**
 * Ask each sharded database's shards how text sorts there (see lifecycle/collation-probe.ts) before clients come; while no
 * shard answers, the merger refuses text ordering for that database, and the question is asked again every 30 s.
 */
async function learnCollations(
  config: () => Config,
  routing: Map<string, DatabaseRouting>,
  logger: Logger,
  isClosed: () => boolean,
): Promise<void> {
  const shards = new ConfigShardAccess(config);
  const learn = async (name: string, r: DatabaseRouting): Promise<void> => {
    const collation = await probeTextCollation(shards, name, logger);
    if (collation !== undefined) {
      r.textCollation = collation;
      if (collation !== null) {
        logger.info(
          { database: name, collation },
          'text does not sort by bytes in this database: cross-shard ORDER BY / min / max on text need COLLATE "C"',
        );
      }
      return;
    }
    logger.warn({ database: name }, 'no shard answered the collation probe; retrying in 30 s');
    setTimeout(() => {
      if (!isClosed()) void learn(name, r);
    }, COLLATION_RETRY_MS).unref();
  };
  await Promise.all([...routing].map(([name, r]) => learn(name, r)));
}
