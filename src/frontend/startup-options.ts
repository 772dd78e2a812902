// The settings a client's startup packet asks for, read as PostgreSQL reads them: the `options` parameter is split
// like pg_split_opts (whitespace separates words, a backslash takes the next character literally) and read like
// process_postgres_switches (`-c name=value`, `--name=value`, and the one-letter switches that stand for a setting),
// then every other parameter but user, database, options, replication and the `_pq_.` protocol options, in packet
// order — options first, as process_startup_options applies them. Pure: the server judges names and values.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

export interface StartupSetting {
  /** As the client wrote it (PostgreSQL looks names up case-insensitively). */
  readonly name: string;
  readonly value: string;
}

export interface StartupSettings {
  /** In the order PostgreSQL applies them. */
  readonly settings: StartupSetting[];
  /**
   * A switch in `options` PostgreSQL refuses (FATAL 42601). PostgreSQL applies the settings before it first, so one
   * of those may fail instead: the caller checks them, then reports this.
   */
  readonly error: PgError | null;
}

/** Startup parameters that are not settings (postmaster.c ProcessStartupPacket). */
const NOT_SETTINGS = new Set(['user', 'database', 'options', 'replication']);
const PROTOCOL_OPTION_PREFIX = '_pq_.';

/** The client's startup settings: `options` first, then the other parameters in packet order. */
export function readStartupSettings(params: ReadonlyMap<string, string>): StartupSettings {
  const options = params.get('options');
  const fromOptions = options === undefined ? { settings: [], error: null } : readOptions(options);
  const settings = fromOptions.settings;
  if (fromOptions.error === null) {
    for (const [name, value] of params) {
      if (!NOT_SETTINGS.has(name) && !name.startsWith(PROTOCOL_OPTION_PREFIX)) settings.push({ name, value });
    }
  }
  return { settings, error: fromOptions.error };
}

/** C's isspace() in the C locale. */
function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

/** pg_split_opts: words separated by whitespace; a backslash makes the next character (space, backslash) literal. */
export function splitOptions(options: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < options.length) {
    while (i < options.length && isSpace(options[i])) i++;
    if (i >= options.length) break;
    let word = '';
    let isEscaped = false;
    for (; i < options.length; i++) {
      const ch = options[i];
      if (isSpace(ch) && !isEscaped) break;
      if (!isEscaped && ch === '\\') isEscaped = true;
      else {
        isEscaped = false;
        word += ch;
      }
    }
    words.push(word);
  }
  return words;
}

/** Switches that take an argument (postgres.c's getopt string), and those that do not. */
const WITH_ARGUMENT = new Set('BCcDdfhkNprStvW-');
const WITHOUT_ARGUMENT = new Set('bEeFijlnOPsT');

/** Switches that set one setting to their argument. */
const ARGUMENT_SETTINGS: Readonly<Record<string, string>> = {
  B: 'shared_buffers',
  h: 'listen_addresses',
  k: 'unix_socket_directories',
  N: 'max_connections',
  p: 'port',
  S: 'work_mem',
  W: 'post_auth_delay',
};

/** Switches that set one setting to a fixed value. */
const FLAG_SETTINGS: Readonly<Record<string, StartupSetting>> = {
  e: { name: 'datestyle', value: 'euro' },
  F: { name: 'fsync', value: 'false' },
  i: { name: 'listen_addresses', value: '*' },
  l: { name: 'ssl', value: 'true' },
  O: { name: 'allow_system_table_mods', value: 'true' },
  P: { name: 'ignore_system_indexes', value: 'true' },
  s: { name: 'log_statement_stats', value: 'true' },
};

/** -f: the plan type to disable, by its first letter (set_plan_disabling_options). */
const PLAN_TYPES: Readonly<Record<string, string>> = {
  s: 'enable_seqscan',
  i: 'enable_indexscan',
  o: 'enable_indexonlyscan',
  b: 'enable_bitmapscan',
  t: 'enable_tidscan',
  n: 'enable_nestloop',
  m: 'enable_mergejoin',
  h: 'enable_hashjoin',
};

function invalidArgument(word: string): PgError {
  return new PgError(
    'FATAL',
    SqlState.SyntaxError,
    `invalid command-line argument for server process: ${word}`,
    undefined,
    'Try "postgres --help" for more information.',
  );
}

/**
 * The settings of an `options` string, read as process_postgres_switches reads a client's switches (glibc getopt:
 * words that are not switches are set aside and refused at the end; `--` ends the switches). Switches that only a
 * server's own command line may use are ignored, as PostgreSQL ignores them from a client.
 */
