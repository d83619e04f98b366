// An incremental HTTP/1.1 message framer. It finds message heads and the extent of each body
// (Content-Length, chunked, until close, none) without copying body bytes, so a proxy can
// rewrite heads and pass bodies through as slices of the chunks it received. The relay runs
// one per direction of every public connection; the agent runs one to print its request log.
//
// It is strict where leniency enables request smuggling (RFC 9112 §6.3, §11.2): both
// Content-Length and Transfer-Encoding, conflicting Content-Length values, a Transfer-Encoding
// whose final coding is not chunked, bare LF or whitespace before a colon, obs-fold,
// control characters in a head, and chunk-size lines outside RFC 9112 §7.1 (a bare LF or
// control character, whitespace in the size, a malformed extension) are all errors.
//
// This file is the framer (the state machine over chunks); heads are parsed in http1-head.ts,
// body framing is decided in http1-framing.ts, the events and options are in http1-events.ts.

import { CHUNK_EXT, FramingFields, hexValue, MAX_CHUNK_LINE, requestBodyKind, responseBodyKind, responseFraming } from './http1-framing.ts';
import type { FramerEvents, FramerOptions } from './http1-events.ts';
import { HttpParseError, parseHead, parseTrailerFields, type MessageHead } from './http1-head.ts';

export { headerValue, headerValues, HttpParseError, keepAlive, wantsUpgrade, type BodyKind, type MessageHead } from './http1-head.ts';
export { requestBodyKind, responseBodyKind } from './http1-framing.ts';
export type { FramerEvents, FramerOptions } from './http1-events.ts';

// Parser states (numbers, not an enum: the project runs TypeScript by type stripping).
const S = { Head: 0, Length: 1, ChunkSize: 2, ChunkData: 3, ChunkDataCrlf: 4, Trailers: 5, Close: 6, Raw: 7, Paused: 8 } as const;
type State = (typeof S)[keyof typeof S];

export class Http1Framer {
  readonly #kind: 'request' | 'response';
  readonly #maxHead: number;
  readonly #events: FramerEvents;
  readonly #nextMethod: () => string | undefined;
  #state: State = S.Head;
  #held: Buffer[] = [];
  #heldLen = 0;
  #heldTail: Buffer = Buffer.alloc(0);
  #remaining = 0;
  #lineLen = 0;
  #chunkSize = -1;
  /** The chunk-size line after its hex digits (BWS and extensions), while it is read. */
  #chunkExt: string | undefined;
  #sawCr = false;
  #trailerLineEmpty = true;
  /** With onTrailers: the trailer section read so far. */
  #trailerParts: Buffer[] = [];
  /** Set by the consumer (after an Upgrade request) to stop parsing until resumed. */
  #pausedAfterMessage = false;
  readonly #keepFields: boolean;
  /** Without `keepFields`: the framing fields of the current head. */
  readonly #fields = new FramingFields();

  constructor(opts: FramerOptions, events: FramerEvents) {
    this.#kind = opts.kind;
    this.#maxHead = opts.maxHeadSize ?? 64 * 1024;
    this.#events = events;
    this.#nextMethod = opts.nextRequestMethod ?? (() => undefined);
    this.#keepFields = opts.kind === 'request' || opts.keepFields !== false;
  }

  get inMessage(): boolean {
    return this.#state !== S.Head && this.#state !== S.Raw && this.#state !== S.Paused;
  }
  get raw(): boolean {
    return this.#state === S.Raw;
  }
  /** Bytes of an incomplete head held between chunks. */
  get heldBytes(): number {
    return this.#heldLen;
  }

