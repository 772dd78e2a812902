// A request on one shard, the engine's run-single phase: sent on the server held there with the dispatch as that
// server's sink, so the server's scanner streams the replies to the client untouched (backend/response-scanner.ts),
// and in flight until its ReadyForQuery, which ends it (end-request.ts). A request sent without Sync (pg-cursor,
// Flush) owes no ReadyForQuery: its shard keeps the open segment, where the next request naming no statement goes.
// Nothing here allocates per request (the `single` state per shard is preallocated).
import type { ServerConnection } from '../backend/server-connection.js';
import type { DispatchHost, TakenRequest } from './dispatch-host.js';

/** Send the request taken off the batch to `shard`'s held server; its replies go straight to the client. */
export function runOnOneShard(
  host: DispatchHost,
  shard: number,
  { types, frames, readyCount }: TakenRequest,
): void {
  const server = host.servers.at(shard);
  server.attach(host);
  host.session.send.send(server, types, frames, readyCount);
  // In flight until its ReadyForQuery (endOnReady). Sent without Sync it owes none, and the next request may go (a
  // statement of the proxy's own still running there, BEGIN or SET, ends without telling: its reply is swallowed).
  if (readyCount > 0 && server.pendingReady > 0) host.request.move(host.request.single(shard));
  host.openSegmentShard = host.session.send.hasOpenSegment ? shard : null;
}

/**
 * A ReadyForQuery reached the client from a server answering the session directly: once the server owes none, the
 * request on its shard is over — the status told, the next request started.
 */
export function endOnReady(host: DispatchHost, server: ServerConnection): void {
  if (server.pendingReady !== 0) return;
  const request = host.request;
  const single = request.singleShard;
  if (single !== null && host.servers.byShard[single] === server) request.end('single');
  host.end.refreshStatus();
  host.end.requestDone();
}
