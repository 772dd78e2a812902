// The durable decision log of the 2PC transaction manager: COMMIT decisions made durable by group commit (one
// write + one fdatasync per batch), lazy DONE records, segment files with rotation and compaction, and replay at
// open (a torn tail of the last segment is cut off; any other damage refuses to open).
import { Buffer } from 'node:buffer';
import type { FileHandle } from 'node:fs/promises';
import fs from 'node:fs/promises';
import path from 'node:path';
import { decodeRecords, encodeRecord, findNextRecord, type CommitRecord, type LogRecord } from './record.js';

/** The two methods the log logs with (a pino Logger fits). */
export interface DecisionLogLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface DecisionLogOptions {
  /** Directory of the segment files; created (recursively) if missing. Other files in it are ignored. */
  dir: string;
  /** Rotate to a new segment file once the current one has reached this size. */
  segmentSizeBytes: number;
  /**
   * 0: write + fsync as soon as possible (everything queued while an fsync runs goes in the next one).
   * > 0: wait up to this long after the first queued record to gather more into one fsync.
   */
  fsyncIntervalMs: number;
  logger?: DecisionLogLogger;
}

export interface DecisionLogStats {
  /** Segment files on disk. */
  segments: number;
  /** Durable COMMIT records not yet done (= pendingCommits().length). */
  pending: number;
  /** fdatasync calls on segment files by this instance (directory fsyncs not counted). */
  fsyncs: number;
  /** Record bytes written by this instance. */
  bytesWritten: number;
}

/**
 * appendCommit could not make its record durable (`cause`: the write/fsync error). `mayBeOnDisk`: the failed write
 * could not be cut off again, so the record may still be found at the next start (and recovery would commit it):
 * the caller must then not roll the transaction back either.
 */
export class DecisionNotDurableError extends Error {
  constructor(
    cause: Error,
    readonly mayBeOnDisk: boolean,
  ) {
    super(cause.message, { cause });
    this.name = 'DecisionNotDurableError';
  }
}

/** Open found damage it must not repair: a COMMIT record could be lost. */
export class DecisionLogDamagedError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    reason: string,
  ) {
    super(
      `decision log is damaged: ${file} at byte offset ${offset}: ${reason}; refusing to open it ` +
        '(a COMMIT record could be lost) - inspect or restore the file',
    );
    this.name = 'DecisionLogDamagedError';
  }
}

/**
 * How long DONE records may wait for a flush when no COMMIT comes to carry them. Their write needs no fsync: a
 * lost DONE only makes recovery redo an idempotent COMMIT PREPARED.
 */
const DONE_WRITE_DELAY_MS = 1000;
const SEGMENT_NAME = /^decisions-(\d{16})\.log$/;

interface Segment {
  readonly seq: number;
  readonly file: string;
  /** txids whose COMMIT record is in this segment and whose DONE has not been written yet. */
  readonly open: Set<string>;
}

/** A COMMIT not yet closed by a written DONE record. */
interface Txn {
  readonly record: CommitRecord;
  /** The segment holding the COMMIT record; null while it is queued or being written. */
  seq: number | null;
  /** appendDone was called (the DONE record may not be written yet). */
  isDone: boolean;
}

interface Queued {
  readonly record: LogRecord;
  readonly bytes: Buffer;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  /** A flush() caller: resolved after compaction too, so it sees done segments deleted. */
  isFlush: boolean;
}

function segmentName(seq: number): string {
  return `decisions-${String(seq).padStart(16, '0')}.log`;
}

