import type { InspectedRequest } from './model.ts';

// The inspector's memory: the last `maxEntries` requests or `maxBytes` of captured bodies,
// whichever bound is hit first. Capture charges bytes as they arrive; going over evicts the
// oldest entries (an evicted in-flight entry stops keeping bytes). Listeners hear about new,
// updated and cleared entries; they run synchronously and must not throw or block.

export const DEFAULT_MAX_ENTRIES = 500;
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export type StoreEvent = { type: 'add' | 'update'; entry: InspectedRequest } | { type: 'clear' };

export class InspectorStore {
  readonly maxEntries: number;
  readonly maxBytes: number;
  // Oldest first from #start; evicted slots before it are cleared and compacted now and then, so
  // evicting one entry per request (the steady state at the count bound) costs O(1), not a copy.
  #entries: (InspectedRequest | undefined)[] = [];
  #start = 0;
  #byId = new Map<number, InspectedRequest>();
  #bytes = 0;
  #nextId = 1;
  readonly #listeners = new Set<(e: StoreEvent) => void>();

  constructor(opts: { maxEntries?: number; maxBytes?: number } = {}) {
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Bytes of captured bodies currently held. */
  get retainedBytes(): number {
    return this.#bytes;
  }
  get size(): number {
    return this.#entries.length - this.#start;
  }

  nextId(): number {
    return this.#nextId++;
  }

  add(entry: InspectedRequest): void {
    this.#entries.push(entry);
    this.#byId.set(entry.id, entry);
    this.#bytes += entry.retained;
    this.#evict();
    this.#emit({ type: 'add', entry });
  }

  /**
   * Counts `n` more bytes kept for `entry`; evicts the oldest entries while over the bound. An
   * entry not added yet only grows its own `retained`: add() counts that once, when it joins.
   */
  charge(entry: InspectedRequest, n: number): void {
    if (n <= 0 || entry.evicted) return;
    entry.retained += n;
    if (this.#byId.get(entry.id) !== entry) return;
    this.#bytes += n;
    if (this.#bytes > this.maxBytes) this.#evict();
  }

  /** Whether capture may keep more bytes for `entry`. */
  accepts(entry: InspectedRequest): boolean {
    return !entry.evicted;
  }

  updated(entry: InspectedRequest): void {
    if (!entry.evicted) this.#emit({ type: 'update', entry });
  }

  get(id: number): InspectedRequest | undefined {
    return this.#byId.get(id);
  }

  /** Newest first. */
  list(): InspectedRequest[] {
    return (this.#entries.slice(this.#start) as InspectedRequest[]).reverse();
  }

  clear(): void {
    for (let i = this.#start; i < this.#entries.length; i++) this.#drop(this.#entries[i]!);
    this.#entries = [];
    this.#start = 0;
    this.#byId.clear();
    this.#bytes = 0;
    this.#emit({ type: 'clear' });
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #evict(): void {
    const all = this.#entries;
    while (this.#start < all.length && (all.length - this.#start > this.maxEntries || this.#bytes > this.maxBytes)) {
      const e = all[this.#start]!;
      all[this.#start++] = undefined;
      this.#bytes -= e.retained;
      this.#byId.delete(e.id);
      this.#drop(e);
    }
    if (this.#start >= 1024 && this.#start * 2 >= all.length) {
      this.#entries = all.slice(this.#start);
      this.#start = 0;
    }
  }

  #drop(e: InspectedRequest): void {
    e.evicted = true;
    e.retained = 0;
    e.requestBody.release();
    e.responseBody.release();
    e.websocket?.toTarget.release();
    e.websocket?.toClient.release();
  }

  #emit(e: StoreEvent): void {
    // A failing listener (a page that went away) must not reach the capture in the data path.
    for (const fn of this.#listeners) {
      try {
        fn(e);
      } catch {
        this.#listeners.delete(fn);
      }
    }
  }
}
