// Logger construction: pino, JSON by default or human-readable text (pino-pretty), never logging secrets.
import { pino, type Logger } from 'pino';
import type { LogFormat, LogLevel } from '../config/types.js';

export type { Logger } from 'pino';

/** Keys whose values are never written to a log line, wherever they appear. */
const REDACT_PATHS = [
  'password',
  '*.password',
  'server_password',
  '*.server_password',
  'serverPassword',
  '*.serverPassword',
];

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go: a file descriptor (default 1 = stdout). */
  destinationFd?: number;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { app: 'shardgate' },
  };
  if (opts.format === 'text') {
    return pino(
      base,
      pino.transport({
        target: 'pino-pretty',
        options: {
          destination: opts.destinationFd ?? 1,
          colorize: false,
          translateTime: 'SYS:standard',
          ignore: 'pid,hostname,app',
        },
      }),
    );
  }
  return pino(base, pino.destination({ fd: opts.destinationFd ?? 1, sync: false }));
}

/** A logger that drops everything: for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
