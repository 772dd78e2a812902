// Session parameters kept in step between a client and whichever server it is given. Tracked parameters (PgBouncer's
// set, all reported by ParameterStatus): the client's wanted values come from its startup packet and every
// ParameterStatus it receives; a server whose values differ gets a SET before the client's request. The client's other
// startup settings (`options`, statement_timeout, search_path, custom `some.var` …) are kept as the statements that
// apply them, keyed by lower-case name like the session's SETs (session-settings.ts), and replayed on every server the
// session uses; the ParameterStatus values the client is told at login are the server's own spelling of them.
// `default_transaction_read_only` is tracked too (PostgreSQL 14+ reports it): SET, SET SESSION CHARACTERISTICS, RESET
// and a startup `-c default_transaction_read_only=on` all end in its ParameterStatus, so every server a session is
// given starts its transactions as the client's would, and the read/write split knows the session's default.
import { parameterStatuses } from '../protocol/messages.js';
import { setConfigSql, type StartupSetting } from './startup-options.js';

const TRACKED_PARAMS = [
  'client_encoding',
  'DateStyle',
  'TimeZone',
  'IntervalStyle',
  'application_name',
  'standard_conforming_strings',
  'default_transaction_read_only',
];
/** A tracked parameter's index in TRACKED_PARAMS: by its ParameterStatus name, and by its lower-case name. */
const TRACKED_INDEX = new Map(TRACKED_PARAMS.map((p, i) => [p, i]));
const TRACKED_BY_LOWER = new Map(TRACKED_PARAMS.map((p, i) => [p.toLowerCase(), i]));
const READ_ONLY_INDEX = TRACKED_PARAMS.indexOf('default_transaction_read_only');

/** The ParameterStatus name of a tracked parameter (any case), or undefined. */
export function trackedName(name: string): string | undefined {
  const i = TRACKED_BY_LOWER.get(name.toLowerCase());
  return i === undefined ? undefined : TRACKED_PARAMS[i];
}

/**
 * Login ParameterStatus frames built from a map of server values (a pool's serverParams, replaced when the values
 * change: its entry goes with the old map), by the client choices that differ from those values ('' for none): the
 * clients that are told the same values share one Buffer. At most CHOICES_CACHED_MAX per map; past it, starts over.
 */
const sharedFrames = new WeakMap<ReadonlyMap<string, string>, Map<string, Buffer>>();
const CHOICES_CACHED_MAX = 256;

/** Startup settings of a client that gave none: shared, never written (an idle client holds no map of its own). */
const NO_SETTINGS: ReadonlyMap<string, string> = new Map();

export class SessionParams {
  /**
   * Wanted value per tracked parameter, at its index in TRACKED_PARAMS (undefined: none wanted). A fixed array rather
   * than a Map: a Map's hash table is a few hundred bytes an idle client would keep, and syncSql, run at every server
   * checkout, walks these slots without allocating.
   */
  private readonly values: (string | undefined)[] = new Array<string | undefined>(TRACKED_PARAMS.length);
  /**
   * The client's startup settings other than tracked parameters: lower-case name → the statement applying the value
   * (set_config, as the startup packet gives values). Empty for most clients (then the shared empty map).
   */
  private ownSettings: ReadonlyMap<string, string> = NO_SETTINGS;
  /** ParameterStatus values a server reported for the client's startup settings, by ParameterStatus name. */
  private reported: ReadonlyMap<string, string> = NO_SETTINGS;

  /** The client's startup settings other than tracked parameters (lower-case name → set_config statement). */
  get settings(): ReadonlyMap<string, string> {
    return this.ownSettings;
  }

  /** The value wanted for tracked parameter `name` (its ParameterStatus name), or undefined. */
  wantedValue(name: string): string | undefined {
    const i = TRACKED_INDEX.get(name);
    return i === undefined ? undefined : this.values[i];
  }

