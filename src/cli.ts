#!/usr/bin/env node
// Command-line entry point: run the proxy, check a configuration, or start the throwaway demo.
import process from 'node:process';
import { Command } from 'commander';
import { loadConfig } from './config/load.js';
import { ConfigError } from './config/config-error.js';
import { formatEffectiveConfig } from './config/format.js';
import { createLogger } from './logging/logger.js';
import { startProxy } from './proxy.js';

function fail(message: string): never {
  process.stderr.write(`shardgate: ${message}\n`);
  process.exit(1);
}

function load(opts: { config: string; users: string }) {
  try {
    const { config, warnings } = loadConfig({ configPath: opts.config, usersPath: opts.users });
    return { config, warnings };
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    fail((err as Error).message);
  }
}

/** Resolves once the log destination has written what it holds (or after 1 s, if it never confirms). */
function flushLog(logger: ReturnType<typeof createLogger>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    logger.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function run(opts: { config: string; users: string }): Promise<void> {
  const { config, warnings } = load(opts);
  const logger = createLogger({ level: config.general.logLevel, format: config.general.logFormat });
  for (const w of warnings) logger.warn({ file: w.file, key: w.key }, w.message);
  let proxy;
  try {
    proxy = await startProxy(config, logger);
  } catch (err) {
    // What start-up logged (e.g. the instance lock's refusal) is written before the exit: Node flushes pino's
    // asynchronous destination at exit by itself, Bun does not.
    await flushLog(logger);
    fail(`cannot start: ${(err as Error).message}`);
  }
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'shutting down (send the signal again to stop at once)');
      void proxy.shutdown();
    } else {
      logger.warn({ signal }, 'second signal: stopping at once');
      void proxy.close();
    }
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the configuration');
    proxy.reload();
  });
  // However the proxy stops (signal, admin SHUTDOWN), the process ends with it.
  void proxy.stopped.then(({ isClean }) => {
    const exit = (): never => process.exit(isClean ? 0 : 1);
    setTimeout(exit, 1_000).unref(); // in case the log destination never confirms the flush
    logger.flush(exit);
  });
}

const program = new Command();
program
  .name('shardgate')
  .description(
    'PostgreSQL wire-protocol sharding proxy with automatic two-phase commit (PgDog-compatible configuration).',
  )
  .option(
    '-c, --config <path>',
    'pgdog.toml: [general], [[databases]], [admin], sharding settings',
    'pgdog.toml',
  )
  .option(
    '-u, --users <path>',
    'users.toml: [[users]] who may connect, their passwords and pool sizes',
    'users.toml',
  )
  .action(async (opts: { config: string; users: string }) => run(opts));

program
  .command('check-config')
  .description(
    'Validate pgdog.toml and users.toml, print warnings and the effective configuration, and exit (1 on error).',
  )
  .action(() => {
    const opts = program.opts<{ config: string; users: string }>();
    const { config, warnings } = load(opts);
    for (const w of warnings) process.stderr.write(`warning: ${w.file}: ${w.key}: ${w.message}\n`);
    process.stdout.write(formatEffectiveConfig(config));
  });

program
  .command('demo')
  .description(
    'Start two throwaway local PostgreSQL shards and the proxy on them (no configuration needed); Ctrl-C stops and removes everything.',
  )
  .option('-p, --port <port>', 'proxy port', '6432')
  .action(async (opts: { port: string }) => {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      fail(`--port: expected an integer 0..65535, got "${opts.port}"`);
    const { runDemo } = await import('./demo/demo.js');
    await runDemo({ port });
  });

program.parseAsync(process.argv).catch((err: unknown) => fail((err as Error).message));
