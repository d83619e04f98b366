import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { runTarget, type FuzzOptions, type FuzzReport, type FuzzTarget } from './fuzz.ts';

// Runs a fuzz target in a worker thread, so that what the worker cannot report itself is still
// caught: an input that loops forever (the heartbeat stops: a hang) and unbounded allocation
// (the worker's heap is capped: it dies out of memory). Used by `npm run fuzz` and the unit tests.

export interface WorkerFuzzOptions extends FuzzOptions {
  /** No input finished for this long: the worker is stopped and the target reported as hung (default 60 s). */
  hangMs?: number;
  /** The worker's old-generation heap cap in MiB, and the cap on buffers held (default 256). */
  heapMiB?: number;
}

interface Job {
  module: string;
  target: string;
  opts: FuzzOptions;
  beats: SharedArrayBuffer;
}

/** Fuzzes export `target` of `module` (a `*.fuzz.ts` URL whose `targets` array names it) in a worker. */
export function fuzzInWorker(module: URL, target: string, opts: WorkerFuzzOptions = {}): Promise<FuzzReport> {
  const rss0 = process.memoryUsage.rss();
  const beats = new SharedArrayBuffer(4);
  const counter = new Int32Array(beats);
  const { hangMs = 60_000, heapMiB = 256, ...fuzz } = opts;
  const job: Job = { module: module.href, target, opts: fuzz, beats };
  const worker = new Worker(new URL(import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: heapMiB } });
  const started = Date.now();
  return new Promise<FuzzReport>((resolve) => {
    let settled = false;
    const done = (r: FuzzReport): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      void worker.terminate();
      resolve(r);
    };
    const fail = (kind: 'crash' | 'hang' | 'memory', message: string): void =>
      done({ target, runs: Atomics.load(counter, 0), ms: Date.now() - started, heapMiB: 0, failure: { kind, message, seed: fuzz.seed } });
    let last = -1;
    let lastChange = Date.now();
    const watch = setInterval(() => {
      // Buffers live outside the worker's capped heap: the process's resident size bounds them
      // (the heap cap again, plus 256 MiB for the worker itself: its young generation, code and
      // memory the allocator keeps; measured at up to ~200 MiB with a 64 MiB heap cap).
      const grown = (process.memoryUsage.rss() - rss0) / 2 ** 20;
      const cap = 2 * heapMiB + 256;
      if (grown > cap) return fail('memory', `the process grew by ${Math.round(grown)} MiB (cap ${cap} MiB: twice the ${heapMiB} MiB heap cap and 256) after ${Atomics.load(counter, 0)} inputs: unbounded allocation`);
      const now = Atomics.load(counter, 0);
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > hangMs) {
        fail('hang', `no input finished for ${Math.round((Date.now() - lastChange) / 1000)} s after ${now} inputs: an input loops forever`);
      }
    }, 250);
    worker.on('message', (r: FuzzReport) => done(r));
    worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') fail('memory', `the target used more than the ${heapMiB} MiB heap cap after ${Atomics.load(counter, 0)} inputs: unbounded allocation`);
      else fail('crash', `${err.name}: ${err.message} (outside the property: uncaught in the worker)`);
    });
    worker.on('exit', (code) => fail('crash', `the worker exited with code ${code} before reporting`));
  });
}

async function work(job: Job): Promise<void> {
  const mod = (await import(job.module)) as { targets?: FuzzTarget[] };
  const t = mod.targets?.find((x) => x.name === job.target);
  if (!t) throw new TypeError(`no fuzz target "${job.target}" in ${job.module}`);
  const counter = new Int32Array(job.beats);
  const report = await runTarget(t, job.opts, () => Atomics.add(counter, 0, 1));
  parentPort!.postMessage(report);
}

if (!isMainThread && (workerData as Partial<Job> | null)?.beats instanceof SharedArrayBuffer) void work(workerData as Job);
