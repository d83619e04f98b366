import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

// Run in a child process: the flags are process-wide, and the test runner's own process must
// keep V8's defaults.
const run = promisify(execFile);
const script = (keepMiB: number): string => `
import { tuneV8ForDataPlane, incrementalMarkingRestored } from ${JSON.stringify(new URL('./v8-tuning.ts', import.meta.url).href)};
tuneV8ForDataPlane();
const keep = [];
for (let i = 0; i < ${keepMiB} * 1024 * 16; i++) keep.push({ i, s: 'x' + i });
globalThis.gc();
await new Promise((r) => setTimeout(r, 100));
console.log(JSON.stringify({ restored: incrementalMarkingRestored(), kept: keep.length }));
`;

async function child(keepMiB: number): Promise<{ restored: boolean }> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script(keepMiB)]);
  return JSON.parse(stdout.trim()) as { restored: boolean };
}

describe('GC settings for the data plane', () => {
  it('keep incremental marking off while the heap is small', async () => {
    assert.equal((await child(1)).restored, false);
  });

  it('go back to incremental marking once a full GC leaves a large heap', async () => {
    assert.equal((await child(120)).restored, true);
  });
});
