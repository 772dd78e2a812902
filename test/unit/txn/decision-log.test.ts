// Unit tests for DecisionLog on real files: replay across reopen, durability before acknowledgement, group
// commit, lazy DONE records, torn tails versus damage, rotation and compaction, failures and close.
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DecisionLog,
  DecisionNotDurableError,
  type DecisionLogOptions,
} from '../../../src/txn/log/decision-log.js';
import {
  decodeRecords,
  encodeRecord,
  type CommitRecord,
  type LogRecord,
} from '../../../src/txn/log/record.js';

const FIRST_SEGMENT = 'decisions-0000000000000001.log';

let dir: string;
let opened: DecisionLog[];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'shardgate-decision-log-'));
  opened = [];
});

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.allSettled(opened.map((log) => log.close()));
  await fs.rm(dir, { recursive: true, force: true });
});

interface Captured {
  warns: { obj: Record<string, unknown>; msg: string }[];
  logger: NonNullable<DecisionLogOptions['logger']>;
}

function captureLogger(): Captured {
  const warns: Captured['warns'] = [];
  return {
    warns,
    logger: { warn: (obj, msg) => warns.push({ obj: obj as Record<string, unknown>, msg }), info: () => {} },
  };
}

async function openLog(opts: Partial<DecisionLogOptions> = {}): Promise<DecisionLog> {
  const log = await DecisionLog.open({
    dir,
    segmentSizeBytes: 16 * 1024 * 1024,
    fsyncIntervalMs: 0,
    ...opts,
  });
  opened.push(log);
  return log;
}

function commit(n: number): Omit<CommitRecord, 'kind'> {
  return {
    txid: `sg_test_${n}`,
    database: 'app',
    user: 'alice',
    participants: [
      { shard: 0, gid: `sg_test_${n}_0` },
      { shard: 1, gid: `sg_test_${n}_1` },
    ],
    at: 1_700_000_000_000 + n,
  };
}

const txids = (records: readonly { txid: string }[]): string[] => records.map((r) => r.txid);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function segmentFiles(): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => name.startsWith('decisions-')).sort();
}

async function recordsIn(name: string): Promise<LogRecord[]> {
  return decodeRecords(await fs.readFile(path.join(dir, name))).records;
}

/** The prototype of fs/promises FileHandle, so a test can intercept datasync on the log's own handle. */
async function fileHandlePrototype(): Promise<FileHandle> {
  const handle = await fs.open(dir, 'r');
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
}

/** Holds the next datasync until `release()`; `started` resolves when it is called. */
async function holdNextDatasync(): Promise<{ started: Promise<void>; release: () => void }> {
  const proto = await fileHandlePrototype();
  const original = proto.datasync;
  let release = (): void => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let markStarted = (): void => {};
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  vi.spyOn(proto, 'datasync').mockImplementationOnce(async function (this: FileHandle) {
    markStarted();
    await gate;
    return original.call(this);
  });
  return { started, release };
}