export function readOptions(options: string): StartupSettings {
  const words = splitOptions(options);
  const settings: StartupSetting[] = [];
  let stray: string | null = null;
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    if (word === '--') {
      stray ??= words[w + 1] ?? null;
      break;
    }
    if (word.length < 2 || word[0] !== '-') {
      stray ??= word;
      continue;
    }
    for (let c = 1; c < word.length; c++) {
      const flag = word[c];
      if (WITHOUT_ARGUMENT.has(flag)) {
        const fixed = FLAG_SETTINGS[flag];
        if (fixed !== undefined) settings.push(fixed);
        continue;
      }
      if (!WITH_ARGUMENT.has(flag)) return { settings, error: invalidArgument(word) };
      // The argument is the rest of this word, else the next word.
      let argument: string;
      if (c + 1 < word.length) argument = word.slice(c + 1);
      else if (w + 1 < words.length) argument = words[++w];
      else return { settings, error: invalidArgument(word) };
      const error = applySwitch(flag, argument, settings);
      if (error !== null) return { settings, error: error === 'invalid' ? invalidArgument(word) : error };
      break;
    }
  }
  return { settings, error: stray === null ? null : invalidArgument(stray) };
}

/** One switch with its argument, added to `settings`; a refusal otherwise ('invalid': the switch's word is named). */
function applySwitch(flag: string, argument: string, settings: StartupSetting[]): PgError | 'invalid' | null {
  const name = ARGUMENT_SETTINGS[flag];
  if (name !== undefined) {
    settings.push({ name, value: argument });
    return null;
  }
  switch (flag) {
    case 'c':
    case '-':
      return applyLongOption(flag, argument, settings);
    case 'd':
      settings.push(...debugSettings(leadingInt(argument)));
      return null;
    case 'f': {
      const plan = PLAN_TYPES[argument[0] ?? ''];
      if (plan === undefined) return 'invalid';
      settings.push({ name: plan, value: 'false' });
      return null;
    }
    case 't': {
      const stats = statsSetting(argument);
      if (stats === null) return 'invalid';
      settings.push({ name: stats, value: 'true' });
      return null;
    }
    default:
      return null; // C, D, r, v: a server's own command line only, ignored from a client
  }
}

/** `-c name=value` / `--name=value` (ParseLongOption: dashes in the name become underscores). */
function applyLongOption(flag: string, argument: string, settings: StartupSetting[]): PgError | null {
  const eq = argument.indexOf('=');
  if (eq < 0) {
    const message = flag === '-' ? `--${argument} requires a value` : `-c ${argument} requires a value`;
    return new PgError('FATAL', SqlState.SyntaxError, message);
  }
  settings.push({ name: argument.slice(0, eq).replace(/-/g, '_'), value: argument.slice(eq + 1) });
  return null;
}

/** C's atoi: the leading (signed) decimal integer, 0 when there is none. */
function leadingInt(text: string): number {
  const m = /^\s*([+-]?\d+)/.exec(text);
  return m === null ? 0 : Number.parseInt(m[1], 10);
}

/** -d level (set_debug_options, from a client). */
function debugSettings(level: number): StartupSetting[] {
  const out: StartupSetting[] = [{ name: 'log_min_messages', value: level > 0 ? `debug${level}` : 'notice' }];
  if (level >= 2) out.push({ name: 'log_statement', value: 'all' });
  if (level >= 3) out.push({ name: 'debug_print_parse', value: 'true' });
  if (level >= 4) out.push({ name: 'debug_print_plan', value: 'true' });
  if (level >= 5) out.push({ name: 'debug_print_rewritten', value: 'true' });
  return out;
}

/** -t pa[rser] / pl[anner] / e[xecutor] (get_stats_option_name). */
function statsSetting(argument: string): string | null {
  if (argument[0] === 'p') {
    if (argument[1] === 'a') return 'log_parser_stats';
    if (argument[1] === 'l') return 'log_planner_stats';
    return null;
  }
  return argument[0] === 'e' ? 'log_executor_stats' : null;
}

/**
 * The statement applying one setting on a server as the startup packet would: set_config takes the value as the
 * startup packet gives it (a SET would quote a list such as search_path as one element). An E'' literal reads the
 * same whatever the server's standard_conforming_strings.
 */
export function setConfigSql(name: string, value: string): string {
  return `SELECT pg_catalog.set_config(${escapeLiteral(name)}, ${escapeLiteral(value)}, false)`;
}

/** A string literal that reads the same whatever the server's standard_conforming_strings. */
export function escapeLiteral(text: string): string {
  return `E'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
