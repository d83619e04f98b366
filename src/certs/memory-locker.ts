import type { Locker, Unlock } from './storage.ts';

// Locks within one process: enough where one process is the only user of its storage (a
// single relay on SQLite). Waiters are served in the order they asked.

export class MemoryLocker implements Locker {
  readonly #tails = new Map<string, Promise<void>>();

  async lock(key: string, opts: { signal?: AbortSignal } = {}): Promise<Unlock> {
    opts.signal?.throwIfAborted();
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    const unlock = once(async () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    if (opts.signal) {
      const signal = opts.signal;
      let onAbort!: () => void;
      const aborted = new Promise<never>((_, reject) => (onAbort = () => reject(signal.reason)));
      // Removed again below: a long-lived signal (the manager's stop) sees many locks.
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.race([before, aborted]);
      } catch (err) {
        // Our turn still comes in order; pass it straight on.
        void before.then(unlock);
        throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } else {
      await before;
    }
    return unlock;
  }
}

export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
