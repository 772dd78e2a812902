// Shared fixtures for the config tests: minimal valid files and a helper that captures ConfigError.
import { ConfigError } from '../../../src/config/config-error.js';
import { parseConfig } from '../../../src/config/load.js';

export const PATHS = { configPath: 'pgdog.toml', usersPath: 'users.toml' };

export const MINIMAL_PGDOG = `
[admin]
password = "secret-admin"

[[databases]]
name = "prod"
host = "127.0.0.1"
`;

export const MINIMAL_USERS = `
[[users]]
name = "alice"
database = "prod"
password = "hunter2"
`;

/** `env`: the environment the configuration is read with (NODE_ID); none by default, whatever the test runner has. */
export function parse(pgdogToml: string, usersToml = MINIMAL_USERS, env: NodeJS.ProcessEnv = {}) {
  return parseConfig(pgdogToml, usersToml, PATHS, env);
}

/** Runs parseConfig and returns the ConfigError it must throw. */
export function parseError(
  pgdogToml: string,
  usersToml = MINIMAL_USERS,
  env: NodeJS.ProcessEnv = {},
): ConfigError {
  try {
    parse(pgdogToml, usersToml, env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

/** pgdog.toml with a [general] section holding `lines`, plus the minimal rest. */
export function withGeneral(lines: string): string {
  return `[general]\n${lines}\n${MINIMAL_PGDOG}`;
}