  /** The wanted values as [ParameterStatus name, value] pairs, in TRACKED_PARAMS order. */
  wantedEntries(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i < TRACKED_PARAMS.length; i++) {
      const v = this.values[i];
      if (v !== undefined) out.push([TRACKED_PARAMS[i], v]);
    }
    return out;
  }

  /** Take the client's startup settings (in the order PostgreSQL applies them: a later one wins). */
  fromStartup(settings: readonly StartupSetting[]): void {
    for (const { name, value } of settings) {
      const tracked = TRACKED_BY_LOWER.get(name.toLowerCase());
      if (tracked !== undefined) this.values[tracked] = value;
      else {
        if (this.ownSettings === NO_SETTINGS) this.ownSettings = new Map();
        (this.ownSettings as Map<string, string>).set(name.toLowerCase(), setConfigSql(name, value));
      }
    }
  }

  /**
   * A server applied the startup settings and reported these values (canonical spelling: `ISO, DMY` for `iso,dmy`):
   * they are what the client is told and wants.
   */
  noteReported(reported: ReadonlyMap<string, string>): void {
    this.reported = reported;
    for (const [name, value] of reported) {
      const i = TRACKED_INDEX.get(name);
      if (i !== undefined && this.values[i] !== undefined) this.values[i] = value;
    }
  }

  /** The login's ParameterStatus values: the server's values with the client's own choices on top. */
  loginStatus(serverParams: ReadonlyMap<string, string>): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of serverParams) out.push([k, this.loginValue(k, v)]);
    this.takeServerValues(serverParams);
    return out;
  }

  /**
   * The login's ParameterStatus messages (loginStatus's values) in one Buffer. `isFrozen`: `serverParams` never changes
   * (a pool's serverParams: replaced, not changed, when its server's values do); then the frames are built once per
   * distinct set of client choices and shared by the clients that made the same (most: none, or one application_name).
   */
  loginFrames(serverParams: ReadonlyMap<string, string>, isFrozen: boolean): Buffer {
    const frames = isFrozen ? this.sharedLoginFrames(serverParams) : this.ownLoginFrames(serverParams);
    this.takeServerValues(serverParams);
    return frames;
  }

  private ownLoginFrames(serverParams: ReadonlyMap<string, string>): Buffer {
    return parameterStatuses(serverParams, (name, value) => this.loginValue(name, value));
  }

  private sharedLoginFrames(serverParams: ReadonlyMap<string, string>): Buffer {
    let choices = '';
    serverParams.forEach((value, name) => {
      const mine = this.loginValue(name, value);
      if (mine !== value) choices += `${name}\0${mine}\0`; // names and values hold no NUL
    });
    let byChoices = sharedFrames.get(serverParams);
    if (byChoices === undefined) sharedFrames.set(serverParams, (byChoices = new Map()));
    let frames = byChoices.get(choices);
    if (frames === undefined) {
      if (byChoices.size >= CHOICES_CACHED_MAX) byChoices.clear();
      byChoices.set(choices, (frames = this.ownLoginFrames(serverParams)));
    }
    return frames;
  }

  private loginValue(name: string, serverValue: string): string {
    return this.wantedValue(name) ?? this.reported.get(name) ?? serverValue;
  }

  /** The server's values of the tracked parameters the client did not choose become the client's wanted ones. */
  private takeServerValues(serverParams: ReadonlyMap<string, string>): void {
    for (let i = 0; i < TRACKED_PARAMS.length; i++) {
      const v = serverParams.get(TRACKED_PARAMS[i]);
      if (this.values[i] === undefined && v !== undefined) this.values[i] = v;
    }
  }

  /** A ParameterStatus the client received (it ran SET): remember it as wanted. */
  noteStatus(name: string, value: string): void {
    const i = TRACKED_INDEX.get(name) ?? TRACKED_BY_LOWER.get(name.toLowerCase());
    if (i !== undefined) this.values[i] = value;
  }

  /**
   * The session's transactions are READ ONLY unless they say READ WRITE (`default_transaction_read_only`, as the
   * servers last reported it to this client).
   */
  get isDefaultReadOnly(): boolean {
    return this.values[READ_ONLY_INDEX] === 'on';
  }

  /** The SET statements that align `serverParams` with what this client wants ('' when nothing differs). */
  syncSql(serverParams: Map<string, string>): string {
    const values = this.values;
    let sql = '';
    for (let i = 0; i < TRACKED_PARAMS.length; i++) {
      const v = values[i];
      if (v === undefined) continue;
      const name = TRACKED_PARAMS[i];
      if (serverParams.get(name) !== v) sql += `SET ${name} TO '${v.replace(/'/g, "''")}';`;
    }
    return sql;
  }
}
