import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFailure } from './fuzz.ts';
import { fuzzInWorker } from './fuzz-worker.ts';

// The fuzz driver itself: each kind of failure a target can have is caught and reported with
// what is needed to replay it (a driver that missed one would let `npm run fuzz` pass on it).
const fixtures = new URL('../../test/support/fuzz-fixtures.ts', import.meta.url);

describe('fuzz driver', () => {
  it('runs a passing target for the inputs asked', async () => {
    const r = await fuzzInWorker(fixtures, 'fine', { runs: 500 });
    assert.equal(r.failure, undefined, describeFailure(r));
    assert.equal(r.runs, 500);
  });

  it('reports a crash with the shrunk input, seed and path, and replays it', async () => {
    const r = await fuzzInWorker(fixtures, 'throws', { runs: 100_000, seed: 42 });
    assert.equal(r.failure?.kind, 'crash');
    assert.match(r.failure.message, /TypeError: cannot read 0x42/);
    assert.match(r.failure.counterexample ?? '', /^Uint8Array\.from\(\[(66|66,\d+|\d+,66)\]\)$/, 'shrunk to one or two bytes');
    const again = await fuzzInWorker(fixtures, 'throws', { runs: 1, seed: r.failure.seed, path: r.failure.path });
    assert.equal(again.failure?.counterexample, r.failure.counterexample);
    assert.match(describeFailure(r), /replay: npm run fuzz -- --target throws --seed 42 --path \S+/);
  });

  it('reports an input over the time bound as a hang, with the input', async () => {
    const r = await fuzzInWorker(fixtures, 'slow', { runs: 10_000, inputTimeMs: 50 });
    assert.equal(r.failure?.kind, 'hang');
    assert.match(r.failure.counterexample ?? '', /^Uint8Array\.from\(\[(\d+,){8,15}\d+\]\)$/);
  });

  it('stops a target that loops forever and reports a hang', async () => {
    const r = await fuzzInWorker(fixtures, 'loops', { runs: 10_000, hangMs: 1000 });
    assert.equal(r.failure?.kind, 'hang');
    assert.match(r.failure.message, /no input finished for \d+ s/);
  });

  for (const target of ['hogs', 'hogs-buffers']) {
    it(`reports unbounded allocation (${target === 'hogs' ? 'JS heap' : 'buffers'}) when the cap is reached`, async () => {
      const r = await fuzzInWorker(fixtures, target, { runs: 1_000_000, heapMiB: 48 });
      assert.equal(r.failure?.kind, 'memory');
      assert.match(r.failure.message, /48 MiB heap cap/);
    });
  }
});
