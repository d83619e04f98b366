// HTTP/1.1 message bodies: where a body ends (RFC 9112 §6.3 and §7.1: Content-Length,
// chunked, until close, none), refusing the framings that enable request smuggling.

import { headerValues, HttpParseError, type MessageHead } from './http1-head.ts';

export const MAX_CHUNK_LINE = 4096;

// What may follow the hex digits of a chunk size (RFC 9112 §7.1.1): chunk-ext =
// *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), names and values tokens or
// quoted strings. Nothing else: no whitespace inside the size (`1 0` is not 0x10), no
// whitespace before the CRLF without an extension, no control characters.
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t -~\\x80-\\xff])*"';
export const CHUNK_EXT = new RegExp(`^(?:[ \\t]*;[ \\t]*${TOKEN}(?:[ \\t]*=[ \\t]*(?:${TOKEN}|${QUOTED}))?)+$`);

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };
const NONE: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });
const CLOSE: BodyFraming = Object.freeze({ kind: 'close' });

function valuesOf(head: MessageHead, name: string): string[] | undefined {
  const v = headerValues(head, name);
  return v.length === 0 ? undefined : v;
}

/** The Content-Length the values agree on (a list of equal values is allowed), or an error. */
export function contentLength(values: string[] | undefined): number | undefined {
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
export function responseFraming(s: number, requestMethod: string | undefined, te: string[] | undefined, contentLengthOf: () => number | undefined): BodyFraming {
  if ((s >= 100 && s < 200) || s === 204 || s === 304) return NONE;
  if (requestMethod === 'HEAD') return NONE;
  const chunked = transferChunked(te);
  if (chunked !== undefined) return chunked ? CHUNKED : CLOSE;
  const length = contentLengthOf();
  if (length !== undefined) return { kind: 'length', length };
  return CLOSE;
}


export function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

/**
 * The framing fields of a response head passed through (FramerOptions.keepFields false): a
 * plain-digits Content-Length as a number, other values as text, Transfer-Encoding values.
 */
export class FramingFields {
  #clValue = -1;
  #cl: string[] | undefined;
  te: string[] | undefined;

  reset(): void {
    this.#clValue = -1;
    this.#cl = undefined;
    this.te = undefined;
  }

  /** Notes a Content-Length value in buf[vs, ve). */
  addContentLength(buf: Buffer, vs: number, ve: number): void {
    let n = ve - vs > 0 && ve - vs <= 15 ? 0 : -1;
    for (let i = vs; i < ve && n >= 0; i++) {
      const d = buf[i]! - 48;
      n = d >= 0 && d <= 9 ? n * 10 + d : -1;
    }
    // Judged only if the framing rests on it (Transfer-Encoding, 204, 304, HEAD come first).
    if (n >= 0 && (this.#clValue < 0 || this.#clValue === n)) this.#clValue = n;
    else (this.#cl ??= []).push(buf.toString('latin1', vs, ve));
  }

  addTransferEncoding(value: string): void {
    (this.te ??= []).push(value);
  }

  /** The Content-Length the current head's values agree on (throws when they do not). */
  readonly contentLength = (): number | undefined => {
    if (this.#cl === undefined) return this.#clValue >= 0 ? this.#clValue : undefined;
    return contentLength(this.#clValue >= 0 ? [String(this.#clValue), ...this.#cl] : this.#cl);
  };
}
