// A tiny `--name value` / `--name=value` command-line parser for the benchmark scripts (no dependencies).

export interface OptionSpec {
  /** Default value; its type (number or string) is the option's type. */
  default: number | string;
  help: string;
  /** For numbers: smallest allowed value (default 1). */
  min?: number;
  /** For numbers: allow fractions (default: integers only). */
  isFraction?: boolean;
  /** For strings: allowed values. */
  choices?: readonly string[];
}

export type Parsed<S extends Record<string, OptionSpec>> = {
  [K in keyof S]: S[K]['default'] extends number ? number : string;
};

export function usage(script: string, specs: Record<string, OptionSpec>): string {
  const lines = [`usage: npx tsx ${script} [options]`, ''];
  for (const [name, spec] of Object.entries(specs)) {
    const choices = spec.choices ? ` (${spec.choices.join('|')})` : '';
    lines.push(
      `  --${name} <${typeof spec.default}>`.padEnd(30) + `${spec.help}${choices} [${spec.default}]`,
    );
  }
  return lines.join('\n');
}

export function parseArgs<S extends Record<string, OptionSpec>>(
  script: string,
  specs: S,
  argv = process.argv.slice(2),
): Parsed<S> {
  const out: Record<string, number | string> = {};
  for (const [name, spec] of Object.entries(specs)) out[name] = spec.default;
  const fail = (message: string): never => {
    process.stderr.write(`${message}\n\n${usage(script, specs)}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage(script, specs) + '\n');
      process.exit(0);
    }
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (m === null) fail(`unexpected argument: ${arg}`);
    const name = (m as RegExpExecArray)[1];
    const spec = specs[name];
    if (spec === undefined) fail(`unknown option --${name}`);
    let value = (m as RegExpExecArray)[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) fail(`--${name} needs a value`);
    }
    if (typeof spec.default === 'number') {
      const n = Number(value);
      const min = spec.min ?? 1;
      if (
        value.trim() === '' ||
        !Number.isFinite(n) ||
        (!spec.isFraction && !Number.isInteger(n)) ||
        n < min
      ) {
        fail(`--${name}: expected ${spec.isFraction ? 'a number' : 'an integer'} ≥ ${min}, got "${value}"`);
      }
      out[name] = n;
    } else {
      if (spec.choices && !spec.choices.includes(value)) {
        fail(`--${name}: expected one of ${spec.choices.join(', ')}, got "${value}"`);
      }
      out[name] = value;
    }
  }
  return out as Parsed<S>;
}
