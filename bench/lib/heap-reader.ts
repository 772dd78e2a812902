// The benchmark's side of bench/lib/heap-report.mjs: the node arguments and environment that load it into a proxy
// process, and a reading of its heap figures (SIGUSR2, then the report file it writes).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './procs.js';

const PRELOAD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'heap-report.mjs');

/** One reading of V8's figures (bytes). */
export interface HeapFigures {
  usedHeap: number;
  totalHeap: number;
  mallocedMemory: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  /** Per V8 space (new_space, old_space, code_space, large_object_space …): its size and the bytes used in it. */
  spaces: Record<string, { size: number; used: number }>;
}

export interface HeapReport {
  at: number;
  /** As the heap was when the signal came. */
  asIs: HeapFigures;
  /** After a full GC (null: the process was started without --expose-gc). */
  afterGc: HeapFigures | null;
  /** GCs seen so far by kind (perf_hooks 'gc' entries; counted asynchronously, so the last one may be missing). */
  gcCounts: { minor: number; major: number; incremental: number; weak: number };
}

/** Node arguments and environment that make a proxy process answer `readHeapReport`. */
export function heapReportSetup(dir: string): { nodeArgs: string[]; env: NodeJS.ProcessEnv; file: string } {
  const file = path.join(dir, 'heap-report.json');
  return {
    nodeArgs: ['--expose-gc', '--import', PRELOAD],
    env: { SHARDGATE_HEAP_REPORT: file },
    file,
  };
}

/**
 * Ask the process `pid` for its heap figures (SIGUSR2) and wait for them (null: none within `timeoutMs`). The report
 * runs a full GC in the process: read RSS before calling this.
 */
export async function readHeapReport(
  pid: number,
  file: string,
  timeoutMs = 10_000,
): Promise<HeapReport | null> {
  const previous = readReport(file)?.at ?? 0;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(50);
    const report = readReport(file);
    if (report !== null && report.at > previous) return report;
  }
  return null;
}

function readReport(file: string): HeapReport | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as HeapReport;
  } catch {
    return null;
  }
}
