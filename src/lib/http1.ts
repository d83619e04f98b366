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
  /** A head was parsed; it ends at offset `end` of `chunk` (it may have begun in an earlier chunk). */
  onHead(head: MessageHead, chunk: Buffer, end: number): void;
  /** Body bytes chunk[start, end) of the current message (in wire framing, chunked included). */
  onBody(chunk: Buffer, start: number, end: number): void;
  /** The current message ended at chunk offset `end`. */
  onMessageEnd(chunk: Buffer, end: number): void;
  /** After a 101 or accepted upgrade everything from chunk offset `start` is opaque. */
  onRaw?(chunk: Buffer, start: number): void;
  /**
   * When set, the trailer section of a chunked body (the field lines after the last chunk and
   * the empty line that ends it) is parsed and handed over here instead of through onBody, so a
   * proxy can rewrite it; the consumer then writes the section it wants (at least CRLF).
   */
  onTrailers?(fields: [name: string, value: string][]): void;
  /**
   * When set, each chunk-size line of a chunked body is handed over here as its size (once the
   * line's CRLF is in) instead of through onBody, so a proxy can write it in canonical form
   * (hex size, CRLF, no extensions) rather than as received.
   */
  onChunkSize?(size: number): void;
}

// Parser states (numbers, not an enum: the project runs TypeScript by type stripping).
const S = { Head: 0, Length: 1, ChunkSize: 2, ChunkData: 3, ChunkDataCrlf: 4, Trailers: 5, Close: 6, Raw: 7, Paused: 8 } as const;
type State = (typeof S)[keyof typeof S];

// Character checks run on every header of every request, so they are table lookups rather than
// regular expressions (measurably cheaper per call on the relay's hot path).
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

function latin1(raw: Buffer, start: number, end: number): string {
  return raw.toString('latin1', start, end);
}

/** Offset of the CRLF that ends the line starting at `from` (at most `limit`). */
function lineEnd(raw: Buffer, from: number, limit: number): number {
  for (let i = from; i < limit; i++) if (raw[i] === 13 && raw[i + 1] === 10) return i;
  return limit;
}

/** The error for a bad line: a bare LF in it is named as such (it is the usual cause). */
function lineError(raw: Buffer, start: number, end: number, message: string): HttpParseError {
  for (let i = start; i < end; i++) if (raw[i] === 10) return new HttpParseError(400, 'bare LF in message head');
  return new HttpParseError(400, message);
}

/** "HTTP/1.0" or "HTTP/1.1" at `at`. */
function isHttp1Version(raw: Buffer, at: number): boolean {
  return raw[at] === 72 && raw[at + 1] === 84 && raw[at + 2] === 84 && raw[at + 3] === 80 && raw[at + 4] === 47 && raw[at + 5] === 49 && raw[at + 6] === 46 && (raw[at + 7] === 48 || raw[at + 7] === 49);
}

/** method SP request-target SP HTTP/1.x (RFC 9112 §3): a token, no controls or spaces in the target. */
function parseRequestLine(raw: Buffer, start: number, eol: number, head: MessageHead): void {
  let sp1 = start;
  while (sp1 < eol && raw[sp1] !== 32) sp1++;
  let sp2 = sp1 + 1;
  while (sp2 < eol && raw[sp2] !== 32) sp2++;
  if (sp1 === start || sp2 === sp1 + 1 || eol - sp2 !== 9 || !isHttp1Version(raw, sp2 + 1)) throw lineError(raw, start, eol, 'malformed request line');
  for (let i = start; i < sp1; i++) {
    const c = raw[i]!;
    if (c > 127 || TCHAR[c] === 0) throw lineError(raw, start, eol, 'malformed request line');
  }
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = raw[i]!;
    if (c <= 0x20 || c === 0x7f) throw lineError(raw, start, eol, 'malformed request line');
  }
  head.method = latin1(raw, start, sp1);
  head.target = latin1(raw, sp1 + 1, sp2);
  head.versionMinor = raw[eol - 1] === 48 ? 0 : 1;
}

