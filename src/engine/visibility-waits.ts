// What a sharded request may wait for before it is sent, for atomic visibility: a REPEATABLE READ / SERIALIZABLE
// block's one cut across every shard (block-cut.ts), and — with two_phase_commit_reply = "at_decision" — the end of
// phase 2 of commits answered early on its shards (phase-two-wait.ts). Each wait ends by running the request, or
// failing it.
import { NO_EFFECTS } from '../txn/transaction-block.js';
import { takeCut, type blockCutFence } from './block-cut.js';
import type { ReadIntent } from '../backend/replica-set.js';
import type { DispatchHost } from './dispatch-host.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import type { VisibilityFence } from '../txn/visibility-fence.js';
import { waitForPhaseTwo } from './phase-two-wait.js';
import { fenceOf } from '../frontend/sharded-session.js';

/**
 * The routed request `routed` waits first — for its block's cut (`cutFence`), then for pending phase 2s on its shards
 * — and is then sent on its servers (`send`, once they are held).
 */
export function sendAfterWaits(
  host: DispatchHost,
  shards: readonly number[],
  routed: BatchTarget,
  intent: ReadIntent,
  cutFence: VisibilityFence | null,
  send: () => void,
): void {
  const acquireAndSend = (): void => host.hold.acquire(shards, routed, send, true, intent);
  const run = cutFence === null ? acquireAndSend : (): void => takeBlockCut(host, cutFence, acquireAndSend);
  const phaseTwo = host.session.phaseTwoCount;
  if (phaseTwo === null || phaseTwo.pending === 0 || routed.isSessionLevel) return run();
  afterPhaseTwo(host, shards, run);
}

/** Every shard of the database joins the block and takes its snapshot inside one fence section, then `send()`. */
export function takeBlockCut(
  host: DispatchHost,
  cutFence: NonNullable<ReturnType<typeof blockCutFence>>,
  send: () => void,
): void {
  const all = host.block.allShards();
  host.hold.acquire(all, NO_EFFECTS, () => {
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
        if (err !== null) return host.end.failRequest(err);
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
      host.end.failRequest(err);
    },
  );
}
