// HTTP/1.1 message heads (RFC 9112 §2-5): the request and status lines and the field lines,
// parsed over the bytes, strict where leniency enables request smuggling (see http1.ts).
// Character checks run on every header of every request, so they are table lookups rather
// than regular expressions (measurably cheaper per call on the relay's hot path).

import type { FramingFields } from './http1-framing.ts';

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

const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

export function latin1(raw: Buffer, start: number, end: number): string {
  return raw.toString('latin1', start, end);
}

/** Offset of the CRLF that ends the line starting at `from` (at most `limit`). */
export function lineEnd(raw: Buffer, from: number, limit: number): number {
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
export function checkFieldValue(buf: Buffer, pos: number, colon: number, vs: number, ve: number, eol: number): void {
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

/**
 * Parses the head in buf[start, end), which ends with CRLF CRLF (null: an empty line before a
 * request, which is skipped). Without `keepFields` (responses passed through) only the framing
 * fields are read, into `fields`.
 */
export function parseHead(buf: Buffer, start: number, end: number, kind: 'request' | 'response', keepFields: boolean, fields: FramingFields): MessageHead | null {
  if (end - start === 2) {
    if (kind === 'request') return null;
    throw new HttpParseError(400, 'empty response head');
  }
  // Parsed over the bytes. Strings are made only for what is kept: every field of a request
  // (sliced from one string of the head), of a response with `keepFields: false` nothing but
  // a Content-Length that is not plain digits and Transfer-Encoding.
  const limit = end - 2; // the last field line's CRLF is in; the empty line is not
  // A bare LF anywhere is refused, as #findHeadEnd refuses it in a head that arrives in pieces
  // (kept fields are checked one by one below; a passed-through head is not, so scan it here).
  if (!keepFields) {
    for (let i = buf.indexOf(10, start); i >= 0 && i < end; i = buf.indexOf(10, i + 1)) {
      if (i === start || buf[i - 1] !== 13) throw new HttpParseError(400, 'bare LF in message head');
    }
  }
  let eol = lineEnd(buf, start, limit);
  const head: MessageHead = { method: '', target: '', status: 0, reason: '', versionMinor: 1, headers: [], names: [], size: end - start };
  if (kind === 'request') parseRequestLine(buf, start, eol, head);
  else parseStatusLine(buf, start, eol, head);
  const keep = keepFields;
  const text = keep ? latin1(buf, start, limit) : '';
  fields.reset();
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
        fields.addContentLength(buf, vs, ve);
      } else if (len === 17 && asciiEqualsLower(buf, pos, 'transfer-encoding')) {
        checkFieldValue(buf, pos, colon, vs, ve, eol);
        fields.addTransferEncoding(latin1(buf, vs, ve));
      }
    }
    pos = eol + 2;
  }
  return head;
}

export function parseTrailerFields(raw: Buffer): [string, string][] {
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
