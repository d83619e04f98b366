import zlib from 'node:zlib';
import { BODY_LIMIT, type BodyCapture, type Header } from './model.ts';
import { redactFields, redactJson, redactTokens } from './redact.ts';

// How a captured body is shown. Bodies come from strangers, so nothing here produces markup:
// the page puts text into text nodes, shows images only of a type sniffed from their bytes
// (never SVG), and offers everything else as hex and a download.

export type BodyView =
  | { kind: 'empty' }
  | { kind: 'json'; text: string }
  | { kind: 'form'; fields: [string, string][] }
  | { kind: 'text'; text: string; contentType: string }
  | { kind: 'image'; type: ImageType }
  | { kind: 'binary'; hex: string };

export type ImageType = 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp';

export interface BodyInfo {
  size: number;
  kept: number;
  truncated: boolean;
  /** Content-Encoding that could not be decoded (the view is of the encoded bytes). */
  encoding?: string;
  view: BodyView;
}

const HEX_PREVIEW = 4096;

/** The body's bytes as the application sees them: chunked framing and gzip/deflate/br undone. */
export function decodedBody(body: BodyCapture, headers: Header[]): { bytes: Buffer; encoding?: string } {
  let bytes = body.chunked ? dechunk(body.bytes()) : body.bytes();
  const enc = header(headers, 'content-encoding')?.trim().toLowerCase();
  if (!enc || enc === 'identity' || bytes.length === 0) return { bytes };
  try {
    const opts = { maxOutputLength: BODY_LIMIT * 4, finishFlush: zlib.constants.Z_SYNC_FLUSH };
    if (enc === 'gzip' || enc === 'x-gzip') bytes = zlib.gunzipSync(bytes, opts);
    else if (enc === 'deflate') bytes = zlib.inflateSync(bytes, opts);
    else if (enc === 'br') bytes = zlib.brotliDecompressSync(bytes, { maxOutputLength: BODY_LIMIT * 4 });
    else return { bytes, encoding: enc };
    return { bytes };
  } catch {
    return { bytes, encoding: enc };
  }
}

export function bodyInfo(body: BodyCapture, headers: Header[], showSecrets: boolean): BodyInfo {
  const { bytes, encoding } = decodedBody(body, headers);
  return { size: body.size, kept: body.kept, truncated: body.truncated, encoding, view: viewOf(bytes, header(headers, 'content-type') ?? '', showSecrets) };
}

/** The bytes offered for download: JSON and forms redacted like their view, others as kept. */
export function downloadBytes(body: BodyCapture, headers: Header[], showSecrets: boolean): Buffer {
  const { bytes } = decodedBody(body, headers);
  if (showSecrets) return bytes;
  const v = viewOf(bytes, header(headers, 'content-type') ?? '', false);
  if (v.kind === 'json') return Buffer.from(v.text);
  if (v.kind === 'form') return Buffer.from(new URLSearchParams(v.fields).toString());
  if (v.kind === 'text') return Buffer.from(v.text);
  return bytes;
}

export function viewOf(bytes: Buffer, contentType: string, showSecrets: boolean): BodyView {
  if (bytes.length === 0) return { kind: 'empty' };
  const ct = contentType.split(';')[0]!.trim().toLowerCase();
  const image = sniffImage(bytes);
  if (image) return { kind: 'image', type: image };
  const text = utf8(bytes);
  if (text !== undefined) {
    if (ct === 'application/json' || ct.endsWith('+json') || (!ct && /^\s*[[{]/.test(text))) {
      try {
        const parsed: unknown = JSON.parse(text);
        return { kind: 'json', text: JSON.stringify(showSecrets ? parsed : redactJson(parsed), null, 2) };
      } catch {
        /* shown as text */
      }
    }
    if (ct === 'application/x-www-form-urlencoded') {
      const fields = [...new URLSearchParams(text)];
      return { kind: 'form', fields: showSecrets ? fields : redactFields(fields) };
    }
    return { kind: 'text', text: showSecrets ? text : redactTokens(text), contentType: ct };
  }
  return { kind: 'binary', hex: hexDump(bytes.subarray(0, HEX_PREVIEW)) };
}

/** The image type the bytes are, by signature; SVG is text and never an image here. */
export function sniffImage(b: Buffer): ImageType | undefined {
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47 && b.readUInt32BE(4) === 0x0d0a1a0a) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 6 && (b.toString('latin1', 0, 6) === 'GIF87a' || b.toString('latin1', 0, 6) === 'GIF89a')) return 'image/gif';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  return undefined;
}

function utf8(bytes: Buffer): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    // Control characters other than whitespace mean binary.
    return /[\x00-\x08\x0e-\x1f]/.test(text) ? undefined : text;
  } catch {
    return undefined;
  }
}

export function hexDump(b: Buffer): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = b.subarray(i, i + 16);
    const hex = [...row].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

/** Chunked transfer coding undone, as far as the kept bytes go. */
export function dechunk(wire: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  while (i < wire.length) {
    const eol = wire.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(wire.toString('latin1', i, eol).split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(wire.subarray(eol + 2, Math.min(eol + 2 + size, wire.length)));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

function header(headers: Header[], name: string): string | undefined {
  return headers.find(([k]) => k.toLowerCase() === name)?.[1];
}
