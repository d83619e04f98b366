import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock, type Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { once } from './memory-locker.ts';
import type { Locker, Unlock } from './storage.ts';

// Lock files (certmagic's filestorage.go): `<dir>/<key>.lock`, created exclusively (O_EXCL)
// and holding who took it and when it was last refreshed. The holder refreshes it every
// refreshMs; a lock file not refreshed for staleMs belongs to a holder that died and is taken
// over. Works across processes on one machine and on file systems where O_EXCL is atomic.

export interface FileLockerOptions {
  /** Refresh period of a held lock (default 5 s). */
  refreshMs?: number;
  /** A lock not refreshed for this long is stale (default 30 s; well over refreshMs). */
  staleMs?: number;
  /** How often a waiter looks again (default 250 ms). */
  pollMs?: number;
  clock?: Clock;
  logger?: Logger;
}

interface LockFile {
  owner: string;
  pid: number;
  created: number;
  updated: number;
}

export class FileLocker implements Locker {
  readonly #dir: string;
  readonly #o: Required<Omit<FileLockerOptions, 'logger'>> & { logger?: Logger };

  constructor(dir: string, opts: FileLockerOptions = {}) {
    this.#dir = dir;
    this.#o = { refreshMs: opts.refreshMs ?? 5000, staleMs: opts.staleMs ?? 30_000, pollMs: opts.pollMs ?? 250, clock: opts.clock ?? systemClock, logger: opts.logger };
  }

  /** The lock file of `key` (certificate names hold `*`; keys are made file-safe). */
  pathOf(key: string): string {
    return join(this.#dir, `${safeFileName(key)}.lock`);
  }

  async lock(key: string, opts: { signal?: AbortSignal } = {}): Promise<Unlock> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const path = this.pathOf(key);
    const owner = randomBytes(12).toString('hex');
    for (;;) {
      opts.signal?.throwIfAborted();
      const now = this.#o.clock.now();
      const meta: LockFile = { owner, pid: process.pid, created: now, updated: now };
      try {
        const fh = await open(path, 'wx', 0o600);
        try {
          await fh.writeFile(JSON.stringify(meta));
        } finally {
          await fh.close();
        }
        return this.#held(path, meta);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`taking the lock file ${path}: ${errorMessage(err)}`, { cause: err });
      }
      const stale = await this.#stale(path);
      if (stale !== undefined) {
        // Only the stale holder's file goes: another waiter may have taken it over meanwhile.
        const again = await readOwner(path);
        if (again === stale) {
          this.#o.logger?.warn({ lock: path }, `taking over the stale lock file ${path} (not refreshed for ${this.#o.staleMs} ms: its holder is gone)`);
          await rm(path, { force: true });
        }
        continue;
      }
      await sleep(this.#o.pollMs, undefined, { signal: opts.signal });
    }
  }

  /** The owner of a stale lock file ('' for an unreadable one), or undefined while it is live or gone. */
  async #stale(path: string): Promise<string | undefined> {
    const now = this.#o.clock.now();
    let m: Partial<LockFile> | undefined;
    try {
      m = JSON.parse(await readFile(path, 'utf8')) as Partial<LockFile>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // released meanwhile: try again
    }
    if (typeof m?.updated === 'number' && typeof m.owner === 'string') return now - m.updated > this.#o.staleMs ? m.owner : undefined;
    // Unreadable (a crash mid-write): judged by its modification time.
    const mtime = await stat(path).then((st) => st.mtimeMs, () => undefined);
    return mtime !== undefined && now - mtime > this.#o.staleMs ? '' : undefined;
  }

  #held(path: string, meta: LockFile): Unlock {
    let refreshing: Promise<void> = Promise.resolve();
    const refresh = async (): Promise<void> => {
      // r+: never re-create a lock file that was taken over and removed.
      const fh = await open(path, 'r+');
      try {
        await fh.truncate(0);
        await fh.write(JSON.stringify({ ...meta, updated: this.#o.clock.now() }), 0);
      } finally {
        await fh.close();
      }
    };
    const timer = setInterval(() => {
      refreshing = refreshing.then(refresh).catch((err: unknown) => this.#o.logger?.warn({ err: errorMessage(err), lock: path }, `refreshing the lock file ${path} failed: ${errorMessage(err)}`));
    }, this.#o.refreshMs);
    timer.unref();
    return once(async () => {
      clearInterval(timer);
      await refreshing;
      // Remove it only while it is still ours (a holder that stalled past staleMs lost it).
      if ((await readOwner(path)) === meta.owner) await rm(path, { force: true });
    });
  }
}

async function readOwner(path: string): Promise<string | undefined> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Partial<LockFile>;
    return typeof m.owner === 'string' ? m.owner : '';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : '';
  }
}

/** A key as a file name: certificate names may hold `*` (`*.example.com` → `wildcard_.example.com`). */
export function safeFileName(key: string): string {
  return key.replace(/\*/g, 'wildcard_').replace(/[^a-zA-Z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
