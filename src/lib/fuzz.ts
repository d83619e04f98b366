import fc from 'fast-check';
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

// The shared driver of the fuzz targets (`*.fuzz.ts`, beside the parser each exercises).
// A target is a fast-check property over generated inputs (random bytes, grammar-built valid
// inputs, and mutations of those); the driver runs it for a number of inputs or seconds with a
// time bound on every input and a heartbeat the worker's watchdog reads (fuzz-worker.ts), so an
// input that loops forever is reported as a hang rather than stalling the run.

/** A named property. `check` throws (or returns false) when the input breaks a property. */
export interface FuzzTarget<T = unknown> {
  name: string;
  /** What is checked, one line, printed by `npm run fuzz`. */
  about: string;
  input: fc.Arbitrary<T>;
  check(input: T): void | boolean | Promise<void | boolean>;
}

/** A target with its input type checked against its generator (the list of targets is untyped). */
export function fuzzTarget<T>(t: FuzzTarget<T>): FuzzTarget {
  return t as unknown as FuzzTarget;
}

export interface FuzzOptions {
  /** Inputs to try (default 1,000,000). */
  runs?: number;
  /** Stop after this many seconds even if `runs` is not reached. */
  seconds?: number;
  seed?: number;
  /** Replay path of a failure (from a report), with its seed. */
  path?: string;
  /** One input using more CPU time than this fails as a hang (default 2 s: generous). */
  inputTimeMs?: number;
}

export interface FuzzFailure {
  kind: 'crash' | 'hang' | 'memory';
  message: string;
  counterexample?: string;
  /** Rerun with `--target <name> --seed <seed> --path <path>` to replay the failure. */
  seed?: number;
  path?: string;
}

export interface FuzzReport {
  target: string;
  runs: number;
  ms: number;
  /** Largest heap of the isolate seen during the run (MiB), sampled. */
  heapMiB: number;
  failure?: FuzzFailure;
}

/** Runs one target in this thread. `beat` is called once per input (the watchdog's heartbeat). */
export async function runTarget<T>(target: FuzzTarget<T>, opts: FuzzOptions = {}, beat: () => void = () => {}): Promise<FuzzReport> {
  const bound = opts.inputTimeMs ?? 2000;
  let count = 0;
  let heap = getHeapStatistics().used_heap_size;
  const predicate = async (input: T): Promise<void> => {
    beat();
    if (++count % 8192 === 0) heap = Math.max(heap, getHeapStatistics().used_heap_size);
    // CPU time of this thread, not wall time: a shared machine may deschedule the worker.
    const t0 = process.threadCpuUsage();
    const ok = await target.check(input);
    const used = process.threadCpuUsage(t0);
    const ms = (used.user + used.system) / 1000;
    if (ok === false) throw new Error('property returned false');
    if (ms > bound) throw new Error(`one input took ${Math.round(ms)} ms of CPU (bound ${bound} ms): a hang`);
  };
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0;
  // The wall-clock timeout catches a promise that never settles; generous, as the machine is shared.
  const params: fc.Parameters<[T]> = { numRuns: opts.runs ?? 1_000_000, seed, timeout: Math.max(10 * bound, 10_000), endOnFailure: false };
  if (opts.seconds !== undefined) Object.assign(params, { interruptAfterTimeLimit: opts.seconds * 1000, markInterruptAsFailure: false });
  if (opts.path !== undefined) params.path = opts.path;
  const t0 = performance.now();
  const details = await fc.check(fc.asyncProperty(target.input, predicate), params);
  const report: FuzzReport = { target: target.name, runs: count, ms: Math.round(performance.now() - t0), heapMiB: Math.round(heap / 2 ** 20) };
  if (details.failed) {
    const err = details.errorInstance;
    const message = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 3000);
    report.failure = {
      kind: /a hang|timeout/i.test(message) ? 'hang' : 'crash',
      message,
      counterexample: details.counterexample ? fc.stringify(details.counterexample[0]).slice(0, 3000) : undefined,
      seed: details.seed,
      path: details.counterexamplePath ?? undefined,
    };
  }
  return report;
}

/** A failure as `npm run fuzz` prints it: what broke, the input, and how to replay it. */
export function describeFailure(r: FuzzReport): string {
  const f = r.failure;
  if (!f) return `${r.target}: no failure in ${r.runs} inputs`;
  const lines = [`${r.target}: ${f.kind} after ${r.runs} inputs: ${f.message}`];
  if (f.counterexample) lines.push(`input: ${f.counterexample}`);
  if (f.seed !== undefined) lines.push(`replay: npm run fuzz -- --target ${r.target} --seed ${f.seed}${f.path ? ` --path ${f.path}` : ''}`);
  return lines.join('\n  ');
}

// ---- Generators shared by the targets ----

/** Bytes that matter to the parsers here: delimiters, digits, hex, controls, high bytes. */
const SPECIAL = [0, 1, 9, 10, 13, 32, 34, 44, 46, 48, 49, 57, 58, 59, 65, 70, 92, 102, 123, 125, 127, 128, 192, 255];

type Mutation =
  | { op: 'set'; at: number; byte: number }
  | { op: 'flip'; at: number; bit: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; len: number }
  | { op: 'repeat'; at: number; len: number; times: number };

const byte = fc.oneof(fc.constantFrom(...SPECIAL), fc.integer({ min: 0, max: 255 }));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte }),
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => b.map((x, i) => (i % 2 ? x : SPECIAL[x % SPECIAL.length]!))) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }), times: fc.integer({ min: 2, max: 8 }) }),
);

function applyMutation(buf: Buffer, m: Mutation): Buffer {
  const at = buf.length === 0 ? 0 : m.at % (buf.length + (m.op === 'insert' ? 1 : 0));
  switch (m.op) {
    case 'set':
    case 'flip': {
      if (buf.length === 0) return buf;
      const out = Buffer.from(buf);
      out[at] = m.op === 'set' ? m.byte : out[at]! ^ (1 << m.bit);
      return out;
    }
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
    case 'delete':
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.len)]);
    case 'repeat': {
      const part = buf.subarray(at, at + m.len);
      return Buffer.concat([buf.subarray(0, at), ...Array<Buffer>(m.times).fill(part), buf.subarray(at + m.len)]);
    }
  }
}

/** `valid` with up to `max` byte-level mutations applied (flips, inserts, deletes, repeats). */
export function mutated(valid: fc.Arbitrary<Buffer>, max = 6): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: max })).map(([buf, ms]) => ms.reduce(applyMutation, buf));
}

/** Random bytes, biased towards the bytes parsers branch on. */
export function randomBytes(maxLength = 512): fc.Arbitrary<Buffer> {
  return fc.oneof(fc.uint8Array({ maxLength }), fc.array(byte, { maxLength })).map((b) => Buffer.from(b));
}

/** Sorted cut points (as fractions of the length, so they shrink well) that split an input into pieces. */
export const cuts: fc.Arbitrary<number[]> = fc.array(fc.integer({ min: 0, max: 65536 }).map((n) => n / 65536), { maxLength: 12 });

/** `buf` split at `at` (fractions of its length); every byte is in exactly one piece. */
export function split(buf: Buffer, at: number[]): Buffer[] {
  const points = at.map((f) => Math.floor(f * buf.length)).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(buf.subarray(from, p));
    from = p;
  }
  pieces.push(buf.subarray(from));
  return pieces;
}
