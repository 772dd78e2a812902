// PostgreSQL servers in Docker containers through testcontainers: the fallback when no local server binaries exist
// (pg-cluster.ts), and what the Docker tests start. testcontainers (a devDependency) is imported only when a
// container is really wanted, so starting the proxy, the demo or the tests on local binaries never loads it.
import process from 'node:process';
import type { GenericContainer, StartedTestContainer } from 'testcontainers';
import {
  findDockerEndpoint,
  machineContext,
  noDockerEndpointReason,
  type DockerEndpoint,
} from './docker-engine.js';
import {
  clusterConf,
  SUPERUSER,
  type AuthMethod,
  type PgCluster,
  type PgServer,
  type StartClusterOptions,
} from './pg-server.js';
import { newSuperuserPassword, provisionServer } from './provision.js';

export const DEFAULT_DOCKER_PG_IMAGE = 'postgres:16';
const CONTAINER_PORT = 5432;
const STARTUP_TIMEOUT_MS = 120_000;
const HEALTH_INTERVAL_MS = 250;

type Testcontainers = typeof import('testcontainers');

/** Everything a container is started with: built without testcontainers, so it can be checked on its own. */
export interface DockerPgSpec {
  image: string;
  environment: Record<string, string>;
  command: string[];
  exposedPort: number;
  /** The readiness check Docker runs inside the container (exec form). */
  healthCheck: { test: ['CMD', ...string[]]; interval: number; timeout: number; retries: number };
  startupTimeoutMs: number;
}

export interface DockerPgSpecOptions {
  authMethod: AuthMethod;
  superuserPassword: string;
  /** postgresql.conf settings (clusterConf), passed as `-c key=value`. */
  conf: Record<string, string>;
  /** Default: $SHARDGATE_PG_DOCKER_IMAGE, else postgres:16. */
  image?: string;
}

/** The image to run: `image`, else $SHARDGATE_PG_DOCKER_IMAGE, else postgres:16. */
export function dockerPgImage(image?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (image !== undefined && image !== '') return image;
  const fromEnv = env.SHARDGATE_PG_DOCKER_IMAGE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_DOCKER_PG_IMAGE;
}

export function dockerPgSpec(opts: DockerPgSpecOptions): DockerPgSpec {
  const command = ['postgres'];
  for (const [key, value] of Object.entries(opts.conf)) command.push('-c', `${key}=${value}`);
  return {
    image: dockerPgImage(opts.image),
    environment: {
      POSTGRES_USER: SUPERUSER,
      POSTGRES_PASSWORD: opts.superuserPassword,
      // pg_hba.conf: TCP connections (all the tests make) use the requested method; the socket inside trusts.
      POSTGRES_HOST_AUTH_METHOD: opts.authMethod,
      POSTGRES_INITDB_ARGS: `--auth-host=${opts.authMethod} --auth-local=trust -E UTF8 --locale=C`,
    },
    command,
    exposedPort: CONTAINER_PORT,
    healthCheck: {
      // The image's entrypoint first runs a temporary server for initialization that listens on no TCP port:
      // only the real server answers on 127.0.0.1, so "healthy" means the final server is up (also after restart).
      test: ['CMD', 'pg_isready', '-q', '-h', '127.0.0.1', '-p', String(CONTAINER_PORT), '-U', SUPERUSER],
      interval: HEALTH_INTERVAL_MS,
      timeout: 5_000,
      retries: Math.ceil(STARTUP_TIMEOUT_MS / HEALTH_INTERVAL_MS),
    },
    startupTimeoutMs: STARTUP_TIMEOUT_MS,
  };
}

/** Load testcontainers; a clear error when it is not installed (an install without devDependencies). */
async function loadTestcontainers(): Promise<Testcontainers> {
  try {
    return await import('testcontainers');
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `the 'testcontainers' package could not be loaded (${why}): it is a devDependency of shardgate, so ` +
        `run \`npm ci\` in the repository (or \`npm install testcontainers\` where shardgate is installed)`,
    );
  }
}

