import { isIP } from 'node:net';

// PROXY protocol version 2 (haproxy's proxy-protocol.txt, §2.2): the binary header a tunnel sends
// its target first, when the target asks for it (`--proxy-protocol`), so the target learns who
// connected. tunn adds two TLVs in the range the spec keeps for applications (0xE0-0xEF):
//   0xE0 PP2_TYPE_TUNN_EMAIL      the verified email of a `tunn connect` user (UTF-8)
//   0xE1 PP2_TYPE_TUNN_ASSERTION  a JWT the relay signed (the Tunn-Jwt-Assertion of HTTP tunnels,
//                                 audience the tunnel's host): a target verifies it against the
//                                 relay's JWKS instead of trusting whatever reaches its port.
// The parser is strict (it is what tests and example targets use): a header that does not follow
// the spec exactly is refused with what was wrong.

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_TUNN_EMAIL = 0xe0;
export const PP2_TYPE_TUNN_ASSERTION = 0xe1;

export interface ProxyAddress {
  address: string;
  port: number;
}

export interface ProxyHeader {
  /** `proxy`: a relayed connection; `local`: the sender's own (health checks), addresses ignored. */
  command: 'proxy' | 'local';
  transport: 'tcp' | 'udp';
  /** Both of one family; absent for `local` (and for an UNSPEC header read back). */
  source?: ProxyAddress;
  destination?: ProxyAddress;
  tlvs: { type: number; value: Buffer }[];
}

/** What tunn puts in a header: the client, where it connected, and who it is when known. */
export interface TunnProxyInfo {
  transport: 'tcp' | 'udp';
  source: ProxyAddress;
  destination: ProxyAddress;
  /** The tunnel's host (PP2_TYPE_AUTHORITY, like the SNI a TLS client sent). */
  authority?: string;
  email?: string;
  assertion?: string;
}

export function tunnProxyHeader(i: TunnProxyInfo): Buffer {
  const tlvs: ProxyHeader['tlvs'] = [];
  if (i.authority) tlvs.push({ type: PP2_TYPE_AUTHORITY, value: Buffer.from(i.authority, 'utf8') });
  if (i.email) tlvs.push({ type: PP2_TYPE_TUNN_EMAIL, value: Buffer.from(i.email, 'utf8') });
  if (i.assertion) tlvs.push({ type: PP2_TYPE_TUNN_ASSERTION, value: Buffer.from(i.assertion, 'utf8') });
  return encodeProxyV2({ command: 'proxy', transport: i.transport, source: i.source, destination: i.destination, tlvs });
}

