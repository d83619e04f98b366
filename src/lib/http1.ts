// An incremental HTTP/1.1 message framer. It finds message heads and the extent of each body
// (Content-Length, chunked, until close, none) without copying body bytes, so a proxy can
// rewrite heads and pass bodies through as slices of the chunks it received. The relay runs
// one per direction of every public connection; the agent runs one to print its request log.
//
// It is strict where leniency enables request smuggling (RFC 9112 §6.3, §11.2): both
// Content-Length and Transfer-Encoding, conflicting Content-Length values, a Transfer-Encoding
// whose final coding is not chunked, bare LF or whitespace before a colon, obs-fold, and
// control characters in a head are all errors.

export interface MessageHead {
  /** Request: method; response: '' */
  method: string;
  /** Request: request-target; response: '' */
  target: string;
  /** Response: status code; request: 0 */
  status: number;
  reason: string;
  versionMinor: 0 | 1;
  /** Header fields in received order, names as received. */
  headers: [string, string][];
  /** The header names lower-cased, index for index with `headers`. */
  names: string[];
  /** Size of the head on the wire, including the final CRLF CRLF. */
  size: number;
}

export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

export class HttpParseError extends Error {
  /** 400 malformed, 431 head too large, 501 unsupported transfer coding. */
  readonly status: 400 | 431 | 501;
  constructor(status: 400 | 431 | 501, message: string) {
    super(message);
    this.name = 'HttpParseError';
    this.status = status;
  }
}

export interface FramerEvents {
  /**
   * A head was parsed; `start`/`end` are offsets of the head in `chunk` (start may be < 0 when
   * the head began in an earlier chunk: the framer then holds the bytes and passes `raw`).
   * Return value decides the body framing for responses (see `responseBodyKind`).
   */
  onHead(head: MessageHead, raw: Buffer, chunk: Buffer, end: number): void;
  /** Body bytes chunk[start, end) of the current message (in wire framing, chunked included). */
  onBody(chunk: Buffer, start: number, end: number): void;
  /** The current message ended at chunk offset `end`. */
  onMessageEnd(chunk: Buffer, end: number): void;
  /** After a 101 or accepted upgrade everything from chunk offset `start` is opaque. */
  onRaw?(chunk: Buffer, start: number): void;
}

// Parser states (numbers, not an enum: the project runs TypeScript by type stripping).
const S = { Head: 0, Length: 1, ChunkSize: 2, ChunkData: 3, ChunkDataCrlf: 4, Trailers: 5, Close: 6, Raw: 7, Paused: 8 } as const;
type State = (typeof S)[keyof typeof S];

const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;

// Character checks run on every header of every request, so they are table lookups rather than
// regular expressions (measurably cheaper per call on the relay's hot path).
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** RFC 9110 token: one or more tchar. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || TCHAR[c] === 0) return false;
  }
  return true;
}

/** A control character other than HTAB (visible ASCII, obs-text, SP and HTAB are allowed in values). */
function hasFieldValueCtl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** A request-target may not contain controls or spaces. */
function hasTargetCtlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}
const MAX_CHUNK_LINE = 4096;

