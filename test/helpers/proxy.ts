// Test fixture: shardgate in-process in front of real PostgreSQL servers, configured through real TOML text.
import type { PgCluster, PgServer } from '../../src/testing/pg-cluster.js';
import { parseConfig } from '../../src/config/load.js';
import { startProxy, type RunningProxy } from '../../src/proxy.js';
import { createLogger, silentLogger, type Logger } from '../../src/logging/logger.js';

export const APP_USER = 'app';
export const APP_PASSWORD = 'app-secret';
export const APP_DB = 'app';

export interface TestProxyOptions {
  /** Extra `[general]` lines, e.g. `pooler_mode = "session"`. */
  general?: string;
  /** users.toml `[[users]]` extra lines for the app user, e.g. `pool_size = 2`. */
  userExtra?: string;
  /** Additional raw TOML appended to users.toml. */
  moreUsers?: string;
  /** Shards of `app` to expose (default: every server in the cluster). */
  shards?: number;
  /** Additional raw TOML appended to pgdog.toml, e.g. `[[sharded_tables]]` sections. */
  extraPgdog?: string;
  /** The `host` of each shard's `[[databases]]` entry (e.g. a socket directory); default: the server's address. */
  hostOf?: (server: PgServer, shard: number) => string;
  /** The environment the configuration is read with (e.g. `{ NODE_ID: 'shardgate-1' }`); default: the test's own. */
  env?: NodeJS.ProcessEnv;
}

export interface TestProxy {
  proxy: RunningProxy;
  port: number;
  /** A connection string for the app user through the proxy. */
  url: string;
  logger: Logger;
  /** The TOML text the proxy started from; what RELOAD reads (change it, then reload). */
  files: { pgdog: string; users: string };
  close(): Promise<void>;
}

export async function startTestProxy(cluster: PgCluster, opts: TestProxyOptions = {}): Promise<TestProxy> {
  const n = opts.shards ?? cluster.servers.length;
  const dbs = cluster.servers
    .slice(0, n)
    .map(
      (s, shard) =>
        `[[databases]]\nname = "${APP_DB}"\nhost = "${opts.hostOf?.(s, shard) ?? s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\n`,
    )
    .join('\n');
  const pgdog = `[general]\nhost = "127.0.0.1"\nport = 0\nlog_level = "${process.env.SHARDGATE_TEST_LOG ?? 'warn'}"\n${opts.general ?? ''}\n[admin]\npassword = "admin"\n\n${dbs}\n${opts.extraPgdog ?? ''}`;
  const users = `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${APP_PASSWORD}"\n${opts.userExtra ?? ''}\n${opts.moreUsers ?? ''}`;
  const files = { pgdog, users };
  const paths = { configPath: 'test-pgdog.toml', usersPath: 'test-users.toml' };
  const { config } = parseConfig(pgdog, users, paths, opts.env);
  const logger = process.env.SHARDGATE_TEST_LOG
    ? createLogger({ level: config.general.logLevel, format: 'text' })
    : silentLogger();
  const proxy = await startProxy(config, logger, {
    reloadConfig: () => parseConfig(files.pgdog, files.users, paths, opts.env),
  });
  return {
    proxy,
    port: proxy.port,
    url: `postgres://${APP_USER}:${APP_PASSWORD}@127.0.0.1:${proxy.port}/${APP_DB}`,
    logger,
    files,
    close: () => proxy.close(),
  };
}

/** Servers provisioned with the app user and database, the way startTestProxy expects them. */
export const APP_SERVER_OPTIONS = {
  authMethod: 'scram-sha-256' as const,
  users: [{ name: APP_USER, password: APP_PASSWORD }],
  databases: [APP_DB],
};
