// Reads the SNI and ALPN of a TLS ClientHello without terminating TLS, so the edge can route
// a connection (agent link, ACME TLS-ALPN-01, passthrough, termination) before choosing how
// to handle it. Only the first record is read; ClientHellos fit one record in practice.

export interface ClientHelloInfo {
  serverName?: string;
  alpn: string[];
}

export type PeekResult = { kind: 'need-more'; needed: number } | { kind: 'ok'; info: ClientHelloInfo } | { kind: 'not-tls' };

const MAX_RECORD = 16384 + 5;

/** Parses what has arrived so far. */
export function parseClientHello(buf: Buffer): PeekResult {
  if (buf.length < 5) return { kind: 'need-more', needed: 5 };
  if (buf[0] !== 0x16 || buf[1] !== 0x03) return { kind: 'not-tls' };
  const recLen = buf.readUInt16BE(3);
  if (recLen + 5 > MAX_RECORD) return { kind: 'not-tls' };
  if (buf.length < 5 + recLen) return { kind: 'need-more', needed: 5 + recLen };
  const rec = buf.subarray(5, 5 + recLen);
  try {
    return { kind: 'ok', info: parseHandshake(rec) };
  } catch {
    return { kind: 'not-tls' };
  }
}

function parseHandshake(h: Buffer): ClientHelloInfo {
  const info: ClientHelloInfo = { alpn: [] };
  if (h[0] !== 0x01) throw new Error('not a ClientHello');
  let p = 4; // type(1) + length(3)
  p += 2 + 32; // version + random
  p += 1 + h[p]!; // session id
  p += 2 + h.readUInt16BE(p); // cipher suites
  p += 1 + h[p]!; // compression methods
  if (p + 2 > h.length) return info; // no extensions
  const extEnd = Math.min(h.length, p + 2 + h.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    const body = h.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    if (type === 0) {
      // server_name: list length(2), then entries type(1) len(2) name
      let q = 2;
      while (q + 3 <= body.length) {
        const nt = body[q]!;
        const nl = body.readUInt16BE(q + 1);
        if (nt === 0) {
          info.serverName = body.toString('latin1', q + 3, q + 3 + nl).toLowerCase();
          break;
        }
        q += 3 + nl;
      }
    } else if (type === 16) {
      // ALPN: list length(2), then len(1) protocol
      let q = 2;
      while (q < body.length) {
        const l = body[q]!;
        info.alpn.push(body.toString('latin1', q + 1, q + 1 + l));
        q += 1 + l;
      }
    }
  }
  return info;
}
