// Fixed-window counts per key: at most `limit` takes per key in a window of `windowMs` that
// starts at the key's first take. One take may count against several keys at once (a session
// and its account): it counts against all of them or, when one is full, against none. Keys
// whose window has passed are dropped when the map grows past `maxKeys`, so a flood of keys
// cannot grow memory without bound; `forget` drops one at once (a closed session).

export type WindowTake = { ok: true } | { ok: false; key: string; first: boolean };

interface Window {
  start: number;
  count: number;
  refused: boolean;
}

export class WindowCounts {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #windows = new Map<string, Window>();

  constructor(o: { limit: number; windowMs: number; maxKeys?: number }) {
    this.#limit = o.limit;
    this.#windowMs = o.windowMs;
    this.#maxKeys = o.maxKeys ?? 10_000;
  }

  /** Counts one against every key if each has room in its window; else none, naming the full key (`first`: its first refusal this window). */
  take(keys: readonly string[], now: number): WindowTake {
    const windows = keys.map((key) => this.#current(key, now));
    const i = windows.findIndex((w) => w.count >= this.#limit);
    if (i >= 0) {
      const w = windows[i]!;
      const first = !w.refused;
      w.refused = true;
      return { ok: false, key: keys[i]!, first };
    }
    for (const w of windows) w.count++;
    return { ok: true };
  }

  forget(key: string): void {
    this.#windows.delete(key);
  }

  keys(): IterableIterator<string> {
    return this.#windows.keys();
  }

  #current(key: string, now: number): Window {
    const w = this.#windows.get(key);
    if (w && now - w.start < this.#windowMs) return w;
    if (this.#windows.size >= this.#maxKeys) for (const [k, v] of this.#windows) if (now - v.start >= this.#windowMs) this.#windows.delete(k);
    const fresh = { start: now, count: 0, refused: false };
    this.#windows.set(key, fresh);
    return fresh;
  }
}
