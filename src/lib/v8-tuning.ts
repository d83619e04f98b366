import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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
// The cost: without incremental marking a full GC is one pause that grows with the heap (measured
// 20 ms at 37 MiB, 106 ms at 75 MiB with 4,000 open connections); such GCs are rare because the
// buffer churn no longer triggers them. Turning incremental marking back on later, at run time,
// was tried and broke the relay (V8 flags are meant to be set once, at start): these are set once,
// before the CLI loads anything else.
export const DATA_PLANE_V8_FLAGS = ['--external-memory-accounted-in-global-limit', '--no-incremental-marking'];

export function tuneV8ForDataPlane(): void {
  for (const flag of DATA_PLANE_V8_FLAGS) setFlagsFromString(flag);
}

/**
 * One full, memory-reducing collection, for a server that has just started and is about to idle.
 *
 * Start-up (loading and compiling modules, migrations, certificates) allocates in bursts in which
 * most objects survive, so V8 grows the young generation to its maximum (32 MiB) and leaves the
 * start-up garbage in the old one; an idle server allocates too little to trigger the collection
 * that would give them back. The "last resort" collection shrinks the young generation to its
 * minimum and returns the freed pages: 114 -> 94 MiB RSS for an idle `tunn relay --dev`. The
 * young generation grows again under load as it would anyway. It costs one pause right after
 * start-up, ~85 ms of CPU (several collections until nothing more is freed), once.
 *
 * `gc` is only exposed to contexts created after --expose-gc is set; a new context's `gc`
 * collects the whole isolate.
 */
export function releaseStartupMemory(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
