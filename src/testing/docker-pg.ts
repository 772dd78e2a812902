// Fallback PostgreSQL servers in Docker (postgres:16 via testcontainers) when no local server binaries exist.
// testcontainers is not a dependency: it is imported dynamically and typed here by the few calls we make.
import { spawnSync } from 'node:child_process';
import type { PgServer } from './pg-cluster.js';

export const DOCKER_PG_IMAGE = 'postgres:16';
const CONTAINER_PORT = 5432;
const STARTUP_TIMEOUT_MS = 120_000;

/** The slice of testcontainers' API used here. */
interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

interface ContainerBuilder {
  withEnvironment(env: Record<string, string>): ContainerBuilder;
  withCommand(command: string[]): ContainerBuilder;
  withExposedPorts(...ports: number[]): ContainerBuilder;
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  withStartupTimeout(timeoutMs: number): ContainerBuilder;
  start(): Promise<StartedContainer>;
}

interface TestcontainersModule {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: string | RegExp, times?: number): unknown };
}

export interface DockerPgOptions {
  count: number;
  authMethod: 'trust' | 'md5' | 'scram-sha-256';
  superuserPassword: string;
  /** postgresql.conf settings, passed as `-c key=value`. */
  conf: Record<string, string>;
  log?: (line: string) => void;
}

export interface DockerPgServers {
  servers: PgServer[];
  stop(): Promise<void>;
}

/** True when a Docker engine answers (`docker info` exits 0 within a few seconds). */
export function isDockerAvailable(): boolean {
  try {
    const result = spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return result.status === 0;
  } catch {
    return false;
  }
}

function isTestcontainersModule(value: unknown): value is TestcontainersModule {
  if (typeof value !== 'object' || value === null) return false;
  const mod = value as Record<string, unknown>;
  return typeof mod.GenericContainer === 'function' && typeof mod.Wait === 'function';
}

async function loadTestcontainers(): Promise<TestcontainersModule> {
  // A variable specifier keeps TypeScript from requiring the (absent) type declarations.
  const specifier = 'testcontainers';
  let mod: unknown;
  try {
    mod = await import(specifier);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `No PostgreSQL server binaries were found, and a Docker engine is available, but the 'testcontainers' ` +
        `package is not installed (${why}). Run \`npm i -D testcontainers\`, or install PostgreSQL ` +
        `(apt-get install postgresql) or set PG_BINDIR.`,
    );
  }
  if (!isTestcontainersModule(mod))
    throw new Error(`'testcontainers' does not export GenericContainer and Wait`);
  return mod;
}

/** Start `count` postgres:16 containers in parallel; `stop()` removes them. */
export async function startDockerPg(opts: DockerPgOptions): Promise<DockerPgServers> {
  const tc = await loadTestcontainers();
  const command = ['postgres'];
  for (const [key, value] of Object.entries(opts.conf)) command.push('-c', `${key}=${value}`);
  const env: Record<string, string> = {
    POSTGRES_USER: 'postgres',
    POSTGRES_PASSWORD: opts.superuserPassword,
    POSTGRES_HOST_AUTH_METHOD: opts.authMethod,
    POSTGRES_INITDB_ARGS: `--auth-host=${opts.authMethod} --auth-local=trust -E UTF8 --locale=C`,
  };
  const started = await Promise.allSettled(
    Array.from({ length: opts.count }, () =>
      new tc.GenericContainer(DOCKER_PG_IMAGE)
        .withEnvironment(env)
        .withCommand(command)
        .withExposedPorts(CONTAINER_PORT)
        // The entrypoint runs a temporary server for initialization first: the second message is the real one.
        .withWaitStrategy(tc.Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .withStartupTimeout(STARTUP_TIMEOUT_MS)
        .start(),
    ),
  );
  const containers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = started.find((r) => r.status === 'rejected');
  const stop = async (): Promise<void> => {
    await Promise.allSettled(containers.map((c) => c.stop()));
  };
  if (failure !== undefined) {
    await stop();
    throw new Error(`starting ${DOCKER_PG_IMAGE} containers failed: ${String(failure.reason)}`);
  }
  const servers = containers.map((c): PgServer => {
    const host = c.getHost();
    return {
      host: host === 'localhost' ? '127.0.0.1' : host,
      port: c.getMappedPort(CONTAINER_PORT),
      dataDir: null,
      pid: null,
      superuser: 'postgres',
      superuserPassword: opts.superuserPassword,
    };
  });
  for (const s of servers) opts.log?.(`docker ${DOCKER_PG_IMAGE} listening on ${s.host}:${s.port}`);
  return { servers, stop };
}
