// Configuration problems: ConfigError (refuses startup) and ConfigWarning (logged, startup continues).
// Both name the file and the full key path so the operator can find the line to fix.

/** A setting that was accepted but deserves attention (unknown key, unsupported PgDog key, ...). */
export interface ConfigWarning {
  file: string;
  /** Full key path, e.g. `general.prot` or `databases[1].read_only`. */
  key: string;
  message: string;
}

/** Where in the TOML text a syntax error was found (1-based). */
export interface TextPosition {
  line: number;
  column: number;
}

/**
 * A configuration shardgate refuses to start with. The message is one line:
 * `${file}: ${key}: ${problem}, expected ${expected}` (key and expected are left out when null).
 */
export class ConfigError extends Error {
  readonly file: string;
  readonly key: string | null;
  readonly expected: string | null;
  /** What is wrong, without file/key/expected (the message is built from the four parts). */
  readonly problem: string;
  /** Set for TOML syntax errors only. */
  readonly line: number | null;
  readonly column: number | null;

  constructor(file: string, key: string | null, problem: string, expected: string | null, at?: TextPosition) {
    super(formatProblem(file, key, problem, expected));
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
    this.problem = problem;
    this.expected = expected;
    this.line = at?.line ?? null;
    this.column = at?.column ?? null;
  }
}

function formatProblem(file: string, key: string | null, problem: string, expected: string | null): string {
  const where = key === null ? file : `${file}: ${key}`;
  const line = expected === null ? `${where}: ${problem}` : `${where}: ${problem}, expected ${expected}`;
  return line.replace(/[\r\n]+/g, ' ');
}

/** One log line for a warning: `pgdog.toml: general.prot: unknown key`. */
export function formatConfigWarning(warning: ConfigWarning): string {
  return `${warning.file}: ${warning.key}: ${warning.message}`;
}
