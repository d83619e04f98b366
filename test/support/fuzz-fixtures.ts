import fc from 'fast-check';
import { fuzzTarget, type FuzzTarget } from '../../src/lib/fuzz.ts';

// Deliberately broken fuzz targets: the driver's own tests (src/lib/fuzz.test.ts) check that
// each kind of failure is caught and reported.

const kept: unknown[] = [];

export const targets: FuzzTarget[] = [
  fuzzTarget({ name: 'fine', about: 'passes', input: fc.uint8Array(), check: () => {} }),
  fuzzTarget({
    name: 'throws',
    about: 'throws a TypeError on any input holding byte 0x42',
    input: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    check: (b) => {
      if (b.includes(0x42)) throw new TypeError('cannot read 0x42');
    },
  }),
  fuzzTarget({
    name: 'loops',
    about: 'loops forever on an input longer than 4 bytes',
    input: fc.uint8Array({ maxLength: 16 }),
    check: (b) => {
      while (b.length > 4) b = b.subarray(0);
    },
  }),
  fuzzTarget({
    name: 'slow',
    about: 'takes 120 ms of CPU on inputs over 8 bytes',
    input: fc.uint8Array({ maxLength: 16 }),
    check: (b) => {
      if (b.length <= 8) return;
      const t0 = process.threadCpuUsage();
      // Starts from zero: t0 is the thread's CPU so far, which may already be over 120 ms once modules are loaded.
      for (let used = { user: 0, system: 0 }; used.user + used.system < 120_000; used = process.threadCpuUsage(t0));
    },
  }),
  fuzzTarget({
    name: 'hogs',
    about: 'keeps about 1 MiB of JS heap of every input',
    input: fc.constant(0),
    check: () => {
      kept.push(new Array(128 * 1024).fill(kept.length + 0.5));
    },
  }),
  fuzzTarget({
    name: 'hogs-buffers',
    about: 'keeps a 1 MiB buffer (outside the JS heap) of every input',
    input: fc.constant(0),
    check: () => {
      kept.push(Buffer.alloc(1024 * 1024, 1));
    },
  }),
];
