// Sending a routed request to several shards (the "run fan-out" phase of a sharded request): one reply sink per shard
// on the request's Fanout, a Describe added when the merge needs the key columns' types, the fence section of a read
// across shards (atomic_visibility, fenced-read.ts), reads sent to every shard at once and writes one shard after
// another; a multi-row INSERT split by shard sends each shard its own rows.
import { Backend } from '../protocol/codes.js';
import type { BatchTarget } from './batch-target.js';
import type { DispatchHost, TakenRequest } from './dispatch-host.js';
import { withPortalDescribe, type Fanout } from './fanout.js';
import { FencedRead, type ReadRequest, type ReadTarget } from './fenced-read.js';

/**
 * The request `taken` to every shard of `target`, replies merged by its spec. `isOwnRun`: a statement of the proxy's
 * own run (script, INSERT … SELECT): never fenced (docs/two-phase-commit.md).
 */
export function sendFanout(
  host: DispatchHost,
  target: Extract<BatchTarget, { kind: 'many' }>,
  { types, frames, readyCount }: TakenRequest,
  isOwnRun: boolean,
): void {
  const { session } = host;
  const spec = target.spec;
  const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
  const sent = needsTypes ? withPortalDescribe(types, frames) : null;
  const fanout = host.startFanout(target.shards.length, spec, sent !== null);
  const read = fencedRead(host, isOwnRun, target, sent ?? { types, frames }, fanout, readyCount);
  const sends = target.shards.map((shard, i) => {
    const server = host.servers.lend(shard, fanout.sinkFor(i));
    return () => {
      if (read !== null) read.send(server, sent ?? { types, frames });
      else if (sent !== null) session.send.send(server, sent.types, sent.frames, readyCount);
      else session.send.send(server, types, frames, readyCount);
    };
  });
  runFanout(host, fanout, sends, target.isWrite, read);
}

/** A multi-row INSERT split by shard: each shard gets its own rows; RETURNING rows come back in VALUES order. */
export function sendSplit(
  host: DispatchHost,
  target: Extract<BatchTarget, { kind: 'split' }>,
  readyCount: number,
  isOwnRun: boolean,
): void {
  const { session } = host;
  if (target.clientParse !== null) session.statements?.remember(target.clientParse);
  const spec = target.spec;
  const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
  const described = needsTypes ? target.parts.map((p) => withPortalDescribe(p.types, p.frames)) : [];
  const fanout = host.startFanout(target.shards.length, spec, described[0] != null);
  const read = fencedRead(host, isOwnRun, target, described[0] ?? target.parts[0], fanout, readyCount);
  const sends = target.shards.map((shard, i) => {
    const server = host.servers.lend(shard, fanout.sinkFor(i));
    const part = target.parts[i];
    return () => {
      // Sent as built: the statement is the per-shard unnamed one, so no name rewriting applies.
      if (part.isParseInjected) server.scanner.swallowNext(Backend.ParseComplete);
      if (read !== null) return read.send(server, described[i] ?? part, true);
      server.send(Buffer.concat(described[i]?.frames ?? part.frames), readyCount);
      if (readyCount > 0) session.send.startQueryTimer();
    };
  });
  runFanout(host, fanout, sends, target.isWrite, read);
  session.send.hasOpenSegment = false;
}

/**
 * Reads go to every shard at once. Writes go one shard after another, in shard order: two transactions writing the
 * same rows on several shards then always lock them in the same order, so they wait instead of deadlocking across
 * shards (which no single PostgreSQL could detect).
 */
function runFanout(
  host: DispatchHost,
  fanout: Fanout,
  sends: (() => void)[],
  isWrite: boolean,
  read: FencedRead | null,
): void {
  if (!isWrite) {
    host.read = read; // atomic_visibility: sent once in the fence, out of it when the snapshots exist
    if (read !== null) return read.start(sends);
    for (const send of sends) send();
    return;
  }
  fanout.onServerDone = (index) => sends[index + 1]?.();
  sends[0]();
}

/** atomic_visibility: the fence section of a fan-out that reads 2+ shards (fenced-read.ts); null: none needed. */
function fencedRead(
  host: DispatchHost,
  isOwnRun: boolean,
  target: ReadTarget,
  request: ReadRequest,
  fanout: Fanout,
  readyCount: number,
): FencedRead | null {
  return isOwnRun ? null : FencedRead.create(host.session, host.servers, target, request, fanout, readyCount);
}
