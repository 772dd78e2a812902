// A preload for a benchmarked proxy process (`node --expose-gc --import bench/lib/heap-report.mjs …`): on SIGUSR2 it
// writes the process's V8 heap figures to the file named by SHARDGATE_HEAP_REPORT (JSON, written whole with a rename),
// as they are and, when gc is exposed, after a full GC (the live heap). Nothing else changes in the proxy: it only
// listens for the signal. Read by bench/lib/heap-reader.ts. Plain JavaScript so that `node dist/cli.js` can load it.
//
// SHARDGATE_HEAP_PROFILE (a file path) adds V8's sampling heap profiler: the first SIGUSR2 starts it (every 128 bytes
// allocated, objects later collected included), the second writes the profile there (a .heapprofile, readable by
// Chrome DevTools) — what allocates, not what is kept.
import fs from 'node:fs';
import v8 from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';

const reportFile = process.env.SHARDGATE_HEAP_REPORT;
const profileFile = process.env.SHARDGATE_HEAP_PROFILE;

/** GC counts by kind since start (perf_hooks 'gc' entries: 1 minor, 2 major, 4 incremental, 8 weak callbacks). */
const gcCounts = { minor: 0, major: 0, incremental: 0, weak: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = e.detail?.kind;
    if (kind === 1) gcCounts.minor++;
    else if (kind === 2) gcCounts.major++;
    else if (kind === 4) gcCounts.incremental++;
    else gcCounts.weak++;
  }
}).observe({ entryTypes: ['gc'] });

function figures() {
  const heap = v8.getHeapStatistics();
  const spaces = {};
  for (const s of v8.getHeapSpaceStatistics()) {
    spaces[s.space_name] = { size: s.space_size, used: s.space_used_size };
  }
  const mem = process.memoryUsage();
  return {
    usedHeap: heap.used_heap_size,
    totalHeap: heap.total_heap_size,
    mallocedMemory: heap.malloced_memory,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    rss: mem.rss,
    spaces,
  };
}

let session = null;

async function profileStep() {
  if (session === null) {
    const inspector = await import('node:inspector'); // loaded only when profiling
    session = new inspector.Session();
    session.connect();
    session.post('HeapProfiler.enable');
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 128,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return;
  }
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err === null) fs.writeFileSync(profileFile, JSON.stringify(result.profile));
    session.disconnect();
    session = null;
  });
}

if (reportFile !== undefined) {
  process.on('SIGUSR2', () => {
    const asIs = figures();
    const gcBefore = { ...gcCounts };
    let afterGc = null;
    if (typeof globalThis.gc === 'function') {
      globalThis.gc();
      afterGc = figures();
    }
    const tmp = `${reportFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ at: Date.now(), asIs, afterGc, gcCounts: gcBefore }));
    fs.renameSync(tmp, reportFile);
    if (profileFile !== undefined) void profileStep();
  });
}