describe('DecisionLog open and replay', () => {
  it('creates a missing directory with a first empty segment', async () => {
    dir = path.join(dir, 'nested', 'wal');
    const log = await openLog();
    expect(await segmentFiles()).toEqual([FIRST_SEGMENT]);
    expect(log.pendingCommits()).toEqual([]);
    expect(log.stats()).toEqual({ segments: 1, pending: 0, fsyncs: 0, bytesWritten: 0 });
  });

  it('replays pending commits after close and reopen, oldest first, without the done ones', async () => {
    const log = await openLog();
    for (let n = 1; n <= 5; n++) await log.appendCommit(commit(n));
    log.appendDone('sg_test_2');
    log.appendDone('sg_test_4');
    await log.close();

    const reopened = await openLog();
    expect(reopened.pendingCommits()).toEqual([1, 3, 5].map((n) => ({ kind: 'commit', ...commit(n) })));
    expect(reopened.stats().pending).toBe(3);
  });

  it('ignores other files in the directory', async () => {
    await fs.writeFile(path.join(dir, 'notes.txt'), 'not a segment');
    await fs.writeFile(path.join(dir, 'decisions-1.log'), 'garbage');
    await fs.writeFile(path.join(dir, `${FIRST_SEGMENT}.bak`), 'garbage');
    const log = await openLog();
    await log.appendCommit(commit(1));
    await log.close();
    expect((await openLog()).pendingCommits()).toHaveLength(1);
    expect((await fs.readdir(dir)).sort()).toEqual(
      ['decisions-1.log', FIRST_SEGMENT, `${FIRST_SEGMENT}.bak`, 'notes.txt'].sort(),
    );
  });

  it('deletes fully done old segments at open; a DONE may close a COMMIT of an older segment', async () => {
    const write = (seq: number, records: LogRecord[]): Promise<void> =>
      fs.writeFile(
        path.join(dir, `decisions-${String(seq).padStart(16, '0')}.log`),
        Buffer.concat(records.map((r) => encodeRecord(r))),
      );
    const c = (n: number): CommitRecord => ({ kind: 'commit', ...commit(n) });
    await write(1, [c(1), c(2)]);
    await write(2, [{ kind: 'done', txid: c(1).txid }, c(3)]);
    await write(3, [{ kind: 'done', txid: c(3).txid }, c(4)]);
    await write(4, [{ kind: 'done', txid: c(4).txid }]);

    const log = await openLog();
    // Segment 1 still holds the open COMMIT 2; 2 and 3 are fully done; 4 is current.
    expect(await segmentFiles()).toEqual([
      'decisions-0000000000000001.log',
      'decisions-0000000000000004.log',
    ]);
    expect(txids(log.pendingCommits())).toEqual(['sg_test_2']);
    expect(log.stats().segments).toBe(2);
  });
});

