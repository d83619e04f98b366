import assert from 'node:assert/strict';
import { it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { releaseStartupMemory } from './v8-tuning.ts';

const youngGenerationMiB = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size / 2 ** 20;

// Guards the relay's idle memory (issue 9): what a start-up burst grew is given back.
it('releaseStartupMemory shrinks the young generation a burst of surviving allocations grew', () => {
  // Like start-up: many objects that survive their first collections.
  let kept: object[] = [];
  for (let i = 0; i < 2_000_000; i++) kept.push({ i, s: `entry ${i}` });
  const grown = youngGenerationMiB();
  assert.ok(grown >= 8, `the burst grew the young generation (${grown} MiB)`);
  kept = [];
  releaseStartupMemory();
  const after = youngGenerationMiB();
  assert.ok(after <= 2, `the young generation is back to its minimum: ${after} MiB (was ${grown} MiB)`);
  assert.equal(kept.length, 0);
});
