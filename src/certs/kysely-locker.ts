import { sql } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Store } from '../store/store.ts';
import { MemoryLocker, once } from './memory-locker.ts';
import type { Locker, Unlock } from './storage.ts';

// The locker that goes with the database store. PostgreSQL (a cluster of relays, DESIGN
// decision 11): a session advisory lock, held on a pooled connection kept for the lock's life,
// so a relay that dies or loses its connection releases it at once. Those connections come
// from the relay's one pool, so at most `maxConnections` are used for locks (waiting or
// holding) at a time; further callers wait in the process. SQLite is one relay's file: locks
// within the process are enough.

/** The first key of the two-int advisory lock space: tunn's certificate locks ("tunc"). */
const LOCK_SPACE = 0x74756e63;

export function storeLocker(store: Store, logger?: Logger): Locker {
  return store.dialect === 'postgres' ? new PostgresAdvisoryLocker(store, { logger }) : new MemoryLocker();
}

export class PostgresAdvisoryLocker implements Locker {
  readonly #store: Store;
  readonly #pollMs: number;
  readonly #logger?: Logger;
  readonly #maxConnections: number;
  #inUse = 0;
  readonly #queue: (() => void)[] = [];

  constructor(store: Store, opts: { pollMs?: number; logger?: Logger; maxConnections?: number } = {}) {
    if (store.dialect !== 'postgres') throw new TypeError('PostgresAdvisoryLocker needs a PostgreSQL store');
    this.#store = store;
    this.#pollMs = opts.pollMs ?? 250;
    this.#logger = opts.logger;
    this.#maxConnections = opts.maxConnections ?? 2;
  }

  async lock(key: string, opts: { signal?: AbortSignal } = {}): Promise<Unlock> {
    opts.signal?.throwIfAborted();
    await this.#connectionSlot(opts.signal);
    try {
      return await this.#lockOnConnection(key, opts.signal);
    } catch (err) {
      this.#freeSlot();
      throw err;
    }
  }

  #connectionSlot(signal: AbortSignal | undefined): Promise<void> {
    if (this.#inUse < this.#maxConnections) {
      this.#inUse++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const take = (): void => {
        signal?.removeEventListener('abort', abort);
        this.#inUse++;
        resolve();
      };
      const abort = (): void => {
        const i = this.#queue.indexOf(take);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.#queue.push(take);
    });
  }

  #freeSlot(): void {
    this.#inUse--;
    this.#queue.shift()?.();
  }

  #lockOnConnection(key: string, signal: AbortSignal | undefined): Promise<Unlock> {
    const opts = { signal };
    return new Promise<Unlock>((resolve, reject) => {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let held = false;
      // try-lock in a loop, not pg_advisory_lock: a long wait would run into the query timeout.
      const done = this.#store.db
        .connection()
        .execute(async (conn) => {
          for (;;) {
            opts.signal?.throwIfAborted();
            const r = await sql<{ ok: boolean }>`SELECT pg_try_advisory_lock(${LOCK_SPACE}, hashtext(${key})) AS ok`.execute(conn);
            if (r.rows[0]?.ok) break;
            await sleep(this.#pollMs, undefined, { signal: opts.signal });
          }
          held = true;
          resolve(
            once(async () => {
              release();
              await done;
            }),
          );
          await released;
          await sql`SELECT pg_advisory_unlock(${LOCK_SPACE}, hashtext(${key}))`.execute(conn);
        })
        .catch((err: unknown) => {
          if (!held) return reject(err);
          // The session ended while held (the database restarted): the lock is gone already.
          this.#logger?.warn({ err: errorMessage(err), lock: key }, `releasing the certificate lock ${key} failed (its database session ended; the lock went with it): ${errorMessage(err)}`);
        })
        .finally(() => {
          if (held) this.#freeSlot();
        });
    });
  }
}
