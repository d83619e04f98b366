import { TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import type { TsigRecord } from './tsig.ts';

// The few DNS wire pieces an RFC 2136 UPDATE needs that dns-packet lacks: class NONE (delete
// one RR, RFC 2136 §2.5.4), the UPDATE opcode's section names, and reading a TSIG RR back off
// the end of an answer with the exact bytes its MAC covers. Names are written uncompressed and
// in lower case, which is also TSIG's canonical form.

export const OPCODE_UPDATE = 5;
export const TYPE_SOA = 6;
export const TYPE_TXT = 16;
export const TSIG_TYPE = 250;
export const CLASS_IN = 1;
/** RFC 2136 §2.5.4: "Delete An RR From An RRset" uses class NONE with the RR's data. */
export const CLASS_NONE = 254;

export const RCODES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED',
  6: 'YXDOMAIN', 7: 'YXRRSET', 8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE',
};

/** A DNS name in wire form, uncompressed, lower case. */
export function encodeName(name: string): Buffer {
  const n = normalizeHost(name);
  const parts: Buffer[] = [];
  for (const label of n === '' ? [] : n.split('.')) {
    const b = Buffer.from(label, 'utf8');
    if (b.length === 0 || b.length > 63) throw new TypeError(`"${name}" has an empty or over-long label`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new TypeError(`"${name}" is longer than 255 bytes`);
  return out;
}

/** TXT RDATA: the value as character-strings of at most 255 bytes. */
export function txtRdata(value: string): Buffer {
  const b = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < b.length; i += 255) {
    const chunk = b.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

export interface UpdateRecord {
  name: string;
  /** 'add' writes the RR (class IN, with a TTL); 'delete' removes exactly this RR (class NONE). */
  op: 'add' | 'delete';
  value: string;
  ttl?: number;
}

/** An RFC 2136 UPDATE for TXT records in `zone`: header, zone section, no prerequisites, the update section. */
export function encodeTxtUpdate(id: number, zone: string, records: UpdateRecord[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4); // ZOCOUNT
  header.writeUInt16BE(0, 6); // PRCOUNT
  header.writeUInt16BE(records.length, 8); // UPCOUNT
  header.writeUInt16BE(0, 10); // ADCOUNT
  const zoneSection = Buffer.concat([encodeName(zone), u16(TYPE_SOA), u16(CLASS_IN)]);
  const rrs = records.map((r) => {
    const rdata = txtRdata(r.value);
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(TYPE_TXT, 0);
    fixed.writeUInt16BE(r.op === 'add' ? CLASS_IN : CLASS_NONE, 2);
    fixed.writeUInt32BE(r.op === 'add' ? (r.ttl ?? 60) : 0, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([encodeName(r.name), fixed, rdata]);
  });
  return Buffer.concat([header, zoneSection, ...rrs]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

const malformed = (what: string) => new TunnError('PROTOCOL_ERROR', `the DNS server's answer is malformed: ${what}`);

/** Reads a (possibly compressed) name at `offset`: the name and the offset just after it in place. */
function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let o = offset;
  let end = -1;
  for (let jumps = 0; ; ) {
    if (o >= msg.length) throw malformed('a name runs past the end');
    const len = msg[o]!;
    if (len === 0) {
      if (end < 0) end = o + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (o + 1 >= msg.length || ++jumps > 64) throw malformed('a bad compression pointer');
      if (end < 0) end = o + 2;
      o = ((len & 0x3f) << 8) | msg[o + 1]!;
      continue;
    }
    if (len > 63 || o + 1 + len > msg.length) throw malformed('a bad label');
    labels.push(msg.subarray(o + 1, o + 1 + len).toString('latin1'));
    o += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end };
}

export interface ParsedAnswer {
  id: number;
  opcode: number;
  rcode: number;
  tsig?: TsigRecord;
}

/** The header of an answer and its TSIG RR, if it ends with one (RFC 8945 §5.1: TSIG is the last additional RR). */
export function parseAnswer(msg: Buffer): ParsedAnswer {
  if (msg.length < 12) throw malformed('shorter than a header');
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => msg.readUInt16BE(o));
  const total = counts.reduce((a, b) => a + b, 0);
  let o = 12;
  for (let i = 0; i < counts[0]!; i++) o = readName(msg, o).end + 4;
  let tsig: TsigRecord | undefined;
  for (let i = 0; i < total - counts[0]!; i++) {
    const start = o;
    const { name, end } = readName(msg, o);
    if (end + 10 > msg.length) throw malformed('a record runs past the end');
    const type = msg.readUInt16BE(end);
    const rdlen = msg.readUInt16BE(end + 8);
    const rd = end + 10;
    o = rd + rdlen;
    if (o > msg.length) throw malformed('a record runs past the end');
    if (type === TSIG_TYPE) {
      if (i !== total - counts[0]! - 1) throw malformed('a TSIG record that is not the last one');
      const alg = readName(msg, rd);
      let p = alg.end;
      const timeSigned = msg.readUInt16BE(p) * 2 ** 32 + msg.readUInt32BE(p + 2);
      const fudge = msg.readUInt16BE(p + 6);
      const macLen = msg.readUInt16BE(p + 8);
      p += 10;
      const mac = msg.subarray(p, p + macLen);
      p += macLen;
      const originalId = msg.readUInt16BE(p);
      const error = msg.readUInt16BE(p + 2);
      const otherLen = msg.readUInt16BE(p + 4);
      const other = msg.subarray(p + 6, p + 6 + otherLen);
      if (p + 6 + otherLen !== o) throw malformed('a TSIG record of the wrong length');
      const unsigned = Buffer.from(msg.subarray(0, start));
      unsigned.writeUInt16BE(originalId, 0);
      unsigned.writeUInt16BE(counts[3]! - 1, 10);
      tsig = { keyName: name, algorithm: alg.name, timeSigned, fudge, mac: Buffer.from(mac), originalId, error, other: Buffer.from(other), unsigned };
    }
  }
  return { id, opcode: (flags >> 11) & 0xf, rcode: flags & 0xf, tsig };
}