/** An IPv4-mapped IPv6 address (::ffff:1.2.3.4, how a dual-stack socket reports IPv4) as IPv4. */
function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function addressBytes(address: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  // A trailing dotted quad (64:ff9b::1.2.3.4) becomes two hex groups; then "::" expands to zero groups.
  let a = address.replace(/%.*$/, '');
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (quad) {
    const q = quad.slice(1).map(Number);
    a = a.slice(0, quad.index) + `${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function encodeProxyV2(h: ProxyHeader): Buffer {
  let famBody = Buffer.alloc(0);
  let family = 0x0;
  if (h.command === 'proxy') {
    if (!h.source || !h.destination) throw new TypeError('a PROXY command needs source and destination');
    const src = plain(h.source.address);
    const dst = plain(h.destination.address);
    const fs = isIP(src);
    const fd = isIP(dst);
    if (fs === 0 || fs !== fd) throw new TypeError(`PROXY v2 addresses must be IP addresses of one family: ${h.source.address}, ${h.destination.address}`);
    for (const p of [h.source.port, h.destination.port]) if (!Number.isInteger(p) || p < 0 || p > 65535) throw new TypeError(`PROXY v2 port out of range: ${p}`);
    family = fs === 4 ? 0x1 : 0x2;
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(h.source.port, 0);
    ports.writeUInt16BE(h.destination.port, 2);
    famBody = Buffer.concat([addressBytes(src, fs as 4 | 6), addressBytes(dst, fd as 4 | 6), ports]);
  }
  const tlvs = h.tlvs.map((t) => {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 0xff) throw new TypeError(`PROXY v2 TLV type out of range: ${t.type}`);
    if (t.value.length > 0xffff) throw new TypeError(`PROXY v2 TLV 0x${t.type.toString(16)} is over 65535 bytes`);
    const head = Buffer.alloc(3);
    head[0] = t.type;
    head.writeUInt16BE(t.value.length, 1);
    return Buffer.concat([head, t.value]);
  });
  const body = Buffer.concat([famBody, ...tlvs]);
  if (body.length > 0xffff) throw new TypeError('PROXY v2 header over 65535 bytes');
  const fixed = Buffer.alloc(4);
  fixed[0] = h.command === 'proxy' ? 0x21 : 0x20;
  fixed[1] = (family << 4) | (h.command === 'proxy' ? (h.transport === 'tcp' ? 0x1 : 0x2) : 0x0);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, fixed, body]);
}

export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(`reading a PROXY v2 header: ${message}`);
    this.name = 'ProxyHeaderError';
  }
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Canonical form (RFC 5952): the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * Reads a header from the start of `buf`. Returns undefined when more bytes are needed, else the
 * header and its length (the connection's data follows it). Throws ProxyHeaderError for anything
 * the spec does not allow: a wrong signature or version, an unknown command, family or protocol,
 * a length too short for its addresses, a TLV running past the header's end.
 */
export function parseProxyV2(buf: Buffer): { header: ProxyHeader; length: number } | undefined {
  const sig = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (!buf.subarray(0, sig).equals(PROXY_V2_SIGNATURE.subarray(0, sig))) throw new ProxyHeaderError('the signature is not the PROXY v2 one');
  if (buf.length < 16) return undefined;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 0x2) throw new ProxyHeaderError(`version ${verCmd >> 4}, not 2`);
  const cmd = verCmd & 0xf;
  if (cmd > 1) throw new ProxyHeaderError(`unknown command 0x${cmd.toString(16)}`);
  const fam = buf[13]! >> 4;
  const proto = buf[13]! & 0xf;
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return undefined;
  const body = buf.subarray(16, 16 + len);
  if (fam > 0x3) throw new ProxyHeaderError(`unknown address family 0x${fam.toString(16)}`);
  if (proto > 0x2) throw new ProxyHeaderError(`unknown transport 0x${proto.toString(16)}`);
  if (fam === 0x3) throw new ProxyHeaderError('unix socket addresses are not used by tunn');
  const addrLen = fam === 0x1 ? 12 : fam === 0x2 ? 36 : 0;
  if (len < addrLen) throw new ProxyHeaderError(`length ${len} is shorter than the ${addrLen} bytes of its addresses`);
  const header: ProxyHeader = { command: cmd === 1 ? 'proxy' : 'local', transport: proto === 0x2 ? 'udp' : 'tcp', tlvs: [] };
  if (cmd === 1 && fam !== 0 && (proto === 0x1 || proto === 0x2)) {
    const n = fam === 0x1 ? 4 : 16;
    const text = (b: Buffer): string => (n === 4 ? [...b].join('.') : ipv6Text(b));
    header.source = { address: text(body.subarray(0, n)), port: body.readUInt16BE(2 * n) };
    header.destination = { address: text(body.subarray(n, 2 * n)), port: body.readUInt16BE(2 * n + 2) };
  }
  let at = addrLen;
  while (at < len) {
    if (at + 3 > len) throw new ProxyHeaderError(`a TLV head at byte ${at} runs past the header's end`);
    const type = body[at]!;
    const tl = body.readUInt16BE(at + 1);
    if (at + 3 + tl > len) throw new ProxyHeaderError(`TLV 0x${type.toString(16)} (${tl} bytes) runs past the header's end`);
    header.tlvs.push({ type, value: Buffer.from(body.subarray(at + 3, at + 3 + tl)) });
    at += 3 + tl;
  }
  return { header, length: 16 + len };
}

/** The TLV of `type` as UTF-8 text, if present. */
export function proxyTlvText(h: ProxyHeader, type: number): string | undefined {
  const t = h.tlvs.find((x) => x.type === type);
  return t?.value.toString('utf8');
}
