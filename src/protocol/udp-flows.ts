import type { RemoteInfo } from 'node:dgram';
import type { SplicedStream } from '../lib/splice.ts';
import { CapsuleDecoder, DatagramWriter, MAX_UDP_PAYLOAD } from './capsules.ts';

// UDP flows over streams, one stream per peer (address and port), datagrams as capsules both
// ways: the relay's public UDP port and `tunn connect --udp`'s local listener are the same
// mechanism with different admission. Datagrams that arrive while a flow's stream opens wait
// (a few); one that would queue behind a slow stream is dropped; a flow silent both ways for
// idleMs ends. A peer is only ever sent what its own stream brought back — never more bytes,
// and nothing at all for a flow that was refused or failed to open (no amplification, and no
// answers to spoofed sources).

/** Receive and send buffer of a UDP socket carrying flows, either end (4 MiB; the kernel caps it at rmem_max/wmem_max). */
export const UDP_SOCKET_BUFFER = 4 * 1024 * 1024;

export interface UdpFlowsOptions<C> {
  /**
   * A new peer: its context (e.g. the tunnel it reaches) to open a flow, or the reason it is not
   * carried (the caller counts it; the peer gets nothing).
   */
  admit(peer: RemoteInfo, open: number): C | { refused: string };
  /** The stream for a new flow; a rejection ends the flow. */
  open(peer: RemoteInfo, ctx: C): Promise<SplicedStream>;
  /** Sends a datagram back to the peer. */
  send(payload: Buffer, peer: RemoteInfo): void;
  idleMs: number;
  /** The largest datagram carried either way (default 65507). */
  maxDatagram?: number;
  /** Datagrams held per flow while its stream opens (default 64). */
  maxPending?: number;
  /** Datagrams are dropped while this much is queued on a flow's stream (default 1 MiB). */
  maxQueuedBytes?: number;
  /** Counting hooks (metrics). */
  on?: {
    start?(ctx: C): void;
    end?(ctx: C): void;
    in?(ctx: C, bytes: number): void;
    out?(ctx: C, bytes: number): void;
    drop?(ctx: C, reason: string): void;
    openFailed?(ctx: C, peer: RemoteInfo, err: unknown): void;
  };
}

interface Flow<C> {
  key: string;
  ctx: C;
  stream?: SplicedStream;
  /** Batches this flow's datagrams into one stream write per event-loop turn. */
  writer?: DatagramWriter;
  pending: Buffer[];
  last: number;
  /** Bytes the stream brought back, and bytes sent to the peer: sent ≤ brought, always. */
  fromStream: number;
  toPeer: number;
}

export class UdpFlows<C> {
  readonly #o: UdpFlowsOptions<C>;
  readonly #flows = new Map<string, Flow<C>>();
  readonly #sweep: NodeJS.Timeout;

  constructor(o: UdpFlowsOptions<C>) {
    this.#o = o;
    this.#sweep = setInterval(() => this.#endIdle(), Math.max(50, Math.min(o.idleMs / 4, 5_000)));
    this.#sweep.unref();
  }

  get size(): number {
    return this.#flows.size;
  }

  /** A datagram from `peer`. */
  receive(msg: Buffer, peer: RemoteInfo): void {
    const key = `${peer.address}|${peer.port}`;
    let f = this.#flows.get(key);
    if (!f) {
      const ctx = this.#o.admit(peer, this.#flows.size);
      if (typeof ctx === 'object' && ctx !== null && 'refused' in ctx) return;
      const flow: Flow<C> = { key, ctx: ctx as C, pending: [], last: Date.now(), fromStream: 0, toPeer: 0 };
      f = flow;
      this.#flows.set(key, flow);
      this.#o.on?.start?.(flow.ctx);
      void this.#open(flow, peer);
    }
    f.last = Date.now();
    if (msg.length > (this.#o.maxDatagram ?? MAX_UDP_PAYLOAD)) return this.#o.on?.drop?.(f.ctx, 'oversize');
    this.#o.on?.in?.(f.ctx, msg.length);
    if (f.stream) return this.#forward(f, msg);
    if (f.pending.length >= (this.#o.maxPending ?? 64)) return this.#o.on?.drop?.(f.ctx, 'backpressure');
    f.pending.push(msg);
  }

  /** Ends every flow (its stream ends too) and stops the idle sweep. */
  close(): void {
    clearInterval(this.#sweep);
    for (const f of [...this.#flows.values()]) this.#end(f, true);
  }

  #forward(f: Flow<C>, msg: Buffer): void {
    const w = f.writer!;
    if (w.queued > (this.#o.maxQueuedBytes ?? 1024 * 1024)) return this.#o.on?.drop?.(f.ctx, 'backpressure');
    w.write(msg);
  }

  async #open(f: Flow<C>, peer: RemoteInfo): Promise<void> {
    let stream: SplicedStream;
    try {
      stream = await this.#o.open(peer, f.ctx);
    } catch (err) {
      this.#o.on?.openFailed?.(f.ctx, peer, err);
      return this.#end(f, false);
    }
    if (this.#flows.get(f.key) !== f) return stream.reset();
    f.stream = stream;
    f.writer = new DatagramWriter(stream.stream);
    const decoder = new CapsuleDecoder({
      maxDatagram: this.#o.maxDatagram,
      onDatagram: (payload) => {
        f.last = Date.now();
        f.fromStream += payload.length;
        // The invariant that makes amplification impossible, checked rather than assumed.
        if (f.toPeer + payload.length > f.fromStream) return this.#o.on?.drop?.(f.ctx, 'amplification');
        f.toPeer += payload.length;
        this.#o.on?.out?.(f.ctx, payload.length);
        this.#o.send(payload, peer);
      },
      onDrop: (reason) => this.#o.on?.drop?.(f.ctx, reason),
    });
    const s = stream.stream;
    s.on('data', (c: Buffer) => {
      try {
        decoder.push(c);
      } catch {
        this.#o.on?.drop?.(f.ctx, 'malformed');
        stream.reset();
        this.#end(f, false);
      }
    });
    s.on('error', () => this.#end(f, false));
    s.once('close', () => this.#end(f, false));
    s.once('end', () => this.#end(f, false));
    for (const msg of f.pending.splice(0)) this.#forward(f, msg);
  }

  #endIdle(): void {
    const now = Date.now();
    for (const f of [...this.#flows.values()]) if (now - f.last >= this.#o.idleMs) this.#end(f, true);
  }

  /** Ends a flow; `endStream` ends our side of its stream too (idle, closing). */
  #end(f: Flow<C>, endStream: boolean): void {
    if (this.#flows.get(f.key) !== f) return;
    this.#flows.delete(f.key);
    this.#o.on?.end?.(f.ctx);
    if (endStream && f.stream && !f.stream.stream.writableEnded) {
      f.writer?.flush();
      f.stream.stream.end();
    }
  }
}
