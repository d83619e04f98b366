import { PerformanceObserver, constants as perf } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

// Garbage-collector settings for the data plane, applied by the CLI before anything else runs.
//
// Every chunk the data plane receives (an HTTP/2 DATA frame over TLS, a socket read) lives in a
// fresh ArrayBuffer that V8 counts as "external memory". By default V8 starts a full mark-compact
// each time that count grows 64 MiB past the last one, even though nearly all of those buffers
// are already garbage that the cheap young-generation GC would free: a full-heap GC every ~64 MiB
// forwarded, about a third of relay and agent CPU during a bulk transfer. Accounting external
// memory inside the global heap limit, and collecting the old generation only when that limit
// is reached (no incremental marking started early by buffer churn), removes those collections:
// 27-41 full GCs per 2 GiB download → 0-1, measured in bench/RESULTS.md.
//
// Without incremental marking a full GC is one pause, which grows with the heap (measured: 20 ms
// at 37 MiB, 106 ms at 75 MiB with 4,000 open connections). A heap that large also has room
// enough above it for the buffer churn, so once the old generation passes LARGE_HEAP the
// process goes back to V8's incremental (mostly concurrent) marking and its short pauses.
export const DATA_PLANE_V8_FLAGS = ['--external-memory-accounted-in-global-limit', '--no-incremental-marking'];
export const LARGE_HEAP = 48 * 1024 * 1024;

let observer: PerformanceObserver | undefined;
let restored = false;

export function tuneV8ForDataPlane(): void {
  for (const flag of DATA_PLANE_V8_FLAGS) setFlagsFromString(flag);
  // Checked after each full GC, when no marking is in progress: turning incremental marking on
  // then is safe. It is never turned off again.
  observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind !== perf.NODE_PERFORMANCE_GC_MAJOR) continue;
      if (getHeapStatistics().used_heap_size < LARGE_HEAP) continue;
      setFlagsFromString('--incremental-marking');
      restored = true;
      observer?.disconnect();
      observer = undefined;
      return;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** Whether the process switched back to incremental marking (for tests). */
export function incrementalMarkingRestored(): boolean {
  return restored;
}
