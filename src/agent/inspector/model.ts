import { BufferPool } from '../../lib/buffer-pool.ts';

// What the inspector keeps of one request: heads as parsed, bodies as received on the wire
// (chunked framing included, decoded only when shown), up to a per-body limit.

/** Bodies are kept up to this many bytes each; the rest is counted, not kept. */
export const BODY_LIMIT = 1024 * 1024;
/** WebSocket traffic is kept up to this many bytes per direction (the first messages). */
export const WEBSOCKET_LIMIT = 64 * 1024;

export type Header = [name: string, value: string];

/**
 * Captured bytes live in fixed-size blocks that go back to a pool when their entry leaves the
 * store. The CLI runs V8 with full GCs only near the heap limit (src/lib/v8-tuning.ts), so
 * buffers that live a while and then die would pile up to that limit; reused blocks keep the
 * agent's memory at the store's bound instead. Sized so a bound's worth stays in the pool.
 */
const BLOCK = 16 * 1024;
const blocks = new BufferPool(BLOCK, (64 * 1024 * 1024) / BLOCK + 256);

/** A body as captured: the kept wire bytes, the total seen, and how it was framed. */
export class BodyCapture {
  readonly #blocks: Buffer[] = [];
  readonly #limit: number;
  /** Bytes kept (≤ limit). */
  kept = 0;
  /** Bytes seen on the wire. */
  size = 0;
  chunked = false;

  constructor(limit = BODY_LIMIT) {
    this.#limit = limit;
  }

  get truncated(): boolean {
    return this.size > this.kept;
  }

  /**
   * Keeps chunk[start, end) as far as the limit allows (copied: the forwarding path reuses its
   * buffers). Returns the memory newly taken (whole blocks), for the store's account.
   */
  append(chunk: Buffer, start: number, end: number, allowed = true): number {
    this.size += end - start;
    if (!allowed) return 0;
    let taken = 0;
    let from = start;
    const stop = start + Math.min(end - start, this.#limit - this.kept);
    while (from < stop) {
      const used = this.kept % BLOCK;
      if (used === 0) {
        this.#blocks.push(blocks.take());
        taken += BLOCK;
      }
      const n = Math.min(stop - from, BLOCK - used);
      chunk.copy(this.#blocks[this.#blocks.length - 1]!, used, from, from + n);
      this.kept += n;
      from += n;
    }
    return taken;
  }

  /** A copy of the kept bytes. */
  bytes(): Buffer {
    const out = Buffer.allocUnsafe(this.kept);
    let at = 0;
    for (const b of this.#blocks) at += b.copy(out, at, 0, Math.min(BLOCK, this.kept - at));
    return out;
  }

  /** Hands the blocks back (the entry left the store); sizes stay for the record. */
  release(): void {
    for (const b of this.#blocks.splice(0)) blocks.give(b);
  }
}

export type EntryState = 'pending' | 'complete' | 'aborted';

export interface InspectedRequest {
  id: number;
  /** The tunnel's public host (or its local id before it is registered). */
  tunnel: string;
  /** Index of the tunnel in the agent's configuration: where a replay goes. */
  tunnelIndex: number;
  /** Epoch milliseconds when the request head arrived. */
  time: number;
  /** The email the relay verified (its Tunn-User-Email header), or null for a public visitor. */
  visitor: string | null;
  clientIp: string;
  method: string;
  path: string;
  httpVersion: string;
  requestHeaders: Header[];
  requestBody: BodyCapture;
  status?: number;
  reason?: string;
  responseHeaders?: Header[];
  responseBody: BodyCapture;
  durationMs?: number;
  state: EntryState;
  /** Set on a replay: the id of the request it replays. */
  replayOf?: number;
  /** After a 101: the first bytes each way (client → target, target → client). */
  websocket?: { toTarget: BodyCapture; toClient: BodyCapture };
  /** Left the store (evicted or cleared): capture stops keeping bytes for it. */
  evicted: boolean;
  /** Bytes this entry holds in the store's account. */
  retained: number;
}
