// What the inspector keeps of one request: heads as parsed, bodies as received on the wire
// (chunked framing included, decoded only when shown), up to a per-body limit.

/** Bodies are kept up to this many bytes each; the rest is counted, not kept. */
export const BODY_LIMIT = 1024 * 1024;
/** WebSocket traffic is kept up to this many bytes per direction (the first messages). */
export const WEBSOCKET_LIMIT = 64 * 1024;

export type Header = [name: string, value: string];

/** A body as captured: the kept wire bytes, the total seen, and how it was framed. */
export class BodyCapture {
  readonly #chunks: Buffer[] = [];
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
   * buffers). Returns the number of bytes newly kept, for the store's memory account.
   */
  append(chunk: Buffer, start: number, end: number, allowed = true): number {
    const n = end - start;
    this.size += n;
    if (!allowed) return 0;
    const take = Math.min(n, this.#limit - this.kept);
    if (take <= 0) return 0;
    this.#chunks.push(Buffer.from(chunk.subarray(start, start + take)));
    this.kept += take;
    return take;
  }

  bytes(): Buffer {
    if (this.#chunks.length !== 1) {
      const all = Buffer.concat(this.#chunks);
      this.#chunks.splice(0, this.#chunks.length, all);
    }
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Drops what was kept (the entry left the store); sizes stay for the record. */
  release(): void {
    this.#chunks.length = 0;
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
