// The running proxy: listens for clients, owns the pools, cancel keys and statement names, and shuts down cleanly.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { PoolManager } from './backend/pool-manager.js';
import { CancelRegistry } from './frontend/cancel-registry.js';
import { ClientSession } from './frontend/client-session.js';
import { StatementNames } from './frontend/prepared-statements.js';
import { PgError } from './errors/pg-error.js';
import { initParser } from './router/parser.js';
import { PlanCache } from './router/plan-cache.js';
import { shardingSchemaFor } from './sharding/schema-from-config.js';
import type { DatabaseRouting } from './frontend/session-router.js';
import { loadFailpointsFromEnv } from './txn/failpoints.js';
import type { TransactionManager } from './txn/manager.js';
import { startTransactionManager, type StartedTxn } from './txn/start.js';

export interface RunningProxy {
  host: string;
  port: number;
  /** Connected client sessions (for tests and the admin console). */
  readonly clients: ReadonlySet<ClientSession>;
  readonly pools: PoolManager;
  /** The two-phase commit transaction manager (null when two_phase_commit is off). */
  readonly txn: TransactionManager | null;
  close(): Promise<void>;
}

function loadTlsContext(config: Config): tls.SecureContext | null {
  const { tlsCertificate, tlsPrivateKey } = config.general;
  if (!tlsCertificate || !tlsPrivateKey) return null;
  return tls.createSecureContext({ cert: readFileSync(tlsCertificate), key: readFileSync(tlsPrivateKey) });
}

export async function startProxy(config: Config, logger: Logger): Promise<RunningProxy> {
  const pools = new PoolManager(config, logger);
  const cancels = new CancelRegistry();
  const statementNames = new StatementNames();
  const clients = new Set<ClientSession>();
  const tlsContext = loadTlsContext(config);
  const routing = await buildRouting(config);
  loadFailpointsFromEnv();
  const txn: StartedTxn | null = config.general.twoPhaseCommit
    ? await startTransactionManager(() => config, logger)
    : null;
  let isClosing = false;

  const server = net.createServer({ noDelay: true }, (socket) => {
    if (isClosing) {
      socket.end(PgError.shuttingDown().toBuffer());
      return;
    }
    const session = new ClientSession(socket, {
      pools,
      cancels,
      statementNames,
      logger,
      general: () => config.general,
      admin: () => config.admin,
      tlsContext: () => tlsContext,
      onClose: (s) => clients.delete(s),
      routingFor: (database) => routing.get(database) ?? null,
      txn: () => txn?.manager ?? null,
    });
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
  const addr = server.address() as net.AddressInfo;
  logger.info({ host: addr.address, port: addr.port, tls: tlsContext !== null }, 'shardgate listening');

  return {
    host: addr.address,
    port: addr.port,
    clients,
    pools,
    txn: txn?.manager ?? null,
    async close(): Promise<void> {
      if (isClosing) return;
      isClosing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of [...clients]) c.fatal(PgError.shuttingDown());
      pools.close();
      await closed;
      await txn?.close();
      logger.info('shardgate stopped');
    },
  };
}

/** Routing state for every database with 2+ shards; loads the SQL parser only when one exists. */
async function buildRouting(config: Config): Promise<Map<string, DatabaseRouting>> {
  const counts = new Map<string, number>();
  for (const d of config.databases) counts.set(d.name, Math.max(counts.get(d.name) ?? 0, d.shard + 1));
  const routing = new Map<string, DatabaseRouting>();
  for (const [name, shardCount] of counts) {
    if (shardCount < 2) continue;
    let next = 0;
    routing.set(name, {
      schema: shardingSchemaFor(config, name),
      plans: new PlanCache(),
      nextReadShard: () => {
        next = (next + 1) % shardCount;
        return next;
      },
    });
  }
  if (routing.size > 0) await initParser();
  return routing;
}
