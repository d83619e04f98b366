import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Clock } from '../lib/clock.ts';

// Test-only hook, read here in the CLI and nowhere else: TUNN_TEST_CLOCK_FILE names a file
// holding a number of milliseconds that the relay's certificate clock (renewal, retries,
// expiry alerts) adds to the real time. When the file changes, the relay runs a certificate
// maintenance pass at once, as its timer would at that time. End-to-end tests move time past
// two thirds of a certificate's lifetime, or past a scheduled retry, by writing this file.
// It never reaches authentication or shared state: the domains API (cert-event HMAC freshness)
// and the cluster's shared ACME challenge rows keep the system clock (domains/setup.ts wallClock).
// An agent whose TLS ends at it (run-agent-tls.ts) reads the same variable for its certificate
// clock alone (renewal and retry times; never its gate's sessions, decisions or rate limits).
// Unset (every real deployment): the system clock.

export const TEST_CLOCK_ENV = 'TUNN_TEST_CLOCK_FILE';

export interface TestClock {
  clock: Clock;
  /** Calls `fn` after each change of the offset; returns a function that stops watching. */
  onChange(fn: () => void): () => void;
}

export function testClockFrom(env: NodeJS.ProcessEnv): TestClock | undefined {
  const file = env[TEST_CLOCK_ENV];
  if (!file) return undefined;
  const read = (): number => {
    try {
      const v = Number(readFileSync(file, 'utf8').trim() || 0);
      return Number.isFinite(v) ? v : 0;
    } catch {
      return 0; // no file yet: no offset
    }
  };
  let offset = read();
  return {
    clock: { now: () => Date.now() + offset },
    onChange(fn) {
      const listener = (): void => {
        const next = read();
        if (next === offset) return;
        offset = next;
        fn();
      };
      watchFile(file, { interval: 50, persistent: false }, listener);
      return () => unwatchFile(file, listener);
    },
  };
}
