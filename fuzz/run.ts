import { parseArgs } from 'node:util';
import { fuzzInWorker } from '../src/lib/fuzz-worker.ts';
import { describeFailure, type FuzzReport, type FuzzTarget } from '../src/lib/fuzz.ts';

// `npm run fuzz`: every fuzz target (the `*.fuzz.ts` files beside the parsers), one after the
// other, each in a worker with a hang watchdog and a heap cap. Not part of CI (the unit tests run
// each target briefly). Flags: --runs N (default 1,000,000 per target), --seconds N (per target),
// --target NAME (repeatable; a prefix such as `http1` picks all of its targets), --seed and
// --path to replay a failure, --heap-mib N (the worker's heap cap, default 256), --list.

const MODULES = ['../src/lib/http1.fuzz.ts', '../src/relay/client-hello.fuzz.ts', '../src/dns/server.fuzz.ts', '../src/protocol/messages.fuzz.ts', '../src/protocol/capsules.fuzz.ts', '../src/lib/proxy-v2.fuzz.ts'].map((m) => new URL(m, import.meta.url));

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000000' },
    seconds: { type: 'string' },
    target: { type: 'string', multiple: true },
    seed: { type: 'string' },
    path: { type: 'string' },
    'heap-mib': { type: 'string' },
    list: { type: 'boolean' },
  },
});

const number = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v.replaceAll('_', ''));
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${flag} ${v}: expected a number, e.g. --${flag} 1000`);
    process.exit(2);
  }
  return n;
};
const runs = number('runs', values.runs)!;
const seconds = number('seconds', values.seconds);
const seed = number('seed', values.seed);
const heapMiB = number('heap-mib', values['heap-mib']);

const all: { module: URL; target: FuzzTarget }[] = [];
for (const module of MODULES) {
  const mod = (await import(module.href)) as { targets: FuzzTarget[] };
  for (const target of mod.targets) all.push({ module, target });
}
const wanted = values.target ?? [];
const chosen = wanted.length === 0 ? all : all.filter(({ target }) => wanted.some((w) => target.name === w || target.name.startsWith(w + '-')));
if (values.list || chosen.length === 0) {
  if (chosen.length === 0) console.error(`no fuzz target matches ${wanted.join(', ')}; the targets are:`);
  for (const { target } of all) console.log(`  ${target.name.padEnd(18)} ${target.about}`);
  process.exit(chosen.length === 0 ? 2 : 0);
}

const reports: FuzzReport[] = [];
const t0 = Date.now();
for (const { module, target } of chosen) {
  process.stdout.write(`${target.name.padEnd(18)} `);
  const r = await fuzzInWorker(module, target.name, { runs, seconds, seed, path: values.path, heapMiB });
  reports.push(r);
  const rate = r.ms > 0 ? Math.round((r.runs / r.ms) * 1000) : 0;
  console.log(`${r.failure ? 'FAIL' : 'ok  '} ${String(r.runs).padStart(9)} inputs  ${(r.ms / 1000).toFixed(1).padStart(7)} s  ${String(rate).padStart(6)}/s  heap ≤ ${r.heapMiB} MiB`);
  if (r.failure) console.log(`  ${describeFailure(r)}`);
}
const failed = reports.filter((r) => r.failure);
console.log(`\n${reports.length} targets, ${reports.reduce((n, r) => n + r.runs, 0)} inputs in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${failed.length === 0 ? 'no crash, hang or unbounded allocation' : `${failed.length} failed (${failed.map((r) => r.target).join(', ')})`}`);
process.exit(failed.length === 0 ? 0 : 1);
