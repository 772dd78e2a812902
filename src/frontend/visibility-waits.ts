// What a sharded request may wait for before it is sent, for atomic visibility: a REPEATABLE READ / SERIALIZABLE
// block's one cut across every shard (block-cut.ts), and — with two_phase_commit_reply = "at_decision" — the end of
// phase 2 of commits answered early on its shards (phase-two-wait.ts). Each wait ends by running the request, or
// failing it.
import { NO_EFFECTS } from '../txn/transaction-block.js';
import { takeCut, type blockCutFence } from './block-cut.js';
import type { DispatchHost } from './dispatch-host.js';
import { waitForPhaseTwo } from './phase-two-wait.js';
import { fenceOf } from './sharded-session.js';

/** Every shard of the database joins the block and takes its snapshot inside one fence section, then `send()`. */
export function takeBlockCut(
  host: DispatchHost,
  cutFence: NonNullable<ReturnType<typeof blockCutFence>>,
  send: () => void,
): void {
  const all = host.block.allShards();
  host.acquireShards(all, NO_EFFECTS, () => {
    const run = (sql: string, done: (errors: Buffer[]) => void): void =>
      host.servers.runOwn(all, sql, host, done);
    takeCut(
      {
        fence: cutFence,
        shards: all,
        timeoutMs: host.session.proxy.general().atomicVisibilityTimeoutMs,
        run,
      },
      (err) => {
        if (err !== null) return host.failRequest(err);
        host.block.markCutTaken();
        send();
      },
    );
  });
}

/**
 * two_phase_commit_reply = "at_decision": the request waits until none of `shards` has a branch answered COMMIT at
 * its decision and not committed yet (read-your-writes through this proxy), then `run()`; past
 * atomic_visibility_timeout it fails with 40001 (phase-two-wait.ts).
 */
export function afterPhaseTwo(host: DispatchHost, shards: readonly number[], run: () => void): void {
  const { session, request } = host;
  const fence = fenceOf(session);
  if (fence === null) return run();
  request.move({ kind: 'waiting', what: "the end of a committed transaction's phase 2" });
  waitForPhaseTwo(
    fence.phaseTwo,
    shards,
    session.proxy.general().atomicVisibilityTimeoutMs,
    () => {
      request.end('waiting');
      if (session.status.state === 'ready') run();
    },
    (err) => {
      request.end('waiting');
      if (session.status.state !== 'ready') return;
      host.log.warn({ code: err.code, detail: err.detail }, err.message);
      host.failRequest(err);
    },
  );
}