describe('DecisionLog durability and group commit', () => {
  it('resolves appendCommit only after the record is written and fsynced', async () => {
    const log = await openLog();
    const hold = await holdNextDatasync();
    let isResolved = false;
    const appended = log.appendCommit(commit(1)).then(() => {
      isResolved = true;
    });
    expect(log.pendingCommits()).toEqual([]); // not durable yet

    await hold.started;
    await sleep(30);
    expect(isResolved).toBe(false);
    expect(log.stats().fsyncs).toBe(0);
    expect(txids(await recordsIn(FIRST_SEGMENT))).toEqual(['sg_test_1']); // written, not yet synced
    expect(log.pendingCommits()).toEqual([]);

    hold.release();
    await appended;
    expect(log.stats().fsyncs).toBe(1);
    expect(txids(log.pendingCommits())).toEqual(['sg_test_1']);
  });

  it('puts everything queued while an fsync runs into the next one', async () => {
    const log = await openLog();
    const hold = await holdNextDatasync();
    const first = log.appendCommit(commit(0));
    await hold.started;
    const rest = Array.from({ length: 10 }, (_, i) => log.appendCommit(commit(i + 1)));
    hold.release();
    await Promise.all([first, ...rest]);
    expect(log.stats().fsyncs).toBe(2);
    expect(log.pendingCommits()).toHaveLength(11);
  });

  it('makes 50 concurrent appends share far fewer than 50 fsyncs', async () => {
    const log = await openLog();
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.appendCommit(commit(i))));
    expect(log.stats().fsyncs).toBeLessThanOrEqual(3);
    expect(log.stats().pending).toBe(50);
    await log.close();
    expect(txids((await openLog()).pendingCommits())).toEqual(
      txids(Array.from({ length: 50 }, (_, i) => commit(i))),
    );
  });

  it('with fsyncIntervalMs > 0 gathers appends made within the interval into one fsync', async () => {
    const log = await openLog({ fsyncIntervalMs: 200 });
    const startedAt = Date.now();
    let firstDoneAt = 0;
    const first = log.appendCommit(commit(1)).then(() => (firstDoneAt = Date.now()));
    await sleep(40);
    const second = log.appendCommit(commit(2));
    await sleep(40);
    const third = log.appendCommit(commit(3));
    await Promise.all([first, second, third]);
    expect(log.stats().fsyncs).toBe(1);
    expect(firstDoneAt - startedAt).toBeGreaterThanOrEqual(150);
    expect(log.stats().pending).toBe(3);
  });

  it('rejects every waiting append when an fsync fails, and refuses appends afterwards', async () => {
    const { warns, logger } = captureLogger();
    const log = await openLog({ logger });
    await log.appendCommit(commit(1));
    const proto = await fileHandlePrototype();
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    vi.spyOn(proto, 'datasync').mockRejectedValueOnce(eio);

    const results = await Promise.allSettled([2, 3, 4].map((n) => log.appendCommit(commit(n))));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as DecisionNotDurableError;
      expect(reason).toBeInstanceOf(DecisionNotDurableError);
      expect(reason.cause).toBe(eio);
      expect(reason.mayBeOnDisk).toBe(false);
    }
    await expect(log.appendCommit(commit(5))).rejects.toThrow(/failed earlier.*EIO/);
    await expect(log.flush()).rejects.toThrow(/failed earlier/);
    expect(txids(log.pendingCommits())).toEqual(['sg_test_1']);
    expect(warns.map((w) => w.obj)).toContainEqual(
      expect.objectContaining({ err: eio.message, isCut: true }),
    );
    await expect(log.close()).rejects.toThrow(/EIO/);

    // The failed batch was cut off the file: the rejected COMMITs cannot come back at recovery.
    expect(txids(await recordsIn(FIRST_SEGMENT))).toEqual(['sg_test_1']);
    expect(txids((await openLog()).pendingCommits())).toEqual(['sg_test_1']);
  });

  it('warns that rejected COMMITs may be on disk when the failed batch cannot be cut off', async () => {
    const { warns, logger } = captureLogger();
    const log = await openLog({ logger });
    const proto = await fileHandlePrototype();
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    vi.spyOn(proto, 'datasync').mockRejectedValue(eio);
    vi.spyOn(proto, 'truncate').mockRejectedValue(eio);
    await expect(log.appendCommit(commit(1))).rejects.toMatchObject({ cause: eio, mayBeOnDisk: true });
    expect(warns.map((w) => w.obj)).toContainEqual(expect.objectContaining({ isCut: false }));
    vi.restoreAllMocks();
    await expect(log.close()).rejects.toThrow(/EIO/);
    // What the failed write left is still there: recovery at the next start would commit it.
    expect(txids((await openLog()).pendingCommits())).toEqual(['sg_test_1']);
  });

  it('refuses a second COMMIT for an open txid and malformed records, and keeps working', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    await expect(log.appendCommit(commit(1))).rejects.toThrow(/sg_test_1 already has an open COMMIT/);
    await expect(log.appendCommit({ ...commit(2), participants: [{ shard: -1, gid: 'g' }] })).rejects.toThrow(
      /shard/,
    );
    await log.appendCommit(commit(3));
    expect(txids(log.pendingCommits())).toEqual(['sg_test_1', 'sg_test_3']);
  });
});