/** HTTP/1.x SP 3DIGIT [SP reason] (RFC 9112 §4). */
function parseStatusLine(raw: Buffer, start: number, eol: number, head: MessageHead): void {
  const d = (i: number): number => raw[start + i]! - 48;
  const digits = d(9) >= 0 && d(9) <= 9 && d(10) >= 0 && d(10) <= 9 && d(11) >= 0 && d(11) <= 9;
  const len = eol - start;
  if (len < 12 || !isHttp1Version(raw, start) || raw[start + 8] !== 32 || !digits || (len > 12 && raw[start + 12] !== 32)) throw lineError(raw, start, eol, 'malformed status line');
  for (let i = start + 13; i < eol; i++) if (raw[i] === 13 || raw[i] === 10) throw lineError(raw, start, eol, 'malformed status line');
  head.versionMinor = raw[start + 7] === 48 ? 0 : 1;
  head.status = d(9) * 100 + d(10) * 10 + d(11);
  head.reason = len > 13 ? latin1(raw, start + 13, eol) : '';
}

/** A field value holds no control character but HTAB (visible ASCII, obs-text, SP are allowed). */
function checkFieldValue(buf: Buffer, pos: number, colon: number, vs: number, ve: number, eol: number): void {
  for (let i = vs; i < ve; i++) {
    const c = buf[i]!;
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw lineError(buf, pos, eol, `invalid character in header ${latin1(buf, pos, colon)}`);
  }
}

/** Whether raw[at, at + lower.length) equals `lower` ignoring ASCII case. */
function asciiEqualsLower(raw: Buffer, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = raw[at + i]!;
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const MAX_CHUNK_LINE = 4096;

// What may follow the hex digits of a chunk size (RFC 9112 §7.1.1): chunk-ext =
// *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), names and values tokens or
// quoted strings. Nothing else: no whitespace inside the size (`1 0` is not 0x10), no
// whitespace before the CRLF without an extension, no control characters.
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t -~\\x80-\\xff])*"';
const CHUNK_EXT = new RegExp(`^(?:[ \\t]*;[ \\t]*${TOKEN}(?:[ \\t]*=[ \\t]*(?:${TOKEN}|${QUOTED}))?)+$`);

