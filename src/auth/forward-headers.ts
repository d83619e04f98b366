import { stripTunnCookies } from './cookies.ts';
import type { MessageHead } from '../lib/http1.ts';

// The one policy for what of a visitor's request head (and trailers) reaches a tunnel's
// origin. Hostile by default (DESIGN.md decision 16):
//
//   - every header the relay sets or reserves (Tunn-*, X-Forwarded*, Forwarded*, X-Real-IP, …)
//     is dropped in every spelling: CGI, WSGI, PHP and Rack read `-` and `_` as the same
//     character, so `Tunn_User_Email` would reach the app as the relay's own header;
//   - hop-by-hop fields (RFC 9110 §7.6.1) are dropped, with the fields a Connection header
//     names and the Connection header itself: the relay sends its own Connection (close,
//     keep-alive for HTTP/1.0, upgrade for a forwarded upgrade), so a visitor cannot make a
//     hop-by-hop-honouring proxy in front of the app strip the relay's identity header;
//   - tunn's cookies and tunn's bearer tokens are stripped on every path, public tunnels too;
//     every other cookie keeps its bytes.

/** Lower case with `_` read as `-`: the name as CGI-style servers see it. */
export function normalizeHeaderName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

// Exact names the relay reserves (besides the tunn-*, forwarded* and x-forwarded* prefixes): the
// client-address headers an app, framework or CDN-aware middleware might trust (nginx real_ip,
// Cloudflare, Fastly, Akamai, ingress-nginx, Rails/Rack, Express trust-proxy libraries). The
// relay is the edge, so any inbound copy is forged.
const RESERVED = new Set([
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'client-ip',
  'x-original-forwarded-for',
]);

/**
 * Whether a (normalised) header name is the relay's to set: inbound copies never pass. The
 * forwarding families go by prefix (`Forwarded`, `Forwarded-For`, bare `X-Forwarded`,
 * `X-Forwarded-*`), so a variant some app reads is not missed for want of a list entry.
 */
export function isReservedHeader(normalized: string): boolean {
  return normalized.startsWith('tunn-') || normalized.startsWith('x-forwarded') || normalized.startsWith('forwarded') || RESERVED.has(normalized);
}

// Hop-by-hop fields (RFC 9110 §7.6.1, §7.8; RFC 9113 §3.2.1 for HTTP2-Settings). `te` passes
// when it is just "trailers"; `upgrade` is re-sent by the relay for an upgrade it forwards.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'upgrade', 'http2-settings']);

// Fields the relay frames or routes the request by: a Connection header cannot remove them
// (that would desynchronise the origin from the relay), and an `_` spelling of them is dropped
// (an underscore-folding server could read it as the real one).
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding']);

// Fields that must not be sent in trailers (RFC 9110 §6.5.1: framing, routing, authentication,
// request modifiers, and what the relay frames by).
const NOT_IN_TRAILERS = new Set([...FRAMING, ...HOP_BY_HOP, 'trailer', 'authorization', 'cookie', 'expect', 'range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'max-forwards', 'content-type', 'content-encoding', 'content-range']);

export interface ForwardOptions {
  clientIp: string;
  proto: 'http' | 'https';
  /** The Host the visitor sent (for X-Forwarded-Host). */
  host: string;
  /** Send this Host instead (agent's --host-header). */
  hostOverride?: string;
  /** The Upgrade value to forward (only allowed protocols), or undefined: no upgrade is forwarded. */
  upgrade?: string;
  /** Whether an Authorization value carries one of tunn's own credentials (stripped on every path). */
  isTunnCredential?: (authorization: string) => boolean;
  /** Lower-case names the gate consumed (e.g. authorization). */
  remove?: string[];
  /** Headers the gate adds (identity). */
  set?: [string, string][];
}

/** The request headers forwarded to the origin. */
export function forwardRequestHeaders(head: MessageHead, o: ForwardOptions): [string, string][] {
  const tokens = connectionTokens(head);
  const remove = o.remove?.length ? new Set(o.remove) : undefined;
  const out: [string, string][] = [];
  for (let i = 0; i < head.headers.length; i++) {
    const [k, v] = head.headers[i]!;
    const lower = head.names[i]!;
    const n = lower.includes('_') ? normalizeHeaderName(lower) : lower;
    if (isReservedHeader(n) || remove?.has(lower)) continue;
    if (HOP_BY_HOP.has(n) && !(n === 'te' && v.trim().toLowerCase() === 'trailers')) continue;
    if (n !== lower && FRAMING.has(n)) continue;
    if (tokens?.has(n) && !FRAMING.has(n)) continue;
    if (lower === 'cookie') {
      const rest = stripTunnCookies(v);
      if (rest !== undefined) out.push([k, rest]);
      continue;
    }
    if (lower === 'authorization' && o.isTunnCredential?.(v)) continue;
    if (lower === 'host' && o.hostOverride) {
      out.push([k, o.hostOverride]);
      continue;
    }
    out.push([k, v]);
  }
  const connection = o.upgrade !== undefined ? 'upgrade' : tokens?.has('close') ? 'close' : head.versionMinor === 0 && tokens?.has('keep-alive') ? 'keep-alive' : undefined;
  if (connection) out.push(['Connection', connection]);
  if (o.upgrade !== undefined) out.push(['Upgrade', o.upgrade]);
  out.push(['X-Forwarded-For', o.clientIp], ['X-Forwarded-Proto', o.proto], ['X-Forwarded-Host', o.host]);
  if (o.set) for (const [k, v] of o.set) out.push([k, v]);
  return out;
}

/** The trailer fields forwarded to the origin: none the relay reserves, none RFC 9110 keeps out of trailers. */
export function forwardTrailers(fields: [string, string][]): [string, string][] {
  return fields.filter(([k]) => {
    const n = normalizeHeaderName(k);
    return !isReservedHeader(n) && !NOT_IN_TRAILERS.has(n);
  });
}

/** A trailer section on the wire (the empty line included). */
export function serializeTrailers(fields: [string, string][]): Buffer {
  let s = '';
  for (const [k, v] of fields) s += `${k}: ${v}\r\n`;
  return Buffer.from(s + '\r\n', 'latin1');
}

/** The (normalised) tokens of every Connection header, or undefined without one. */
function connectionTokens(head: MessageHead): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < head.names.length; i++) {
    if (head.names[i] !== 'connection') continue;
    tokens ??= new Set();
    for (const t of head.headers[i]![1].split(',')) {
      const n = normalizeHeaderName(t.trim());
      if (n) tokens.add(n);
    }
  }
  return tokens;
}
