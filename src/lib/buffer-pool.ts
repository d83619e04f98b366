// Fixed-size read buffers that are handed back after use instead of being left to the GC.
//
// Node allocates a fresh ArrayBuffer for every socket read; V8 counts those bytes as external
// memory and runs a full mark-compact every 64 MiB of them, which made GC about a third of the
// agent's CPU on a bulk transfer. The agent copies large reads into buffers from this pool; a
// buffer comes back once whatever it was lent to is done with it (a write callback).
export class BufferPool {
  readonly size: number;
  readonly #max: number;
  readonly #free: Buffer[] = [];

  /** `size` bytes per buffer; at most `maxFree` idle buffers are kept (the rest go to the GC). */
  constructor(size: number, maxFree: number) {
    this.size = size;
    this.#max = maxFree;
  }

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Return a buffer taken from this pool. Nothing may use it afterwards. */
  give(buf: Buffer): void {
    if (buf.length === this.size && this.#free.length < this.#max) this.#free.push(buf);
  }

  get idle(): number {
    return this.#free.length;
  }
}