  /** From now on every byte is opaque (after a successful upgrade). */
  switchToRaw(): void {
    this.#state = S.Raw;
  }
  /** Stop after the current message ends; `execute` returns the offset where it stopped. */
  pauseAfterMessage(): void {
    this.#pausedAfterMessage = true;
  }
  resume(): void {
    if (this.#state === S.Paused) this.#state = S.Head;
    this.#pausedAfterMessage = false;
  }

  /**
   * Feeds a chunk. Returns the offset up to which it was consumed: chunk.length normally, less
   * when parsing paused (the consumer re-feeds the rest later). Throws HttpParseError.
   */
  execute(chunk: Buffer): number {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case S.Paused:
          return i;
        case S.Raw:
          this.#events.onRaw?.(chunk, i);
          return n;
        case S.Head: {
          if (this.#heldLen === 1 && this.#heldTail[0] === 13 && chunk[i] === 10 && this.#kind === 'request') {
            // An empty line before a request (skipped in #findHeadEnd) split across chunks.
            this.#held = [];
            this.#heldLen = 0;
            this.#heldTail = Buffer.alloc(0);
            i++;
            continue;
          }
          const end = this.#findHeadEnd(chunk, i);
          if (end < 0) {
            this.#hold(chunk.subarray(i));
            return n;
          }
          let head: MessageHead | null;
          if (this.#heldLen > 0) {
            this.#held.push(chunk.subarray(i, end));
            const raw = Buffer.concat(this.#held);
            this.#held = [];
            this.#heldLen = 0;
            this.#heldTail = Buffer.alloc(0);
            head = parseHead(raw, 0, raw.length, this.#kind, this.#keepFields, this.#fields);
          } else {
            head = parseHead(chunk, i, end, this.#kind, this.#keepFields, this.#fields);
          }
          if (head === null) {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            i = end;
            continue;
          }
          this.#events.onHead(head, chunk, end);
          i = end;
          this.#startBody(head);
          if (this.#state === S.Head) this.#endMessage(chunk, i);
          break;
        }
        case S.Length: {
          const take = Math.min(this.#remaining, n - i);
          this.#events.onBody(chunk, i, i + take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#endMessage(chunk, i);
          break;
        }
        case S.Close:
          this.#events.onBody(chunk, i, n);
          return n;
        case S.ChunkSize: {
          const start = i;
          while (i < n && this.#state === S.ChunkSize) {
            this.#scanFramingByte(chunk[i]!);
            i++;
          }
          const onSize = this.#events.onChunkSize;
          if (!onSize) this.#events.onBody(chunk, start, i);
          else if (this.#state !== S.ChunkSize) onSize(this.#chunkSize);
          break;
        }
        case S.ChunkData: {
          const take = Math.min(this.#remaining, n - i);
          this.#events.onBody(chunk, i, i + take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            this.#state = S.ChunkDataCrlf;
            this.#sawCr = false;
          }
          break;
        }
        default: {
          if (this.#state === S.Trailers && this.#events.onTrailers) {
            i = this.#takeTrailers(chunk, i);
            break;
          }
          // The CRLF after chunk data, and trailers: scanned byte by byte.
          const start = i;
          // (#scanFramingByte changes #state; read it through a widened alias.)
          const state = (): State => this.#state;
          const holdTrailers = this.#events.onTrailers !== undefined;
          while (i < n && state() !== S.Head && state() !== S.ChunkData && state() !== S.ChunkSize && !(holdTrailers && state() === S.Trailers)) {
            this.#scanFramingByte(chunk[i]!);
            i++;
          }
          if (i > start) this.#events.onBody(chunk, start, i);
          if (state() === S.Head) this.#endMessage(chunk, i);
          break;
        }
      }
    }
    return n;
  }

  /** Reads trailer bytes from chunk[i]; hands the parsed section over once its empty line is in. */
  #takeTrailers(chunk: Buffer, i: number): number {
    const start = i;
    const n = chunk.length;
    const state = (): State => this.#state;
    while (i < n && state() === S.Trailers) {
      this.#scanFramingByte(chunk[i]!);
      i++;
    }
    this.#trailerParts.push(Buffer.from(chunk.subarray(start, i)));
    if (state() === S.Head) {
      const raw = Buffer.concat(this.#trailerParts);
      this.#trailerParts = [];
      this.#events.onTrailers!(parseTrailerFields(raw));
      this.#endMessage(chunk, i);
    }
    return i;
  }

  /** The peer closed: ends a close-delimited body. Returns false when a message was cut short. */
  finish(): boolean {
    if (this.#state === S.Close) {
      this.#state = S.Head;
      return true;
    }
    return this.#state === S.Head || this.#state === S.Raw || this.#state === S.Paused ? this.#heldLen === 0 : false;
  }

  #endMessage(chunk: Buffer, end: number): void {
    this.#state = this.#pausedAfterMessage ? S.Paused : S.Head;
    this.#events.onMessageEnd(chunk, end);
  }

  #hold(part: Buffer): void {
    if (part.length === 0) return;
    const copy = Buffer.from(part);
    this.#held.push(copy);
    this.#heldLen += copy.length;
    this.#heldTail = Buffer.concat([this.#heldTail, copy.subarray(Math.max(0, copy.length - 3))]);
    this.#heldTail = this.#heldTail.subarray(Math.max(0, this.#heldTail.length - 3));
    if (this.#heldLen > this.#maxHead) this.#headTooLarge();
  }

  #headTooLarge(): never {
    throw new HttpParseError(this.#kind === 'request' ? 431 : 400, `message head larger than ${this.#maxHead} bytes`);
  }

  /** Offset just past CRLFCRLF in chunk (considering held bytes), or -1. */
  #findHeadEnd(chunk: Buffer, from: number): number {
    let end: number;
    if (this.#heldLen > 0) {
      // The terminator may straddle chunks: search the held tail and this chunk together.
      const probe = Buffer.concat([this.#heldTail, chunk.subarray(from)]);
      const idx = probe.indexOf('\r\n\r\n');
      end = idx < 0 ? -1 : from + idx + 4 - this.#heldTail.length;
    } else {
      if (this.#kind === 'request' && chunk[from] === 13 && chunk[from + 1] === 10) return from + 2;
      const idx = chunk.indexOf('\r\n\r\n', from);
      end = idx < 0 ? -1 : idx + 4;
    }
    const size = this.#heldLen + (end < 0 ? chunk.length : end) - from;
    if (size > this.#maxHead) this.#headTooLarge();
    // A head that ends lines with bare LF never reaches CRLFCRLF: refuse it now, not at the timeout.
    if (end < 0) {
      for (let i = chunk.indexOf(10, from); i >= 0; i = chunk.indexOf(10, i + 1)) {
        const prev = i > from ? chunk[i - 1] : this.#heldTail[this.#heldTail.length - 1];
        if (prev !== 13) throw new HttpParseError(400, 'bare LF in message head');
      }
    }
    return end;
  }

  #startBody(head: MessageHead): void {
    const kind =
      this.#kind === 'request'
        ? requestBodyKind(head)
        : this.#keepFields
          ? responseBodyKind(head, this.#nextMethodFor(head))
          : responseFraming(head.status, this.#nextMethodFor(head), this.#fields.te, this.#fields.contentLength);
    if (kind.kind === 'none') {
      this.#state = S.Head;
    } else if (kind.kind === 'length') {
      this.#remaining = kind.length;
      this.#state = kind.length === 0 ? S.Head : S.Length;
    } else if (kind.kind === 'chunked') {
      this.#state = S.ChunkSize;
      this.#chunkSize = -1;
      this.#chunkExt = undefined;
      this.#lineLen = 0;
      this.#sawCr = false;
    } else {
      this.#state = S.Close;
    }
  }

  #nextMethodFor(head: MessageHead): string | undefined {
    // 1xx responses do not answer the request; the final one does.
    if (head.status >= 100 && head.status < 200 && head.status !== 101) return undefined;
    return this.#nextMethod();
  }

  #scanFramingByte(b: number): void {
    switch (this.#state) {
      case S.ChunkSize: {
        if (++this.#lineLen > MAX_CHUNK_LINE) throw new HttpParseError(400, 'chunk size line too long');
        if (this.#sawCr) {
          if (b !== 10) throw new HttpParseError(400, 'malformed chunk size line: CR without LF');
          if (this.#chunkSize < 0) throw new HttpParseError(400, 'missing chunk size');
          if (this.#chunkExt !== undefined) {
            if (!CHUNK_EXT.test(this.#chunkExt)) throw new HttpParseError(400, 'malformed chunk extension');
            this.#chunkExt = undefined;
          }
          this.#lineLen = 0;
          this.#sawCr = false;
          if (this.#chunkSize === 0) {
            this.#state = S.Trailers;
            this.#trailerLineEmpty = true;
          } else {
            this.#remaining = this.#chunkSize;
            this.#state = S.ChunkData;
          }
          return;
        }
        if (b === 13) {
          this.#sawCr = true;
          return;
        }
        // A control character (bare LF above all) never belongs in a chunk-size line: a parser
        // that ends the line at LF would read the rest as chunk data (request smuggling).
        if ((b < 0x20 && b !== 0x09) || b === 0x7f) throw new HttpParseError(400, b === 10 ? 'bare LF in chunk size line' : 'control character in chunk size line');
        if (this.#chunkExt !== undefined) {
          // The extension (from the first byte after the size) is checked whole at the CRLF.
          this.#chunkExt += String.fromCharCode(b);
          return;
        }
        const d = hexValue(b);
        if (d >= 0) {
          this.#chunkSize = (this.#chunkSize < 0 ? 0 : this.#chunkSize) * 16 + d;
          if (this.#chunkSize > Number.MAX_SAFE_INTEGER / 32) throw new HttpParseError(400, 'chunk size too large');
          return;
        }
        if (this.#chunkSize >= 0 && (b === 59 || b === 32 || b === 9)) {
          this.#chunkExt = String.fromCharCode(b);
          return;
        }
        throw new HttpParseError(400, 'invalid chunk size');
      }
      case S.ChunkDataCrlf:
        if (!this.#sawCr) {
          if (b !== 13) throw new HttpParseError(400, 'missing CRLF after chunk data');
          this.#sawCr = true;
        } else {
          if (b !== 10) throw new HttpParseError(400, 'missing CRLF after chunk data');
          this.#sawCr = false;
          this.#state = S.ChunkSize;
          this.#chunkSize = -1;
          this.#lineLen = 0;
        }
        return;
      case S.Trailers:
        if (++this.#lineLen > this.#maxHead) throw new HttpParseError(400, 'trailers too large');
        if (this.#sawCr) {
          if (b !== 10) throw new HttpParseError(400, 'malformed trailer');
          this.#sawCr = false;
          if (this.#trailerLineEmpty) {
            this.#state = S.Head;
            return;
          }
          this.#trailerLineEmpty = true;
          return;
        }
        if (b === 13) this.#sawCr = true;
        else this.#trailerLineEmpty = false;
        return;
    }
  }
}


/**
 * A feeder for a framer that only watches a connection (a request log, the inspector): bytes
 * that are not HTTP/1.1 stop the watching (`stop`), never the forwarding.
 */
export function watchFeed(framer: Http1Framer, stopped: () => boolean, stop: () => void): (chunk: Buffer) => void {
  return (chunk) => {
    if (stopped()) return;
    try {
      framer.execute(chunk);
    } catch {
      stop();
    }
  };
}