describe('DecisionLog DONE records', () => {
  it('drops a done txid from pendingCommits at once but writes the DONE lazily, with the next flush', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    const size = (await fs.stat(path.join(dir, FIRST_SEGMENT))).size;
    log.appendDone('sg_test_1');
    expect(log.pendingCommits()).toEqual([]);
    await sleep(50);
    expect((await fs.stat(path.join(dir, FIRST_SEGMENT))).size).toBe(size);
    expect(log.stats().fsyncs).toBe(1);

    await log.appendCommit(commit(2));
    expect(log.stats().fsyncs).toBe(2);
    expect(await recordsIn(FIRST_SEGMENT)).toEqual([
      { kind: 'commit', ...commit(1) },
      { kind: 'done', txid: 'sg_test_1' },
      { kind: 'commit', ...commit(2) },
    ]);
  });

  it('writes DONE records on their own after a delay, without an fsync', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    log.appendDone('sg_test_1');
    await vi.waitFor(async () => expect(await recordsIn(FIRST_SEGMENT)).toHaveLength(2), { timeout: 3000 });
    expect(log.stats().fsyncs).toBe(1);
  });

  it('ignores unknown and repeated txids', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    log.appendDone('sg_test_404');
    log.appendDone('sg_test_1');
    log.appendDone('sg_test_1');
    await log.flush();
    expect(await recordsIn(FIRST_SEGMENT)).toEqual([
      { kind: 'commit', ...commit(1) },
      { kind: 'done', txid: 'sg_test_1' },
    ]);
  });

  it('keeps a commit done before its flush out of the pending set, also after reopen', async () => {
    const log = await openLog();
    const appended = log.appendCommit(commit(1));
    log.appendDone('sg_test_1');
    await appended;
    expect(log.pendingCommits()).toEqual([]);
    await log.close();
    expect((await openLog()).pendingCommits()).toEqual([]);
  });

  it('flush fsyncs DONE-only writes', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    log.appendDone('sg_test_1');
    await log.flush();
    expect(log.stats().fsyncs).toBe(2);
    await log.flush(); // nothing new: no fsync
    expect(log.stats().fsyncs).toBe(2);
  });
});

describe('DecisionLog torn tails and damage', () => {
  async function writeThree(): Promise<number[]> {
    const log = await openLog();
    const sizes: number[] = [];
    for (let n = 1; n <= 3; n++) {
      await log.appendCommit(commit(n));
      sizes.push((await fs.stat(path.join(dir, FIRST_SEGMENT))).size);
    }
    await log.close();
    return sizes; // file size after each record
  }

  async function expectRecoveredAfterTornTail(goodBytes: number): Promise<void> {
    const { warns, logger } = captureLogger();
    const log = await openLog({ logger });
    const file = path.join(dir, FIRST_SEGMENT);
    expect(warns).toHaveLength(1);
    expect(warns[0].obj).toMatchObject({ file, offset: goodBytes });
    expect(txids(log.pendingCommits())).toEqual(['sg_test_1', 'sg_test_2']);
    expect((await fs.stat(file)).size).toBe(goodBytes);

    await log.appendCommit(commit(9));
    await log.close();
    const reopened = await openLog({ logger });
    expect(warns).toHaveLength(1);
    expect(txids(reopened.pendingCommits())).toEqual(['sg_test_1', 'sg_test_2', 'sg_test_9']);
  }

  it('cuts a record truncated by a crash off the last segment and appends after the good data', async () => {
    const sizes = await writeThree();
    await fs.truncate(path.join(dir, FIRST_SEGMENT), sizes[2] - 3);
    await expectRecoveredAfterTornTail(sizes[1]);
  });

  it('cuts a garbage half-record off the end', async () => {
    const sizes = await writeThree();
    await fs.truncate(path.join(dir, FIRST_SEGMENT), sizes[1]);
    const half = Buffer.alloc(18);
    half.writeUInt32BE(100, 0); // claims 100 payload bytes, has 10
    half.write('{"kind":"c', 8);
    await fs.appendFile(path.join(dir, FIRST_SEGMENT), half);
    await expectRecoveredAfterTornTail(sizes[1]);
  });

  it('treats a CRC mismatch in the last record as a torn write', async () => {
    const sizes = await writeThree();
    const file = path.join(dir, FIRST_SEGMENT);
    const buf = await fs.readFile(file);
    buf[sizes[2] - 5] ^= 0x20;
    await fs.writeFile(file, buf);
    await expectRecoveredAfterTornTail(sizes[1]);
  });

  it('refuses to open when a damaged record is followed by valid ones, naming file and offset', async () => {
    const sizes = await writeThree();
    const file = path.join(dir, FIRST_SEGMENT);
    const buf = await fs.readFile(file);
    buf[sizes[0] + 20] ^= 0x01; // inside the second record's payload
    await fs.writeFile(file, buf);
    const opening = openLog();
    await expect(opening).rejects.toThrow(/decision log is damaged/);
    await expect(opening).rejects.toThrow(`${file} at byte offset ${sizes[0]}`);
    expect((await fs.readFile(file)).equals(buf)).toBe(true); // left as found
  });

  it('refuses to open when a segment other than the last has a torn tail', async () => {
    const log = await openLog({ segmentSizeBytes: 1 });
    await log.appendCommit(commit(1));
    await log.appendCommit(commit(2));
    await log.close();
    expect(await segmentFiles()).toEqual([FIRST_SEGMENT, 'decisions-0000000000000002.log']);
    const file = path.join(dir, FIRST_SEGMENT);
    const size = (await fs.stat(file)).size;
    await fs.truncate(file, size - 1);
    await expect(openLog()).rejects.toThrow(`decision log is damaged: ${file} at byte offset 0`);
  });
});