export interface FramerOptions {
  kind: 'request' | 'response';
  /** Largest head accepted (bytes); larger → HttpParseError 431 (requests) or 400 (responses). */
  maxHeadSize?: number;
  /** Responses: the method of the request each response answers, in order (HEAD → no body). */
  nextRequestMethod?: () => string | undefined;
  /**
   * Responses: false leaves `headers` and `names` of each head empty and checks only the fields
   * that frame the message (Content-Length, Transfer-Encoding). For a proxy that passes
   * responses through as received and needs only the status and where each message ends.
   */
  keepFields?: boolean;
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
  /** The chunk-size line after its hex digits (BWS and extensions), while it is read. */
  #chunkExt: string | undefined;
  #sawCr = false;
  #trailerLineEmpty = true;
  /** With onTrailers: the trailer section read so far. */
  #trailerParts: Buffer[] = [];
  /** Set by the consumer (after an Upgrade request) to stop parsing until resumed. */
  #pausedAfterMessage = false;
  readonly #keepFields: boolean;
  /** Without `keepFields`: the framing fields of the current head (a plain-digits Content-Length as a number). */
  #clValue = -1;
  #cl: string[] | undefined;
  #te: string[] | undefined;

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
            head = this.#parseHead(raw, 0, raw.length);
          } else {
            head = this.#parseHead(chunk, i, end);
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

  /** Parses the head in buf[start, end), which ends with CRLF CRLF. */
  #parseHead(buf: Buffer, start: number, end: number): MessageHead | null {
    if (end - start === 2) {
      if (this.#kind === 'request') return null;
      throw new HttpParseError(400, 'empty response head');
    }
    // Parsed over the bytes. Strings are made only for what is kept: every field of a request
    // (sliced from one string of the head), of a response with `keepFields: false` nothing but
    // a Content-Length that is not plain digits and Transfer-Encoding.
    const limit = end - 2; // the last field line's CRLF is in; the empty line is not
    // A bare LF anywhere is refused, as #findHeadEnd refuses it in a head that arrives in pieces
    // (kept fields are checked one by one below; a passed-through head is not, so scan it here).
    if (!this.#keepFields) {
      for (let i = buf.indexOf(10, start); i >= 0 && i < end; i = buf.indexOf(10, i + 1)) {
        if (i === start || buf[i - 1] !== 13) throw new HttpParseError(400, 'bare LF in message head');
      }
    }
    let eol = lineEnd(buf, start, limit);
    const head: MessageHead = { method: '', target: '', status: 0, reason: '', versionMinor: 1, headers: [], names: [], size: end - start };
    if (this.#kind === 'request') parseRequestLine(buf, start, eol, head);
    else parseStatusLine(buf, start, eol, head);
    const keep = this.#keepFields;
    const text = keep ? latin1(buf, start, limit) : '';
    this.#clValue = -1;
    this.#cl = undefined;
    this.#te = undefined;
    let pos = eol + 2;
    while (pos < limit) {
      eol = lineEnd(buf, pos, limit);
      const first = buf[pos]!;
      if (first === 32 || first === 9) throw new HttpParseError(400, 'obsolete line folding in header');
      let colon = pos;
      while (colon < eol && buf[colon] !== 58) colon++;
      if (colon === pos || colon === eol) throw lineError(buf, pos, eol, 'malformed header line');
      for (let i = pos; i < colon; i++) {
        const c = buf[i]!;
        if (c > 127 || TCHAR[c] === 0) throw lineError(buf, pos, colon, `invalid header name "${latin1(buf, pos, Math.min(colon, pos + 40))}"`);
      }
      // The value without optional whitespace (SP, HTAB) around it; no other control characters.
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (buf[vs] === 32 || buf[vs] === 9)) vs++;
      while (ve > vs && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
      if (keep) checkFieldValue(buf, pos, colon, vs, ve, eol);
      if (keep) {
        const name = text.slice(pos - start, colon - start);
        head.headers.push([name, text.slice(vs - start, ve - start)]);
        head.names.push(name.toLowerCase());
      } else {
        const len = colon - pos;
        // Passed through as received: only the fields that frame the message are checked.
        if (len === 14 && asciiEqualsLower(buf, pos, 'content-length')) {
          checkFieldValue(buf, pos, colon, vs, ve, eol);
          this.#addContentLength(buf, vs, ve);
        } else if (len === 17 && asciiEqualsLower(buf, pos, 'transfer-encoding')) {
          checkFieldValue(buf, pos, colon, vs, ve, eol);
          (this.#te ??= []).push(latin1(buf, vs, ve));
        }
      }
      pos = eol + 2;
    }
    return head;
  }

  /** Without `keepFields`: the Content-Length the current head's values agree on. */
  readonly #contentLength = (): number | undefined => {
    if (this.#cl === undefined) return this.#clValue >= 0 ? this.#clValue : undefined;
    return contentLength(this.#clValue >= 0 ? [String(this.#clValue), ...this.#cl] : this.#cl);
  };

  /** Without `keepFields`: notes a Content-Length value (plain digits as a number, others as text). */
  #addContentLength(buf: Buffer, vs: number, ve: number): void {
    let n = ve - vs > 0 && ve - vs <= 15 ? 0 : -1;
    for (let i = vs; i < ve && n >= 0; i++) {
      const d = buf[i]! - 48;
      n = d >= 0 && d <= 9 ? n * 10 + d : -1;
    }
    // Judged only if the framing rests on it (Transfer-Encoding, 204, 304, HEAD come first).
    if (n >= 0 && (this.#clValue < 0 || this.#clValue === n)) this.#clValue = n;
    else (this.#cl ??= []).push(latin1(buf, vs, ve));
  }

  #startBody(head: MessageHead): void {
    const kind =
      this.#kind === 'request'
        ? requestBodyKind(head)
        : this.#keepFields
          ? responseBodyKind(head, this.#nextMethodFor(head))
          : responseFraming(head.status, this.#nextMethodFor(head), this.#te, this.#contentLength);
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

/** The field lines of a complete trailer section (ending in CRLF CRLF, or just CRLF when empty). */
function parseTrailerFields(raw: Buffer): [string, string][] {
  const fields: [string, string][] = [];
  let pos = 0;
  const limit = raw.length - 2; // the empty line that ends the section
  while (pos < limit) {
    const eol = lineEnd(raw, pos, limit);
    let colon = pos;
    while (colon < eol && raw[colon] !== 58) colon++;
    if (colon === pos || colon === eol) throw new HttpParseError(400, 'malformed trailer');
    for (let i = pos; i < colon; i++) {
      const c = raw[i]!;
      if (c > 127 || TCHAR[c] === 0) throw new HttpParseError(400, 'malformed trailer');
    }
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (raw[vs] === 32 || raw[vs] === 9)) vs++;
    while (ve > vs && (raw[ve - 1] === 32 || raw[ve - 1] === 9)) ve--;
    checkFieldValue(raw, pos, colon, vs, ve, eol);
    fields.push([latin1(raw, pos, colon), latin1(raw, vs, ve)]);
    pos = eol + 2;
  }
  return fields;
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
const NONE: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });
const CLOSE: BodyFraming = Object.freeze({ kind: 'close' });

function valuesOf(head: MessageHead, name: string): string[] | undefined {
  const v = headerValues(head, name);
  return v.length === 0 ? undefined : v;
}

/** The Content-Length the values agree on (a list of equal values is allowed), or an error. */
function contentLength(values: string[] | undefined): number | undefined {
  if (values === undefined) return undefined;
  let found: number | undefined;
  for (const v of values) {
    for (const part of v.includes(',') ? v.split(',') : [v]) {
      const p = part.trim();
      if (!/^\d{1,15}$/.test(p)) throw new HttpParseError(400, 'invalid Content-Length');
      const n = Number(p);
      if (found !== undefined && found !== n) throw new HttpParseError(400, 'conflicting Content-Length values');
      found = n;
    }
  }
  return found;
}

/** Whether the final transfer coding is chunked; undefined without Transfer-Encoding. */
function transferChunked(values: string[] | undefined): boolean | undefined {
  if (values === undefined) return undefined;
  const codings = values.flatMap((v) => v.split(',')).map((c) => c.trim().toLowerCase()).filter(Boolean);
  if (codings.length === 0) throw new HttpParseError(400, 'empty Transfer-Encoding');
  const chunkedAt = codings.indexOf('chunked');
  if (chunkedAt >= 0 && chunkedAt !== codings.length - 1) throw new HttpParseError(400, 'chunked must be the final transfer coding');
  return codings[codings.length - 1] === 'chunked';
}

export function requestBodyKind(head: MessageHead): BodyFraming {
  const te = transferChunked(valuesOf(head, 'transfer-encoding'));
  const cl = contentLength(valuesOf(head, 'content-length'));
  if (te !== undefined) {
    if (cl !== undefined) throw new HttpParseError(400, 'both Transfer-Encoding and Content-Length');
    if (head.versionMinor === 0) throw new HttpParseError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (!te) throw new HttpParseError(501, 'unsupported transfer coding');
    return CHUNKED;
  }
  if (cl !== undefined) return { kind: 'length', length: cl };
  return NONE;
}

export function responseBodyKind(head: MessageHead, requestMethod: string | undefined): BodyFraming {
  return responseFraming(head.status, requestMethod, valuesOf(head, 'transfer-encoding'), () => contentLength(valuesOf(head, 'content-length')));
}

/** RFC 9112 §6.3 for a response, from its status and its framing fields' values. */
function responseFraming(s: number, requestMethod: string | undefined, te: string[] | undefined, contentLengthOf: () => number | undefined): BodyFraming {
  if ((s >= 100 && s < 200) || s === 204 || s === 304) return NONE;
  if (requestMethod === 'HEAD') return NONE;
  const chunked = transferChunked(te);
  if (chunked !== undefined) return chunked ? CHUNKED : CLOSE;
  const length = contentLengthOf();
  if (length !== undefined) return { kind: 'length', length };
  return CLOSE;
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
