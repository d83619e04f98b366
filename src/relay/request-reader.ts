import { Http1Framer, type MessageHead } from '../lib/http1.ts';
import { forwardTrailers, serializeTrailers } from './forward-headers.ts';

// The client's side of a public HTTP/1 connection as the proxy handles it: what was read of
// it and not handled yet, in order. Parsed: request heads (to route, one at a time), body
// pieces and message ends; body framing the origin reads is re-emitted by the relay
// (chunk-size lines, trailers), never passed as received. Not parsed yet: the bytes read while
// the proxy does not parse (a decision pending, an upgrade's answer awaited, parsing paused).

export type Segment = { k: 'head'; head: MessageHead } | { k: 'body'; data: Buffer } | { k: 'end' };

export class RequestReader {
  /** Parsed and not yet handled, in order. */
  readonly #segments: Segment[] = [];
  /** Read and not parsed yet, in order. */
  #unparsed: Buffer[] = [];
  /** Heads parsed so far. */
  headsParsed = 0;
  /** Heads parsed and not yet handled (taken with next()). */
  queuedHeads = 0;
  readonly #framer: Http1Framer;
  readonly #headTimeoutMs: number;
  readonly #onHeadTimeout: (partial: boolean) => void;
  #headTimer: NodeJS.Timeout | undefined;
  /** The count of heads parsed when the head timer was armed (which head it times). */
  #timedHead = -1;

  /**
   * `onHead`: a head was parsed (queued last in `segments`); true: stop parsing after its message.
   * `onHeadTimeout`: no head came in time; `partial`: part of one did (else none at all).
   */
  constructor(o: { maxHeadSize: number; headTimeoutMs: number; onHead: (head: MessageHead) => boolean; onHeadTimeout: (partial: boolean) => void }) {
    const { maxHeadSize, onHead } = o;
    this.#headTimeoutMs = o.headTimeoutMs;
    this.#onHeadTimeout = o.onHeadTimeout;
    const segments = this.#segments;
    this.#framer = new Http1Framer(
      { kind: 'request', maxHeadSize },
      {
        onHead: (head) => {
          this.headsParsed++;
          this.queuedHeads++;
          if (onHead(head)) this.#framer.pauseAfterMessage();
          segments.push({ k: 'head', head });
        },
        onBody: (chunk, s, e) => segments.push({ k: 'body', data: chunk.subarray(s, e) }),
        onMessageEnd: () => segments.push({ k: 'end' }),
        // Trailers are rewritten like heads: no reserved field reaches the origin in them.
        onTrailers: (fields) => segments.push({ k: 'body', data: serializeTrailers(forwardTrailers(fields)) }),
        // Chunk-size lines too: the origin gets the relay's canonical line (hex size, CRLF), never
        // the visitor's bytes, so an extension or spelling it reads differently cannot reframe the body.
        onChunkSize: (size) => segments.push({ k: 'body', data: Buffer.from(`${size.toString(16)}\r\n`, 'latin1') }),
      },
    );
  }

  /**
   * Parses what it can of `chunk`; the rest waits first in line (until resume()). Throws
   * HttpParseError, and then nothing parsed is left to handle.
   */
  parse(chunk: Buffer): void {
    let used: number;
    try {
      used = this.#framer.execute(chunk);
    } catch (err) {
      this.#segments.length = 0;
      this.queuedHeads = 0;
      throw err;
    }
    if (used < chunk.length) this.#unparsed.unshift(chunk.subarray(used));
  }

  /** The next parsed segment, without taking it. */
  peek(): Segment | undefined {
    return this.#segments[0];
  }

  /** Takes the next parsed segment. */
  next(): Segment | undefined {
    const seg = this.#segments.shift();
    if (seg?.k === 'head') this.queuedHeads--;
    return seg;
  }

  get parsed(): boolean {
    return this.#segments.length > 0;
  }

  /** Keeps bytes read while the proxy does not parse, behind those already kept. */
  hold(chunk: Buffer): void {
    this.#unparsed.push(chunk);
  }

  get holding(): boolean {
    return this.#unparsed.length > 0;
  }

  /** The next chunk of bytes read and not parsed. */
  nextHeld(): Buffer | undefined {
    return this.#unparsed.shift();
  }

  /** Every byte read and not parsed (after a 101 they are the new protocol's); none is kept. */
  takeHeld(): Buffer[] {
    return this.#unparsed.splice(0);
  }

  /**
   * What was read after the head being handled, as the client sent it, for whoever takes the
   * connection over: the rest of that message's body (parsing stopped after it), then every
   * byte not parsed (pipelined requests included). Nothing is kept.
   */
  takeRest(): Buffer[] {
    const bytes: Buffer[] = [];
    for (const seg of this.#segments.splice(0)) if (seg.k === 'body') bytes.push(seg.data);
    this.queuedHeads = 0;
    return [...bytes, ...this.takeHeld()];
  }

  /** Drops everything read and not handled (the connection is closing). */
  drop(): void {
    this.#segments.length = 0;
    this.queuedHeads = 0;
    this.#unparsed = [];
  }

  /** Stop after the current message (an upgrade request: what follows may not be HTTP). */
  pauseAfterMessage(): void {
    this.#framer.pauseAfterMessage();
  }

  resume(): void {
    this.#framer.resume();
  }

  /** Bytes of a head not complete yet. */
  get heldBytes(): number {
    return this.#framer.heldBytes;
  }

  /**
   * Arms the head timer while a head is awaited (`http`: the bytes are still HTTP). It runs
   * from the first byte of a head: later bytes of the same head do not restart it, or a client
   * trickling a header line now and then (slowloris) would hold the connection for ever. A new
   * connection awaits its first head from the start: one that never sends a byte must not hold
   * a socket until the idle timeout either.
   */
  watchHead(http: boolean): void {
    const waiting = http && (this.heldBytes > 0 || this.headsParsed === 0);
    if (waiting && this.#headTimer && this.#timedHead === this.headsParsed) return;
    this.stopWatching();
    if (!waiting) return;
    this.#timedHead = this.headsParsed;
    this.#headTimer = setTimeout(() => {
      if (this.heldBytes > 0) this.#onHeadTimeout(true);
      else if (this.headsParsed === 0) this.#onHeadTimeout(false);
    }, this.#headTimeoutMs);
    this.#headTimer.unref();
  }

  stopWatching(): void {
    clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
  }
}