function segmentSeq(name: string): number {
  return Number(SEGMENT_NAME.exec(name)?.[1]);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Makes the directory entries in `dir` durable (file creation, rename). */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function checkOptions(opts: DecisionLogOptions): void {
  if (!(opts.segmentSizeBytes > 0)) throw new RangeError('decision log: segmentSizeBytes must be > 0');
  if (!(opts.fsyncIntervalMs >= 0)) throw new RangeError('decision log: fsyncIntervalMs must be >= 0');
}

/** Creates `dir` if missing and makes every directory it created durable in its parent. */
async function makeDir(dir: string): Promise<void> {
  const created = await fs.mkdir(dir, { recursive: true });
  if (created === undefined) return;
  const stop = path.dirname(path.resolve(created));
  for (let d = path.resolve(dir); d !== stop; d = path.dirname(d)) await syncDir(path.dirname(d));
}

/** Applies replayed records of one segment to the open-transaction bookkeeping. */
function replay(
  records: readonly LogRecord[],
  segment: Segment,
  segments: Map<number, Segment>,
  txns: Map<string, Txn>,
  logger: DecisionLogLogger | undefined,
): void {
  for (const record of records) {
    const known = txns.get(record.txid);
    if (known !== undefined && known.seq !== null) segments.get(known.seq)?.open.delete(record.txid);
    if (record.kind === 'done') {
      txns.delete(record.txid);
      continue;
    }
    if (known !== undefined) {
      // Never written by this class (appendCommit refuses an open txid); keep the newer record.
      logger?.warn(
        { txid: record.txid, file: segment.file },
        'decision log: second COMMIT record for a txid',
      );
    }
    txns.set(record.txid, { record, seq: segment.seq, isDone: false });
    segment.open.add(record.txid);
  }
}

/**
 * The commit decisions of 2PC transactions. `appendCommit` is the commit point: it resolves once the record is
 * on disk and fdatasync'ed. `appendDone` marks a transaction finished (lazily written). Records go to
 * `decisions-<seq>.log` segment files; a non-current segment whose COMMITs all have a written DONE is deleted.
 */
export class DecisionLog {
  private readonly opts: DecisionLogOptions;
  private readonly logger: DecisionLogLogger | undefined;
  /** Segment files on disk, oldest first; `current` is the last. */
  private readonly segments: Map<number, Segment>;
  private current: Segment;
  private fh: FileHandle;
  /** Bytes in the current segment. */
  private size: number;
  /** Every COMMIT not yet closed by a written DONE: durable ones, and queued or in-flight ones (seq null). */
  private readonly txns: Map<string, Txn>;
  private queued: Queued[] = [];
  /** appendCommit and flush callers waiting for the next batch to be durable. */
  private waiters: Waiter[] = [];
  private isFlushing = false;
  private flushLoop: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private timerDueAt = 0;
  private immediate: NodeJS.Immediate | null = null;
  /** Bytes were written to the current segment since its last fdatasync. */
  private isDirty = false;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private fsyncs = 0;
  private bytesWritten = 0;

  private constructor(
    opts: DecisionLogOptions,
    segments: Map<number, Segment>,
    current: Segment,
    fh: FileHandle,
    size: number,
    txns: Map<string, Txn>,
  ) {
    this.opts = opts;
    this.logger = opts.logger;
    this.segments = segments;
    this.current = current;
    this.fh = fh;
    this.size = size;
    this.txns = txns;
  }

  /**
   * Replays every segment in sequence order, cuts a torn tail off the last one, deletes fully done old segments
   * and opens the last segment (or a new first one) for appends. Rejects with DecisionLogDamagedError on any
   * other damage.
   */
  static async open(opts: DecisionLogOptions): Promise<DecisionLog> {
    checkOptions(opts);
    const { dir, logger } = opts;
    await makeDir(dir);
    // Zero-padded names: string order is sequence order.
    const names = (await fs.readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
    const segments = new Map<number, Segment>();
    const txns = new Map<string, Txn>();
    let tailBytes = 0;
    let isTailTorn = false;
    for (const [i, name] of names.entries()) {
      const file = path.join(dir, name);
      const buf = await fs.readFile(file);
      const decoded = decodeRecords(buf);
      const isLast = i === names.length - 1;
      if (decoded.stop !== 'end') {
        if (!isLast) {
          throw new DecisionLogDamagedError(
            file,
            decoded.validBytes,
            `${decoded.reason} (not the last segment)`,
          );
        }
        const next = findNextRecord(buf, decoded.validBytes + 1);
        if (next !== -1) {
          throw new DecisionLogDamagedError(
            file,
            decoded.validBytes,
            `${decoded.reason}, followed by a valid record at byte offset ${next}`,
          );
        }
        logger?.warn(
          {
            file,
            offset: decoded.validBytes,
            droppedBytes: buf.length - decoded.validBytes,
            reason: decoded.reason,
          },
          'decision log: ignoring a torn record at the end of the last segment (crash mid-write); truncating',
        );
        isTailTorn = true;
      }
      const segment: Segment = { seq: segmentSeq(name), file, open: new Set() };
      segments.set(segment.seq, segment);
      replay(decoded.records, segment, segments, txns, logger);
      tailBytes = decoded.validBytes;
    }

    let current = [...segments.values()].at(-1);
    let fh: FileHandle;
    if (current === undefined) {
      current = { seq: 1, file: path.join(dir, segmentName(1)), open: new Set() };
      segments.set(current.seq, current);
      fh = await fs.open(current.file, 'ax');
      await syncDir(dir);
    } else {
      fh = await fs.open(current.file, 'a');
      if (isTailTorn) {
        try {
          // If we die before this is durable, the next open finds the same torn tail and cuts it again.
          await fh.truncate(tailBytes);
          await fh.datasync();
        } catch (err) {
          await fh.close();
          throw err;
        }
      }
    }
    const log = new DecisionLog(opts, segments, current, fh, tailBytes, txns);
    await log.compact();
    logger?.info({ dir, segments: segments.size, pending: log.stats().pending }, 'decision log opened');
    return log;
  }

  /** Durable COMMIT records without a DONE (found at open or appended since), oldest first. */
  pendingCommits(): CommitRecord[] {
    const out: CommitRecord[] = [];
    for (const txn of this.txns.values()) if (txn.seq !== null && !txn.isDone) out.push(txn.record);
    return out;
  }

  /**
   * The commit point of a 2PC transaction: resolves only once the record is written and fdatasync'ed. Rejects on
   * a malformed record, a txid that already has an open COMMIT, after close, and after any write/fsync failure.
   * After a failed write or fsync the failed batch is cut off the file again, so a rejection normally means the
   * COMMIT is not on disk. Only if that cut fails too (warned, `isCut: false`) may the record survive, and then
   * recovery at the next start commits it.
   */
  appendCommit(input: Omit<CommitRecord, 'kind'>): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== null) return Promise.reject(refusal);
    const record: CommitRecord = {
      kind: 'commit',
      txid: input.txid,
      database: input.database,
      user: input.user,
      participants: input.participants.map((p) => ({ shard: p.shard, gid: p.gid })),
      at: input.at,
    };
    let bytes: Buffer;
    try {
      bytes = encodeRecord(record);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (this.txns.has(record.txid)) {
      return Promise.reject(new Error(`decision log: txid ${record.txid} already has an open COMMIT record`));
    }
    this.txns.set(record.txid, { record, seq: null, isDone: false });
    return new Promise((resolve, reject) => {
      this.queued.push({ record, bytes });
      this.waiters.push({ resolve, reject, isFlush: false });
      this.scheduleFlush(this.opts.fsyncIntervalMs);
    });
  }

  /**
   * Marks `txid` finished: it leaves pendingCommits() at once; its DONE record is written with the next flush
   * (no fsync on its account). Unknown or already done txids are ignored, and so is everything after close or a
   * failure (a lost DONE only makes recovery redo an idempotent COMMIT PREPARED).
   */
  appendDone(txid: string): void {
    if (this.failure !== null || this.closing !== null) return;
    const txn = this.txns.get(txid);
    if (txn === undefined || txn.isDone) return;
    txn.isDone = true;
    const record: LogRecord = { kind: 'done', txid };
    this.queued.push({ record, bytes: encodeRecord(record) });
    this.scheduleFlush(Math.max(this.opts.fsyncIntervalMs, DONE_WRITE_DELAY_MS));
  }

  /** Writes everything queued (DONE records too) and fsyncs. */
  flush(): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== null) return Promise.reject(refusal);
    return this.flushQueued();
  }

  /** Flushes, then closes the file; later appends and flushes reject. Rejects if the log failed at any point. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  stats(): DecisionLogStats {
    return {
      segments: this.segments.size,
      pending: this.pendingCommits().length,
      fsyncs: this.fsyncs,
      bytesWritten: this.bytesWritten,
    };
  }

  private refusal(): Error | null {
    if (this.failure !== null) {
      return new Error(`decision log failed earlier and refuses appends: ${this.failure.message}`, {
        cause: this.failure,
      });
    }
    if (this.closing !== null) return new Error('decision log is closed');
    return null;
  }

  private flushQueued(): Promise<void> {
    if (!this.isFlushing && this.queued.length === 0 && !this.isDirty) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject, isFlush: true });
      this.scheduleFlush(0);
    });
  }

  private async shutdown(): Promise<void> {
    let error: Error | null = null;
    if (this.failure === null) {
      try {
        await this.flushQueued();
      } catch (err) {
        error = toError(err);
      }
    }
    await this.flushLoop; // it may still be compacting
    this.clearTimers();
    try {
      await this.fh.close();
    } catch (err) {
      error ??= toError(err);
    }
    if (error === null && this.failure !== null) {
      error = new Error(`decision log closed after a failure: ${this.failure.message}`, {
        cause: this.failure,
      });
    }
    if (error !== null) throw error;
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  /** Starts a flush after `delayMs` (0: next turn of the event loop) unless one is running or due sooner. */
  private scheduleFlush(delayMs: number): void {
    if (this.isFlushing) return; // the running loop takes whatever is queued
    if (delayMs === 0) {
      this.immediate ??= setImmediate(() => {
        this.immediate = null;
        this.startFlush();
      });
      return;
    }
    const dueAt = Date.now() + delayMs;
    if (this.timer !== null) {
      if (this.timerDueAt <= dueAt) {
        if (this.waiters.length > 0) this.timer.ref();
        return;
      }
      clearTimeout(this.timer);
    }
    this.timerDueAt = dueAt;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.startFlush();
    }, delayMs);
    // A timer only for lazy DONE records must not keep the process alive.
    if (this.waiters.length === 0) this.timer.unref();
  }

  private startFlush(): void {
    if (this.isFlushing) return;
    this.clearTimers();
    this.isFlushing = true;
    this.flushLoop = this.runFlush();
  }

  /** Writes batches until nothing is queued: one write + one fdatasync each; never rejects. */
  private async runFlush(): Promise<void> {
    try {
      while (this.failure === null && (this.queued.length > 0 || this.waiters.length > 0)) {
        const batch = this.queued;
        const waiters = this.waiters;
        this.queued = [];
        this.waiters = [];
        let writeStart: number | null = null;
        try {
          if (batch.length > 0) {
            // Death here: nothing of the batch is written; its COMMITs were never acknowledged (presumed abort).
            if (this.size >= this.opts.segmentSizeBytes) await this.rotate();
            writeStart = this.size;
            // Death here: the batch's COMMITs were never acknowledged; whatever part reached the disk is either a
            // whole record (recovery commits it: the outcome was unknown to the client) or a torn tail (cut at open).
            await this.writeBatch(batch);
          }
          // Death here: same as above; a record counts as committed only once this fdatasync returns.
          if (waiters.length > 0 && this.isDirty) await this.sync();
        } catch (err) {
          const isCut = writeStart === null || (await this.cutBack(writeStart));
          this.fail(toError(err), batch, waiters, isCut);
          return;
        }
        this.applyWritten(batch);
        for (const waiter of waiters) if (!waiter.isFlush) waiter.resolve();
        if (batch.length > 0) await this.compact();
        for (const waiter of waiters) if (waiter.isFlush) waiter.resolve();
      }
    } finally {
      this.isFlushing = false;
    }
  }

  /** Appends the batch to the current segment with one write() (looping only on a short write). */
  private async writeBatch(batch: readonly Queued[]): Promise<void> {
    const chunks = batch.map((q) => q.bytes);
    const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    const length = buf.length;
    this.isDirty = true;
    let offset = 0;
    while (offset < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, offset, buf.length - offset);
      offset += bytesWritten;
    }
    this.size += length;
    this.bytesWritten += length;
  }

  private async sync(): Promise<void> {
    await this.fh.datasync();
    this.fsyncs++;
    this.isDirty = false;
  }

  /** Starts the next segment. The old one is made durable first: only the last segment may have a torn tail. */
  private async rotate(): Promise<void> {
    if (this.isDirty) await this.sync();
    await this.fh.close();
    const seq = this.current.seq + 1;
    const file = path.join(this.opts.dir, segmentName(seq));
    this.fh = await fs.open(file, 'ax');
    await syncDir(this.opts.dir);
    this.current = { seq, file, open: new Set() };
    this.segments.set(seq, this.current);
    this.size = 0;
    this.logger?.info({ file }, 'decision log: new segment');
  }

  /** Bookkeeping for a batch now in the current segment (durable, unless it held only DONE records). */
  private applyWritten(batch: readonly Queued[]): void {
    for (const { record } of batch) {
      const txn = this.txns.get(record.txid);
      if (txn === undefined) continue;
      if (record.kind === 'commit') {
        txn.seq = this.current.seq;
        this.current.open.add(record.txid);
      } else {
        if (txn.seq !== null) this.segments.get(txn.seq)?.open.delete(record.txid);
        this.txns.delete(record.txid);
      }
    }
  }

  /** Deletes every non-current segment with no open COMMIT. A failed delete is retried next time. */
  private async compact(): Promise<void> {
    for (const segment of [...this.segments.values()]) {
      if (segment === this.current || segment.open.size > 0) continue;
      try {
        await fs.unlink(segment.file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.logger?.warn({ file: segment.file, err: toError(err).message }, 'decision log: cannot delete');
          continue;
        }
      }
      this.segments.delete(segment.seq);
      this.logger?.info({ file: segment.file }, 'decision log: deleted a fully done segment');
    }
  }

  /**
   * After a failed write or fsync: cuts the current segment back to where the failed batch began, so that a
   * rejected appendCommit really left no COMMIT record behind. False if that failed too (the outcome is unknown).
   */
  private async cutBack(writeStart: number): Promise<boolean> {
    try {
      await this.fh.truncate(writeStart);
      await this.fh.datasync();
      this.size = writeStart;
      this.isDirty = false;
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A write or fsync failed: reject every waiter and refuse further appends (the disk is not trusted any more).
   * `isCut`: no COMMIT record of the failed batch can be on disk.
   */
  private fail(err: Error, batch: readonly Queued[], waiters: readonly Waiter[], isCut: boolean): void {
    this.failure = err;
    this.clearTimers();
    for (const { record } of [...batch, ...this.queued]) {
      if (record.kind === 'commit') this.txns.delete(record.txid);
    }
    const all = [...waiters, ...this.waiters];
    this.queued = [];
    this.waiters = [];
    this.logger?.warn(
      { file: this.current.file, err: err.message, isCut },
      isCut
        ? 'decision log: write or fsync failed; the failed batch was cut off (its COMMITs are not durable); ' +
            'refusing further appends'
        : 'decision log: write or fsync failed and the failed batch could not be cut off: its COMMIT records may ' +
            'be on disk, and recovery at the next start will commit them; refusing further appends',
    );
    for (const waiter of all)
      waiter.reject(new DecisionNotDurableError(err, !isCut && waiters.includes(waiter)));
  }
}
