// RFC 9297 capsules over a byte stream: how a UDP flow rides one HTTP/2 stream.
//
//   Capsule { Type (i), Length (i), Value (..) }          i = QUIC variable-length integer (RFC 9000 §16)
//   DATAGRAM (type 0x00): Value = HTTP Datagram Payload = { Context ID (i) = 0, UDP Payload (..) }  (RFC 9298 §5)
//
// The context id makes the payload the same as a MASQUE connect-udp datagram, so a later
// HTTP/3 path carries the same bytes. Capsules of unknown types are skipped (RFC 9297 §3.2), and
// a datagram over the path's limit is dropped and counted, never fragmented: a UDP datagram is
// delivered whole or not at all.

export const CAPSULE_DATAGRAM = 0x00;
/** The context id of a plain UDP payload (RFC 9298 §4). */
export const UDP_PAYLOAD_CONTEXT = 0;
/** The largest UDP payload IPv4 can carry (65535 - 8 UDP - 20 IP header bytes). */
export const MAX_UDP_PAYLOAD = 65_507;

const VARINT_MAX = 2 ** 62 - 1;

/** Bytes a QUIC varint of `v` takes: 1, 2, 4 or 8. */
export function varintLength(v: number): 1 | 2 | 4 | 8 {
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`varint out of range: ${v}`);
  return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x4000_0000 ? 4 : 8;
}

/** Writes `v` as a QUIC varint at `at` in `buf`; returns the offset after it. */
export function writeVarint(buf: Buffer, at: number, v: number): number {
  const n = varintLength(v);
  if (v > VARINT_MAX) throw new TypeError(`varint out of range: ${v}`);
  if (n === 1) buf[at] = v;
  else if (n === 2) buf.writeUInt16BE(0x4000 | v, at);
  else if (n === 4) buf.writeUInt32BE((0x8000_0000 | v) >>> 0, at);
  else buf.writeBigUInt64BE(0xc000_0000_0000_0000n | BigInt(v), at);
  return at + n;
}

/**
 * Reads a QUIC varint at `at`; undefined when `buf` ends before it does. Values above 2^53
 * (which no length here can reach) are refused rather than rounded.
 */
export function readVarint(buf: Buffer, at: number): { value: number; next: number } | undefined {
  if (at >= buf.length) return undefined;
  const n = 1 << (buf[at]! >> 6);
  if (at + n > buf.length) return undefined;
  let value: number;
  if (n === 1) value = buf[at]! & 0x3f;
  else if (n === 2) value = buf.readUInt16BE(at) & 0x3fff;
  else if (n === 4) value = (buf.readUInt32BE(at) & 0x3fff_ffff) >>> 0;
  else {
    const big = buf.readBigUInt64BE(at) & 0x3fff_ffff_ffff_ffffn;
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('capsule varint above 2^53');
    value = Number(big);
  }
  return { value, next: at + n };
}

/** One DATAGRAM capsule carrying `payload` (a whole UDP datagram). */
export function encodeDatagram(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(datagramCapsuleLength(payload.length));
  writeDatagram(out, 0, payload);
  return out;
}

export type CapsuleDrop = 'oversize' | 'unknown-context' | 'unknown-capsule';

export interface CapsuleDecoderOptions {
  /** The largest UDP payload delivered; bigger datagrams are dropped and counted. Default MAX_UDP_PAYLOAD. */
  maxDatagram?: number;
  onDatagram(payload: Buffer): void;
  /** A capsule that was skipped, and why (counted by the caller). */
  onDrop?(reason: CapsuleDrop, bytes: number): void;
}

/**
 * Incremental decoder: push() the stream's chunks as they come, cut anywhere. It holds at most
 * one capsule head plus one datagram of up to maxDatagram bytes; a capsule it will not deliver
 * (too big, unknown type) is skipped as its bytes arrive, without being buffered.
 */
export class CapsuleDecoder {
  readonly #max: number;
  readonly #o: CapsuleDecoderOptions;
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes of a refused capsule still to skip. */
  #skip = 0;

  constructor(o: CapsuleDecoderOptions) {
    this.#o = o;
    this.#max = o.maxDatagram ?? MAX_UDP_PAYLOAD;
  }

  /** Bytes held waiting for the rest of a capsule: at most a capsule head and one datagram's value. */
  get held(): number {
    return this.#buf.length;
  }

