// Session parameters kept in step between a client and whichever server it is given. Tracked parameters (PgBouncer's
// set, all reported by ParameterStatus): the client's wanted values come from its startup packet and every
// ParameterStatus it receives; a server whose values differ gets a SET before the client's request. The client's other
// startup settings (`options`, statement_timeout, search_path, custom `some.var` …) are kept as the statements that
// apply them, keyed by lower-case name like the session's SETs (session-settings.ts), and replayed on every server the
// session uses; the ParameterStatus values the client is told at login are the server's own spelling of them.
// `default_transaction_read_only` is tracked too (PostgreSQL 14+ reports it): SET, SET SESSION CHARACTERISTICS, RESET
// and a startup `-c default_transaction_read_only=on` all end in its ParameterStatus, so every server a session is
// given starts its transactions as the client's would, and the read/write split knows the session's default.
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
const TRACKED_BY_LOWER = new Map(TRACKED_PARAMS.map((p) => [p.toLowerCase(), p]));

/** The ParameterStatus name of a tracked parameter (any case), or undefined. */
export function trackedName(name: string): string | undefined {
  return TRACKED_BY_LOWER.get(name.toLowerCase());
}

export class SessionParams {
  /** Wanted value per tracked parameter, by its canonical (ParameterStatus) name. */
  readonly wanted = new Map<string, string>();
  /**
   * The client's startup settings other than tracked parameters: lower-case name → the statement applying the value
   * (set_config, as the startup packet gives values). Empty for most clients.
   */
  readonly settings = new Map<string, string>();
  /** ParameterStatus values a server reported for the client's startup settings, by ParameterStatus name. */
  private reported: ReadonlyMap<string, string> = new Map();
  /**
   * `wanted` as two arrays, rebuilt after a change: syncSql runs at every server checkout, and iterating the Map there
   * allocated an iterator and an entry pair per parameter each time (the allocation profile of pgbench -S).
   */
  private wantedKeys: string[] | null = null;
  private wantedValues: string[] = [];

  private want(name: string, value: string): void {
    this.wanted.set(name, value);
    this.wantedKeys = null;
  }

  /** Take the client's startup settings (in the order PostgreSQL applies them: a later one wins). */
  fromStartup(settings: readonly StartupSetting[]): void {
    for (const { name, value } of settings) {
      const tracked = trackedName(name);
      if (tracked !== undefined) this.want(tracked, value);
      else this.settings.set(name.toLowerCase(), setConfigSql(name, value));
    }
  }

  /**
   * A server applied the startup settings and reported these values (canonical spelling: `ISO, DMY` for `iso,dmy`):
   * they are what the client is told and wants.
   */
  noteReported(reported: ReadonlyMap<string, string>): void {
    this.reported = reported;
    for (const [name, value] of reported) if (this.wanted.has(name)) this.want(name, value);
  }

  /** ParameterStatus frames for login: the server's values with the client's own choices on top. */
  loginStatus(serverParams: Map<string, string>): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of serverParams) out.push([k, this.wanted.get(k) ?? this.reported.get(k) ?? v]);
    for (const k of TRACKED_PARAMS) {
      const v = serverParams.get(k);
      if (!this.wanted.has(k) && v !== undefined) this.want(k, v);
    }
    return out;
  }

  /** A ParameterStatus the client received (it ran SET): remember it as wanted. */
  noteStatus(name: string, value: string): void {
    if (this.wanted.get(name) === value) return; // the same value again: nothing to re-sync
    if (this.wanted.has(name) || TRACKED_BY_LOWER.has(name.toLowerCase())) this.want(name, value);
  }

  /**
   * The session's transactions are READ ONLY unless they say READ WRITE (`default_transaction_read_only`, as the
   * servers last reported it to this client).
   */
  get isDefaultReadOnly(): boolean {
    return this.wanted.get('default_transaction_read_only') === 'on';
  }

  /** The SET statements that align `serverParams` with what this client wants ('' when nothing differs). */
  syncSql(serverParams: Map<string, string>): string {
    let keys = this.wantedKeys;
    if (keys === null) {
      keys = this.wantedKeys = [...this.wanted.keys()];
      this.wantedValues = [...this.wanted.values()];
    }
    const values = this.wantedValues;
    let sql = '';
    for (let i = 0; i < keys.length; i++) {
      const v = values[i];
      if (serverParams.get(keys[i]) !== v) sql += `SET ${keys[i]} TO '${v.replace(/'/g, "''")}';`;
    }
    return sql;
  }
}
