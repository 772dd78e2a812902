// Startup settings judged by a real server before a client is told it is logged in. PostgreSQL applies the startup
// packet's settings after authentication (postinit.c process_startup_options): an unknown name without a dot is FATAL
// 42704, a bad value FATAL 22023, each with the server's own message, after AuthenticationOk; a value it accepts is
// reported in its own spelling (`iso,dmy` → `ISO, DMY`), with a NOTICE for a truncated application_name. The proxy
// cannot know every server's parameters and their checks, so it asks one: the settings run as set_config on a server
// of the database's shard 0 (one Query: all or nothing), and the answer — refusal, or reported values and notices —
// is what the client gets. Answers are cached per pool by the settings' text, so a client mix with a few distinct
// startup packets pays one server round trip per distinct packet, and the server is not asked at all for settings
// known to be valid as given (a printable application_name, a value equal to the server's own).
import { Buffer } from 'node:buffer';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Pool } from '../backend/pool.js';
import { runQuery } from '../backend/server-query.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { PgError } from '../errors/pg-error.js';
import { trackedName } from './session-params.js';
import { setConfigSql, type StartupSetting } from './startup-options.js';

export type StartupCheck =
  | {
      readonly kind: 'ok';
      /** ParameterStatus values of the settings after the server applied them, by ParameterStatus name. */
      readonly reported: ReadonlyMap<string, string>;
      /** NoticeResponse frames the settings caused (sent to the client before its ParameterStatus). */
      readonly notices: readonly Buffer[];
    }
  /** The server refused a setting: its ErrorResponse as a FATAL, what PostgreSQL sends at login. */
  | { readonly kind: 'refused'; readonly error: Buffer };

const NOTHING_TO_CHECK: StartupCheck = { kind: 'ok', reported: new Map(), notices: [] };

/** Distinct startup packets remembered per pool; past it the cache starts over. */
const CACHE_ENTRIES_MAX = 256;
const caches = new WeakMap<DatabasePools, Map<string, StartupCheck>>();

/** The longest application_name PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer ones are cut, with a NOTICE. */
const APPLICATION_NAME_MAX_BYTES = 63;

/** A setting PostgreSQL would accept and report exactly as given: no need to ask a server. */
function isValidAsGiven(setting: StartupSetting, serverParams: ReadonlyMap<string, string> | null): boolean {
  const name = trackedName(setting.name);
  if (name === undefined) return false;
  if (name === 'application_name') {
    // check_application_name keeps printable ASCII as it is.
    return /^[\x20-\x7e]*$/.test(setting.value) && setting.value.length <= APPLICATION_NAME_MAX_BYTES;
  }
  return serverParams !== null && serverParams.get(name) === setting.value;
}

/**
 * Check `settings` on a server of `pools`' shard 0 (or from the cache), then `done`. A PgError: no server could be
 * had. The first client of a pool also gets the pool's server parameters this way (`first.serverParams` is set once
 * `done` runs). `done` may run synchronously.
 */
export function checkStartupSettings(
  pools: DatabasePools,
  settings: readonly StartupSetting[],
  done: (result: StartupCheck | PgError) => void,
): void {
  const first = pools.shards[0];
  const toCheck = settings.filter((s) => !isValidAsGiven(s, first.serverParams));
  if (toCheck.length === 0 && first.serverParams !== null) return done(NOTHING_TO_CHECK);
  const key = JSON.stringify(toCheck.map((s) => [s.name, s.value]));
  let cache = caches.get(pools);
  const known = cache?.get(key);
  if (known !== undefined && first.serverParams !== null) return done(known);
  first.acquire((err, server) => {
    if (err !== null || server === null) return done(err ?? PgError.internal('no server'));
    if (toCheck.length === 0) {
      first.release(server);
      return done(NOTHING_TO_CHECK);
    }
    void runCheck(first, server, toCheck).then((result) => {
      if (!(result instanceof PgError)) {
        if (cache === undefined) caches.set(pools, (cache = new Map()));
        if (cache.size >= CACHE_ENTRIES_MAX) cache.clear();
        cache.set(key, result);
      }
      done(result);
    });
  });
}

/** Apply `settings` on `server` (then back to the pool, its state recorded): the server's verdict. */
async function runCheck(
  pool: Pool,
  server: ServerConnection,
  settings: readonly StartupSetting[],
): Promise<StartupCheck | PgError> {
  const notices: Buffer[] = [];
  const sql = settings.map((s) => setConfigSql(s.name, s.value)).join(';');
  const outcome = await runQuery(server, sql, {
    onServerParameter: () => undefined,
    onNotice: (frame) => notices.push(frame),
  });
  if (outcome.kind === 'lost') {
    pool.release(server);
    return PgError.serverUnavailable(0, outcome.reason);
  }
  if (outcome.kind === 'error') {
    pool.release(server); // the Query's implicit transaction undid every setting
    return { kind: 'refused', error: asFatal(outcome.frame) };
  }
  // The server now holds the settings: recorded, so that the next session given it brings it in step.
  const reported = new Map<string, string>();
  const byLower = new Map<string, string>();
  for (const name of server.params.keys()) byLower.set(name.toLowerCase(), name);
  for (const s of settings) {
    const lower = s.name.toLowerCase();
    const statusName = byLower.get(lower);
    if (statusName !== undefined) reported.set(statusName, server.params.get(statusName) as string);
    if (trackedName(lower) === undefined) server.settings.set(lower, setConfigSql(s.name, s.value));
  }
  pool.release(server);
  return { kind: 'ok', reported, notices };
}

/** An ErrorResponse with its severity (S and V) made FATAL, every other field as the server sent it. */
export function asFatal(frame: Buffer): Buffer {
  const parts: Buffer[] = [];
  let p = 5;
  const end = 1 + frame.readInt32BE(1);
  while (p < end && frame[p] !== 0) {
    const valueEnd = frame.indexOf(0, p + 1);
    if (valueEnd < 0 || valueEnd >= end) break;
    const field = frame[p];
    // 'S' is localized: PostgreSQL's own word for FATAL is sent only when the server's was the English ERROR.
    const isSeverity =
      field === 0x56 || (field === 0x53 && frame.toString('utf8', p + 1, valueEnd) === 'ERROR');
    parts.push(
      isSeverity ? Buffer.from([field, ...Buffer.from('FATAL'), 0]) : frame.subarray(p, valueEnd + 1),
    );
    p = valueEnd + 1;
  }
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = frame[0];
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}