describe('DecisionLog rotation and compaction', () => {
  it('rotates into new segments and deletes old ones once all their commits are done', async () => {
    const recordBytes = encodeRecord({ kind: 'commit', ...commit(10) }).length;
    const log = await openLog({ segmentSizeBytes: recordBytes * 2 });
    for (let n = 10; n < 20; n++) await log.appendCommit(commit(n));
    expect(await segmentFiles()).toHaveLength(5);
    expect(log.stats().segments).toBe(5);

    // Everything but sg_test_10 (in the first segment) done. Segment 5 is full, so the DONE records go to a new
    // segment 6; only the first (still open) and the current segment stay.
    for (let n = 11; n < 20; n++) log.appendDone(`sg_test_${n}`);
    await log.flush();
    const files = await segmentFiles();
    expect(files).toEqual([FIRST_SEGMENT, 'decisions-0000000000000006.log']);
    await log.close();

    const reopened = await openLog({ segmentSizeBytes: recordBytes * 2 });
    expect(txids(reopened.pendingCommits())).toEqual(['sg_test_10']);
    expect(await segmentFiles()).toEqual(files);

    // The DONE goes to the current segment (6, or 7 if 6 is full) and closes the first one.
    reopened.appendDone('sg_test_10');
    await reopened.flush();
    const left = await segmentFiles();
    expect(left).toHaveLength(1);
    expect(left[0] >= files[1]).toBe(true);
    expect(reopened.stats()).toMatchObject({ segments: 1, pending: 0 });
    await reopened.close();
    expect((await openLog()).pendingCommits()).toEqual([]);
  });

  it('deletes a fully done segment right after rotating away from it', async () => {
    const commitBytes = encodeRecord({ kind: 'commit', ...commit(1) }).length;
    const log = await openLog({ segmentSizeBytes: commitBytes + 1 });
    await log.appendCommit(commit(1));
    log.appendDone('sg_test_1');
    await log.flush(); // DONE lands in segment 1, which is still current
    expect(await segmentFiles()).toEqual([FIRST_SEGMENT]);
    await log.appendCommit(commit(2)); // rotates to segment 2; segment 1 is fully done
    // appendCommit resolves at the fsync, before compaction runs; flush() resolves after it (regression: flaky check).
    await log.flush();
    expect(await segmentFiles()).toEqual(['decisions-0000000000000002.log']);
  });
});

describe('DecisionLog close', () => {
  it('flushes queued DONE records and rejects appends afterwards', async () => {
    const log = await openLog();
    await log.appendCommit(commit(1));
    await log.appendCommit(commit(2));
    log.appendDone('sg_test_1');
    await log.close();
    await expect(log.appendCommit(commit(3))).rejects.toThrow(/decision log is closed/);
    await expect(log.flush()).rejects.toThrow(/decision log is closed/);
    log.appendDone('sg_test_2'); // ignored
    await expect(log.close()).resolves.toBeUndefined();
    expect(txids((await openLog()).pendingCommits())).toEqual(['sg_test_2']);
  });

  it('rejects appends made while closing', async () => {
    const log = await openLog();
    const closing = log.close();
    await expect(log.appendCommit(commit(1))).rejects.toThrow(/closed/);
    await closing;
  });
});