export type DockerEngineProbe =
  | { isAvailable: true; endpoint: DockerEndpoint; serverVersion: string }
  | { isAvailable: false; reason: string };

/**
 * Does a Docker engine answer? Without an endpoint to try (docker-engine.ts) the answer is no and testcontainers is
 * not loaded; with one, testcontainers connects to it and asks for its version.
 */
export async function probeDockerEngine(): Promise<DockerEngineProbe> {
  const ctx = machineContext();
  const endpoint = findDockerEndpoint(ctx);
  if (endpoint === null) return { isAvailable: false, reason: noDockerEndpointReason(ctx) };
  try {
    const tc = await loadTestcontainers();
    const client = await tc.getContainerRuntimeClient();
    return { isAvailable: true, endpoint, serverVersion: String(client.info.containerRuntime.serverVersion) };
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return {
      isAvailable: false,
      reason: `no Docker engine answered at ${endpoint.uri} (${endpoint.source}): ${why}`,
    };
  }
}

function containerFor(tc: Testcontainers, spec: DockerPgSpec): GenericContainer {
  return new tc.GenericContainer(spec.image)
    .withEnvironment(spec.environment)
    .withCommand(spec.command)
    .withExposedPorts(spec.exposedPort)
    .withHealthCheck(spec.healthCheck)
    .withWaitStrategy(tc.Wait.forHealthCheck())
    .withStartupTimeout(spec.startupTimeoutMs);
}

function serverOf(container: StartedTestContainer, superuserPassword: string): PgServer {
  const host = container.getHost();
  return {
    host: host === 'localhost' ? '127.0.0.1' : host,
    port: container.getMappedPort(CONTAINER_PORT),
    dataDir: null,
    pid: null,
    superuser: SUPERUSER,
    superuserPassword,
  };
}

/**
 * Start `count` containers in parallel, each with the requested users and databases. stop() removes them
 * (testcontainers' reaper also removes them if this process dies); restart(i) restarts container i in place.
 */
export async function startDockerCluster(opts: StartClusterOptions & { image?: string }): Promise<PgCluster> {
  const probe = await probeDockerEngine();
  if (!probe.isAvailable) throw new Error(probe.reason);
  const tc = await loadTestcontainers();
  const t0 = Date.now();
  const authMethod = opts.authMethod ?? 'scram-sha-256';
  const superuserPassword = newSuperuserPassword();
  const spec = dockerPgSpec({
    authMethod,
    superuserPassword,
    conf: clusterConf(authMethod, opts.extraConf),
    image: opts.image,
  });
  const started = await Promise.allSettled(
    Array.from({ length: opts.count }, () => containerFor(tc, spec).start()),
  );
  const containers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  let isStopped = false;
  const stop = async (): Promise<void> => {
    if (isStopped) return;
    isStopped = true;
    await Promise.allSettled(containers.map((c) => c.stop()));
  };
  const failure = started.find((r) => r.status === 'rejected');
  if (failure !== undefined) {
    await stop();
    throw new Error(`starting ${spec.image} containers failed: ${String(failure.reason)}`);
  }
  const servers = containers.map((c) => serverOf(c, superuserPassword));
  try {
    await Promise.all(
      servers.map((s) => provisionServer(s, { authMethod, users: opts.users, databases: opts.databases })),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  opts.log?.(
    `started ${opts.count} ${spec.image} container(s) on Docker ${probe.serverVersion} (${probe.endpoint.uri}) ` +
      `in ${Date.now() - t0} ms: ${servers.map((s) => `${s.host}:${s.port}`).join(', ')}`,
  );
  return {
    servers,
    stop,
    restart: async (index: number) => {
      const container = containers[index];
      if (container === undefined)
        throw new Error(`no server ${index} in this cluster of ${containers.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      await container.restart();
      // The host port can change when the container restarts.
      servers[index].port = container.getMappedPort(CONTAINER_PORT);
    },
  };
}
