// Session parameters kept in step between a client and whichever server it is given (PgBouncer's set): the client's
// wanted values come from its startup packet and every ParameterStatus it receives; a server whose values differ
// gets a SET before the client's request.

const TRACKED_PARAMS = [
  'client_encoding',
  'DateStyle',
  'TimeZone',
  'IntervalStyle',
  'application_name',
  'standard_conforming_strings',
];
const TRACKED_BY_LOWER = new Map(TRACKED_PARAMS.map((p) => [p.toLowerCase(), p]));

export class SessionParams {
  /** Wanted value per tracked parameter, by its canonical (ParameterStatus) name. */
  readonly wanted = new Map<string, string>();

  /** Take the tracked parameters from the client's startup packet (names are case-insensitive there). */
  fromStartup(params: Map<string, string>): void {
    for (const [k, v] of params) {
      const name = TRACKED_BY_LOWER.get(k.toLowerCase());
      if (name) this.wanted.set(name, v);
    }
  }

  /** ParameterStatus frames for login: the server's values with the client's own choices on top. */
  loginStatus(serverParams: Map<string, string>): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of serverParams) out.push([k, this.wanted.get(k) ?? v]);
    for (const k of TRACKED_PARAMS) {
      const v = serverParams.get(k);
      if (!this.wanted.has(k) && v !== undefined) this.wanted.set(k, v);
    }
    return out;
  }

  /** A ParameterStatus the client received (it ran SET): remember it as wanted. */
  noteStatus(name: string, value: string): void {
    if (this.wanted.has(name) || TRACKED_BY_LOWER.has(name.toLowerCase())) this.wanted.set(name, value);
  }

  /** The SET statements that align `serverParams` with what this client wants ('' when nothing differs). */
  syncSql(serverParams: Map<string, string>): string {
    let sql = '';
    for (const [k, v] of this.wanted) {
      if (serverParams.get(k) !== v) sql += `SET ${k} TO '${v.replace(/'/g, "''")}';`;
    }
    return sql;
  }
}
