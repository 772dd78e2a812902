// loadConfig: file errors are clear ConfigErrors; TLS paths resolve next to pgdog.toml and must be readable.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/config-error.js';
import { loadConfig } from '../../../src/config/load.js';
import { MINIMAL_PGDOG, MINIMAL_USERS } from './helpers.js';

function loadError(paths: { configPath: string; usersPath: string }): ConfigError {
  try {
    loadConfig(paths);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shardgate-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it('reads both files and returns absolute paths', () => {
    const configPath = write('pgdog.toml', MINIMAL_PGDOG);
    const usersPath = write('users.toml', MINIMAL_USERS);
    const { config, warnings } = loadConfig({ configPath, usersPath });
    expect(warnings).toEqual([]);
    expect(config.configPath).toBe(configPath);
    expect(config.usersPath).toBe(usersPath);
    expect(config.users[0].name).toBe('alice');
  });

  it('gives a clear error for a missing pgdog.toml', () => {
    const configPath = join(dir, 'nope.toml');
    const error = loadError({ configPath, usersPath: write('users.toml', MINIMAL_USERS) });
    expect(error.file).toBe(configPath);
    expect(error.key).toBeNull();
    expect(error.message).toBe(
      `${configPath}: cannot read the file (file not found), expected a readable TOML file`,
    );
  });

  it('gives a clear error for a missing users.toml', () => {
    const usersPath = join(dir, 'users.toml');
    const error = loadError({ configPath: write('pgdog.toml', MINIMAL_PGDOG), usersPath });
    expect(error.file).toBe(usersPath);
    expect(error.message).toContain('file not found');
  });

  it('gives a clear error when the path is a directory', () => {
    const error = loadError({ configPath: dir, usersPath: write('users.toml', MINIMAL_USERS) });
    expect(error.message).toContain('directory');
  });

  it('ignores a byte order mark', () => {
    const configPath = write('pgdog.toml', `\uFEFF${MINIMAL_PGDOG}`);
    expect(
      loadConfig({ configPath, usersPath: write('users.toml', MINIMAL_USERS) }).config.databases,
    ).toHaveLength(1);
  });

  it('resolves TLS files relative to pgdog.toml', () => {
    write('cert.pem', 'CERT');
    write('key.pem', 'KEY');
    const configPath = write(
      'pgdog.toml',
      `[general]\ntls_certificate = "cert.pem"\ntls_private_key = "./key.pem"\n${MINIMAL_PGDOG}`,
    );
    const { config } = loadConfig({ configPath, usersPath: write('users.toml', MINIMAL_USERS) });
    expect(config.general.tlsCertificate).toBe(join(dir, 'cert.pem'));
    expect(config.general.tlsPrivateKey).toBe(join(dir, 'key.pem'));
  });

  it('refuses an unreadable TLS file, naming the key', () => {
    write('cert.pem', 'CERT');
    const configPath = write(
      'pgdog.toml',
      `[general]\ntls_certificate = "cert.pem"\ntls_private_key = "missing.pem"\n${MINIMAL_PGDOG}`,
    );
    const error = loadError({ configPath, usersPath: write('users.toml', MINIMAL_USERS) });
    expect(error.file).toBe(configPath);
    expect(error.key).toBe('general.tls_private_key');
    expect(error.message).toContain(join(dir, 'missing.pem'));
    expect(error.message).toContain('file not found');
  });
});