export interface FramerOptions {
  kind: 'request' | 'response';
  /** Largest head accepted (bytes); larger → HttpParseError 431 (requests) or 400 (responses). */
  maxHeadSize?: number;
  /** Responses: the method of the request each response answers, in order (HEAD → no body). */
  nextRequestMethod?: () => string | undefined;
}

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
  #sawCr = false;
  #trailerLineEmpty = true;
  /** Set by the consumer (after an Upgrade request) to stop parsing until resumed. */
  #pausedAfterMessage = false;

  constructor(opts: FramerOptions, events: FramerEvents) {
    this.#kind = opts.kind;
    this.#maxHead = opts.maxHeadSize ?? 64 * 1024;
    this.#events = events;
    this.#nextMethod = opts.nextRequestMethod ?? (() => undefined);
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
          const end = this.#findHeadEnd(chunk, i);
          if (end < 0) {
            this.#hold(chunk.subarray(i));
            return n;
          }
          let raw: Buffer;
          if (this.#heldLen > 0) {
            this.#held.push(chunk.subarray(i, end));
            raw = Buffer.concat(this.#held);
            this.#held = [];
            this.#heldLen = 0;
            this.#heldTail = Buffer.alloc(0);
          } else {
            raw = chunk.subarray(i, end);
          }
          const head = this.#parseHead(raw);
          if (head === null) {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            i = end;
            continue;
          }
          this.#events.onHead(head, raw, chunk, end);
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
          // Chunk-size lines, the CRLF after chunk data, and trailers: scanned byte by byte.
          const start = i;
          // (#scanFramingByte changes #state; read it through a widened alias.)
          const state = (): State => this.#state;
          while (i < n && state() !== S.Head && state() !== S.ChunkData) {
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

  #parseHead(raw: Buffer): MessageHead | null {
    if (raw.length === 2) {
      if (this.#kind === 'request') return null;
      throw new HttpParseError(400, 'empty response head');
    }
    const text = raw.toString('latin1', 0, raw.length - 4);
    let eol = text.indexOf('\r\n');
    if (eol < 0) eol = text.length;
    const first = text.slice(0, eol);
    // Every line must end in CRLF: a bare LF left inside a line is refused (the request-line,
    // status-line, name and value checks below all reject LF).
    const head: MessageHead = { method: '', target: '', status: 0, reason: '', versionMinor: 1, headers: [], names: [], size: raw.length };
    if (this.#kind === 'request') {
      const m = REQUEST_LINE.exec(first);
      if (!m || !isToken(m[1]!) || hasTargetCtlOrSpace(m[2]!)) throw new HttpParseError(400, first.includes('\n') ? 'bare LF in message head' : 'malformed request line');
      head.method = m[1]!;
      head.target = m[2]!;
      head.versionMinor = m[3] === '0' ? 0 : 1;
    } else {
      const m = STATUS_LINE.exec(first);
      if (!m) throw new HttpParseError(400, first.includes('\n') ? 'bare LF in message head' : 'malformed status line');
      head.versionMinor = m[1] === '0' ? 0 : 1;
      head.status = Number(m[2]);
      head.reason = m[3] ?? '';
    }
    let pos = eol + 2;
    while (pos < text.length) {
      let end = text.indexOf('\r\n', pos);
      if (end < 0) end = text.length;
      const line = text.slice(pos, end);
      pos = end + 2;
      if (line.length === 0) continue;
      if (line[0] === ' ' || line[0] === '\t') throw new HttpParseError(400, 'obsolete line folding in header');
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpParseError(400, line.includes('\n') ? 'bare LF in message head' : 'malformed header line');
      const name = line.slice(0, colon);
      if (!isToken(name)) throw new HttpParseError(400, name.includes('\n') ? 'bare LF in message head' : `invalid header name "${name.slice(0, 40)}"`);
      const value = line.slice(colon + 1).trim();
      if (hasFieldValueCtl(value)) throw new HttpParseError(400, value.includes('\n') ? 'bare LF in message head' : `invalid character in header ${name}`);
      head.headers.push([name, value]);
      head.names.push(name.toLowerCase());
    }
    return head;
  }

  #startBody(head: MessageHead): void {
    const kind = this.#kind === 'request' ? requestBodyKind(head) : responseBodyKind(head, this.#nextMethodFor(head));
    if (kind.kind === 'none') {
      this.#state = S.Head;
    } else if (kind.kind === 'length') {
      this.#remaining = kind.length;
      this.#state = kind.length === 0 ? S.Head : S.Length;
    } else if (kind.kind === 'chunked') {
      this.#state = S.ChunkSize;
      this.#chunkSize = -1;
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
          if (b !== 10) throw new HttpParseError(400, 'malformed chunk size line');
          if (this.#chunkSize === -2) this.#chunkSize = this.#remaining;
          if (this.#chunkSize < 0) throw new HttpParseError(400, 'missing chunk size');
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
        if (this.#chunkSize === -2) return; // in a chunk extension
        const d = hexValue(b);
        if (d >= 0) {
          this.#chunkSize = (this.#chunkSize < 0 ? 0 : this.#chunkSize) * 16 + d;
          if (this.#chunkSize > Number.MAX_SAFE_INTEGER / 32) throw new HttpParseError(400, 'chunk size too large');
          return;
        }
        if ((b === 59 || b === 32 || b === 9) && this.#chunkSize >= 0) {
          // ';' starts an extension (BWS allowed before it); its content is skipped.
          if (b === 59) {
            this.#remaining = this.#chunkSize;
            this.#chunkSize = -2;
          }
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

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

/** The first value of a header; `name` in lower case. */
export function headerValue(head: MessageHead, name: string): string | undefined {
  const i = head.names.indexOf(name);
  return i < 0 ? undefined : head.headers[i]![1];
}

/** Every value of a header; `name` in lower case. */
export function headerValues(head: MessageHead, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < head.names.length; i++) if (head.names[i] === name) out.push(head.headers[i]![1]);
  return out;
}

type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

function contentLength(head: MessageHead): number | undefined {
  const values = headerValues(head, 'content-length');
  if (values.length === 0) return undefined;
  let found: number | undefined;
  for (const v of values) {
    for (const part of v.split(',')) {
      const p = part.trim();
      if (!/^\d{1,15}$/.test(p)) throw new HttpParseError(400, 'invalid Content-Length');
      const n = Number(p);
      if (found !== undefined && found !== n) throw new HttpParseError(400, 'conflicting Content-Length values');
      found = n;
    }
  }
  return found;
}

function transferChunked(head: MessageHead): boolean | undefined {
  const values = headerValues(head, 'transfer-encoding');
  if (values.length === 0) return undefined;
  const codings = values.flatMap((v) => v.split(',')).map((c) => c.trim().toLowerCase()).filter(Boolean);
  if (codings.length === 0) throw new HttpParseError(400, 'empty Transfer-Encoding');
  const chunkedAt = codings.indexOf('chunked');
  if (chunkedAt >= 0 && chunkedAt !== codings.length - 1) throw new HttpParseError(400, 'chunked must be the final transfer coding');
  return codings[codings.length - 1] === 'chunked';
}

export function requestBodyKind(head: MessageHead): BodyFraming {
  const te = transferChunked(head);
  const cl = contentLength(head);
  if (te !== undefined) {
    if (cl !== undefined) throw new HttpParseError(400, 'both Transfer-Encoding and Content-Length');
    if (head.versionMinor === 0) throw new HttpParseError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (!te) throw new HttpParseError(501, 'unsupported transfer coding');
    return { kind: 'chunked' };
  }
  if (cl !== undefined) return { kind: 'length', length: cl };
  return { kind: 'none' };
}

export function responseBodyKind(head: MessageHead, requestMethod: string | undefined): BodyFraming {
  const s = head.status;
  if ((s >= 100 && s < 200) || s === 204 || s === 304) return { kind: 'none' };
  if (requestMethod === 'HEAD') return { kind: 'none' };
  const te = transferChunked(head);
  if (te !== undefined) return te ? { kind: 'chunked' } : { kind: 'close' };
  const cl = contentLength(head);
  if (cl !== undefined) return { kind: 'length', length: cl };
  return { kind: 'close' };
}

/** Whether the connection persists after this message (RFC 9112 §9.3). */
export function keepAlive(head: MessageHead): boolean {
  const conn = (headerValue(head, 'connection') ?? '').toLowerCase();
  const tokens = conn.split(',').map((t) => t.trim());
  if (tokens.includes('close')) return false;
  if (head.versionMinor === 0) return tokens.includes('keep-alive');
  return true;
}

export function wantsUpgrade(head: MessageHead): boolean {
  if (!headerValue(head, 'upgrade')) return false;
  const conn = (headerValue(head, 'connection') ?? '').toLowerCase();
  return conn.split(',').some((t) => t.trim() === 'upgrade');
}