  /** Throws RangeError for a varint above 2^53 (a malformed stream: the caller resets it). */
  push(chunk: Buffer): void {
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    let buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    let at = 0;
    for (;;) {
      const type = readVarint(buf, at);
      const len = type && readVarint(buf, type.next);
      if (!type || !len) break;
      const bodyAt = len.next;
      const refused = this.#refusal(type.value, len.value);
      if (refused) {
        this.#o.onDrop?.(refused, len.value);
        const have = Math.min(len.value, buf.length - bodyAt);
        at = bodyAt + have;
        this.#skip = len.value - have;
        if (this.#skip > 0) break;
        continue;
      }
      if (bodyAt + len.value > buf.length) break;
      this.#deliver(buf.subarray(bodyAt, bodyAt + len.value));
      at = bodyAt + len.value;
    }
    buf = buf.subarray(at);
    // Copied so the held tail does not pin the caller's (possibly large) chunk.
    this.#buf = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }

  #refusal(type: number, length: number): CapsuleDrop | undefined {
    if (type !== CAPSULE_DATAGRAM) return 'unknown-capsule';
    // A context id of one byte plus the payload: anything longer is over the limit.
    if (length > this.#max + varintLength(UDP_PAYLOAD_CONTEXT)) return 'oversize';
    return undefined;
  }

  #deliver(value: Buffer): void {
    const ctx = readVarint(value, 0);
    if (!ctx || ctx.value !== UDP_PAYLOAD_CONTEXT) {
      this.#o.onDrop?.('unknown-context', value.length);
      return;
    }
    const payload = value.subarray(ctx.next);
    if (payload.length > this.#max) {
      this.#o.onDrop?.('oversize', value.length);
      return;
    }
    // A view, not a copy: the stream hands each chunk over once and never reuses it.
    this.#o.onDatagram(payload);
  }
}

/** Where a DatagramWriter writes: an HTTP/2 stream (the subset of Writable it needs). */
export interface CapsuleSink {
  readonly writableLength: number;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  write(chunk: Buffer): boolean;
}

/**
 * Writes DATAGRAM capsules to a stream in batches: the datagrams of one event-loop turn (a socket
 * delivers many per readable event) are encoded into one buffer and written once, at the end of
 * the turn. One write per datagram cost an allocation, a stream write and often an HTTP/2 DATA
 * frame each, which is what capped a flow's rate (bench/RESULTS.md, issue 11).
 */
export class DatagramWriter {
  readonly #sink: CapsuleSink;
  #batch: Uint8Array[] = [];
  #bytes = 0;
  #scheduled: NodeJS.Immediate | undefined;

  constructor(sink: CapsuleSink) {
    this.#sink = sink;
  }

  /** Bytes waiting: in this turn's batch and queued on the stream (for the caller's backpressure check). */
  get queued(): number {
    return this.#bytes + this.#sink.writableLength;
  }

  /** Queues one datagram; written at the end of this turn (or at flush()). */
  write(payload: Uint8Array): void {
    this.#batch.push(payload);
    this.#bytes += datagramCapsuleLength(payload.length);
    this.#scheduled ??= setImmediate(() => this.flush());
  }

  /** Writes the batch now (before the stream ends). */
  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    this.#bytes = 0;
    if (this.#sink.writableEnded || this.#sink.destroyed) return;
    let size = 0;
    for (const p of batch) size += datagramCapsuleLength(p.length);
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (const p of batch) at = writeDatagram(out, at, p);
    this.#sink.write(out);
  }
}

function datagramCapsuleLength(payloadLength: number): number {
  const valueLength = varintLength(UDP_PAYLOAD_CONTEXT) + payloadLength;
  return varintLength(CAPSULE_DATAGRAM) + varintLength(valueLength) + valueLength;
}

/** Writes one DATAGRAM capsule carrying `payload` at `at` in `out`; returns the offset after it. */
function writeDatagram(out: Buffer, at: number, payload: Uint8Array): number {
  at = writeVarint(out, at, CAPSULE_DATAGRAM);
  at = writeVarint(out, at, varintLength(UDP_PAYLOAD_CONTEXT) + payload.length);
  at = writeVarint(out, at, UDP_PAYLOAD_CONTEXT);
  out.set(payload, at);
  return at + payload.length;
}
