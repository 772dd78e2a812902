// Typed reading of one parsed TOML table: each read names the full key path on error, remembers
// which keys were used, and the leftovers become "unknown key" / "not supported yet" warnings.

import { ConfigError, type ConfigWarning } from './config-error.js';

export type TomlTable = Record<string, unknown>;

/** Keys whose values never appear in messages. */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  'password',
  'server_password',
  'passwords',
  'password_hash',
]);

export const UNSUPPORTED_MESSAGE = 'recognized PgDog setting, not supported yet; ignored';

export function isTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** `general` + `port` → `general.port`; keys that are not bare TOML keys are quoted. */
export function joinKey(prefix: string, key: string): string {
  const part = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
  return prefix === '' ? part : `${prefix}.${part}`;
}

/** What a value is, for "got ..." messages; the value itself is left out for secrets. */
export function describeValue(value: unknown, isSecret: boolean): string {
  const kind = kindOf(value);
  if (isSecret || kind === 'array' || kind === 'table') return kind;
  if (typeof value === 'string')
    return `${kind} ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${kind} ${String(value)}`;
}

function kindOf(value: unknown): string {
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return 'float';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (value instanceof Date) return 'date/time';
  if (Array.isArray(value)) return 'array';
  return 'table';
}

interface IntegerRule {
  min: number;
  max: number;
  /** Shown after "expected", e.g. "an integer port between 1 and 65535". */
  expected: string;
}

/** Reads the keys of one table (`[general]`, one `[[databases]]` entry, ...). */
export class SectionReader {
  private readonly usedKeys = new Set<string>();

  constructor(
    readonly file: string,
    /** Full key path of this table, e.g. `general` or `databases[0]`; '' for the document root. */
    readonly path: string,
    private readonly entries: TomlTable,
  ) {}

  keyPath(key: string): string {
    return joinKey(this.path, key);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.entries, key);
  }

  /** The raw value, marked as used. */
  raw(key: string): unknown {
    this.usedKeys.add(key);
    return this.entries[key];
  }

  /** A ConfigError at `key` of this table (at the table itself when key is null). */
  error(key: string | null, problem: string, expected: string | null): ConfigError {
    return new ConfigError(
      this.file,
      key === null ? this.path || null : this.keyPath(key),
      problem,
      expected,
    );
  }

  /** A ConfigError at a full key path given as is, e.g. `databases[2].shard`. */
  errorAt(keyPath: string, problem: string, expected: string | null): ConfigError {
    return new ConfigError(this.file, keyPath, problem, expected);
  }

  private wrongType(key: string, value: unknown, expected: string, keyPath = this.keyPath(key)): ConfigError {
    const problem = `got ${describeValue(value, SECRET_KEYS.has(key))}`;
    return new ConfigError(this.file, keyPath, problem, expected);
  }

  string(key: string, expected = 'a string'): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw this.wrongType(key, value, expected);
    return value;
  }

  /** A string that must be present and not empty. */
  requiredString(key: string, expected: string): string {
    const value = this.string(key, expected);
    if (value === undefined) throw this.error(key, 'missing', expected);
    if (value.trim() === '') throw this.error(key, 'empty', expected);
    return value;
  }

  /** A string that may be absent; an empty string counts as absent (as in PgDog for passwords). */
  optionalString(key: string, expected = 'a string'): string | null {
    const value = this.string(key, expected);
    return value === undefined || value === '' ? null : value;
  }

  integer(key: string, rule: IntegerRule): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'bigint') throw this.wrongType(key, value, rule.expected);
    if (value < BigInt(rule.min) || value > BigInt(rule.max)) {
      throw this.error(key, `${value} is out of range`, rule.expected);
    }
    return Number(value);
  }

  boolean(key: string): boolean | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw this.wrongType(key, value, 'true or false');
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const expected = `one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
    const value = this.string(key, expected);
    if (value === undefined) return undefined;
    const match = allowed.find((candidate) => candidate === value);
    if (match === undefined) throw this.error(key, `${JSON.stringify(value)} is not allowed`, expected);
    return match;
  }

  /** A sub-table (`[general]`), or undefined when absent. */
  table(key: string): TomlTable | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (!isTable(value)) throw this.wrongType(key, value, `a table ([${key}])`);
    return value;
  }

  /** An array of tables (`[[databases]]`); absent → []. */
  tables(key: string): TomlTable[] {
    const value = this.raw(key);
    if (value === undefined) return [];
    const expected = `an array of tables ([[${key}]])`;
    if (!Array.isArray(value)) throw this.wrongType(key, value, expected);
    value.forEach((entry: unknown, index) => {
      if (!isTable(entry)) throw this.wrongType(key, entry, expected, `${this.keyPath(key)}[${index}]`);
    });
    return value as TomlTable[];
  }

  /**
   * Warnings for the keys nobody read: PgDog keys we don't implement get UNSUPPORTED_MESSAGE,
   * anything else "unknown key" with a close supported key as suggestion.
   */
  warnAboutUnusedKeys(unsupported: ReadonlySet<string>, supported: readonly string[]): ConfigWarning[] {
    return Object.keys(this.entries)
      .filter((key) => !this.usedKeys.has(key))
      .map((key) => ({
        file: this.file,
        key: this.keyPath(key),
        message: unsupported.has(key) ? UNSUPPORTED_MESSAGE : unknownKeyMessage(key, supported),
      }));
  }
}

function unknownKeyMessage(key: string, supported: readonly string[]): string {
  const closest = supported
    .map((candidate) => ({ candidate, distance: editDistance(key, candidate) }))
    .filter(({ distance }) => distance <= 2)
    .sort((a, b) => a.distance - b.distance)[0];
  return closest === undefined ? 'unknown key' : `unknown key (did you mean "${closest.candidate}"?)`;
}

/** Levenshtein distance; keys are short, so the simple table is fine. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}
