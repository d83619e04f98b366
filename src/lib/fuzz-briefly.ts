import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFailure, type FuzzTarget } from './fuzz.ts';
import { fuzzInWorker } from './fuzz-worker.ts';

/**
 * The short fuzz run of `npm test`: each target of `module` for a few thousand inputs or a few
 * seconds (a new seed each run; a failure prints how to replay it with `npm run fuzz`).
 */
export function fuzzBriefly(module: URL, targets: FuzzTarget[], runs = 5000, seconds = 3): void {
  describe(`fuzz ${module.pathname.split('/').pop()}`, () => {
    for (const t of targets) {
      it(`${t.name}: ${t.about}`, async () => {
        const r = await fuzzInWorker(module, t.name, { runs, seconds });
        assert.equal(r.failure, undefined, describeFailure(r));
        assert.ok(r.runs > 0);
      });
    }
  });
}
