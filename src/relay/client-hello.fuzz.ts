import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cuts, mutated, randomBytes, split, fuzzTarget, type FuzzTarget } from '../lib/fuzz.ts';
import { parseClientHello, type PeekResult } from './client-hello.ts';

// Fuzz targets of the ClientHello peek (client-hello.ts), which reads every byte a stranger sends
// to the relay's TLS port before anything else. Properties:
// - it never throws, and answers need-more (asking for more than it has, at most one record),
//   ok or not-tls;
// - a grammar-built ClientHello gives back its SNI (lower-cased) and ALPN list, every proper
//   prefix of it asks for more, and bytes after the record change nothing;
// - as the edge feeds it (growing buffer), the first answer that is not need-more is the answer
//   for the whole input's first record.

const MAX_RECORD = 16384 + 5;

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const vec8 = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length]), b]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);

interface Hello {
  sni?: string;
  alpn: string[];
  sessionId: Uint8Array;
  ciphers: number;
  /** Other extensions (type, body) around SNI and ALPN, as browsers send (GREASE, key share, …). */
  before: [number, Uint8Array][];
  after: [number, Uint8Array][];
}

const label = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'), minLength: 1, maxLength: 20 });
const hostName = fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.'));
const alpnId = fc.oneof(fc.constantFrom('tunn/1', 'h2', 'http/1.1', 'acme-tls/1'), fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 20 }));
const otherExt = fc.tuple(fc.integer({ min: 1, max: 0xffff }).filter((t) => t !== 16), fc.uint8Array({ maxLength: 40 }));
const hello: fc.Arbitrary<Hello> = fc.record(
  {
    sni: hostName,
    alpn: fc.array(alpnId, { maxLength: 4 }),
    sessionId: fc.uint8Array({ maxLength: 32 }),
    ciphers: fc.integer({ min: 1, max: 40 }),
    before: fc.array(otherExt, { maxLength: 3 }),
    after: fc.array(otherExt, { maxLength: 3 }),
  },
  { requiredKeys: ['alpn', 'sessionId', 'ciphers', 'before', 'after'] },
);

/** The TLS record of a ClientHello (RFC 8446 §4.1.2) with these fields. */
function encode(h: Hello): Buffer {
  const ext = (type: number, body: Buffer): Buffer => Buffer.concat([u16(type), vec16(body)]);
  const exts: Buffer[] = h.before.map(([t, b]) => ext(t, Buffer.from(b)));
  if (h.sni !== undefined) exts.push(ext(0, vec16(Buffer.concat([Buffer.from([0]), vec16(Buffer.from(h.sni, 'latin1'))]))));
  if (h.alpn.length) exts.push(ext(16, vec16(Buffer.concat(h.alpn.map((p) => vec8(Buffer.from(p, 'latin1')))))));
  exts.push(...h.after.map(([t, b]) => ext(t, Buffer.from(b))));
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    vec8(Buffer.from(h.sessionId)),
    vec16(Buffer.alloc(h.ciphers * 2, 0x13)),
    vec8(Buffer.from([0])),
    vec16(Buffer.concat(exts)),
  ]);
  const handshake = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(handshake.length), handshake]);
}

/** The peek's contract on any input. */
function checkShape(buf: Buffer, r: PeekResult): void {
  if (r.kind === 'need-more') {
    assert.ok(r.needed > buf.length && r.needed <= MAX_RECORD, `need-more asks for ${r.needed} bytes having ${buf.length}`);
  } else if (r.kind === 'ok') {
    const len = buf.length >= 5 ? buf.readUInt16BE(3) : 0;
    assert.ok((r.info.serverName?.length ?? 0) <= len, 'a server name longer than the record');
    assert.ok(r.info.alpn.reduce((n, p) => n + p.length + 1, 0) <= len, 'ALPN ids longer than the record');
    assert.equal(r.info.serverName, r.info.serverName?.toLowerCase(), 'the server name is not lower-cased');
  } else {
    assert.equal(r.kind, 'not-tls');
  }
}

/** What the edge does: parse the bytes so far after every piece until the answer is not need-more. */
function peekGrowing(pieces: Buffer[]): PeekResult {
  let have = Buffer.alloc(0);
  let r: PeekResult = { kind: 'need-more', needed: 5 };
  for (const p of pieces) {
    have = Buffer.concat([have, p]);
    r = parseClientHello(have);
    checkShape(have, r);
    if (r.kind !== 'need-more') return r;
  }
  return r;
}

const anyInput = fc.oneof(hello.map(encode), mutated(hello.map(encode)), randomBytes(), randomBytes(64).map((b) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(b.length), b])));

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'client-hello',
    about: 'ClientHello peek: never throws, need-more/ok/not-tls shapes, growing buffer == whole',
    input: fc.tuple(anyInput, cuts),
    check: ([input, at]: [Buffer, number[]]) => {
      const whole = parseClientHello(input);
      checkShape(input, whole);
      const grown = peekGrowing(split(input, at));
      if (whole.kind !== 'need-more') assert.deepEqual(grown, whole, 'peeking as bytes arrive answered differently from peeking the whole');
    },
  }),
  fuzzTarget({
    name: 'client-hello-valid',
    about: 'ClientHello peek on grammar-built hellos: SNI and ALPN exact, prefixes need more, trailing bytes ignored',
    input: fc.tuple(hello, fc.uint8Array({ maxLength: 20 }), fc.nat()),
    check: ([h, trailing, cut]: [Hello, Uint8Array, number]) => {
      const rec = encode(h);
      const want = { kind: 'ok', info: { ...(h.sni !== undefined ? { serverName: h.sni.toLowerCase() } : {}), alpn: h.alpn } };
      assert.deepEqual(parseClientHello(rec), want);
      assert.deepEqual(parseClientHello(Buffer.concat([rec, trailing])), want, 'bytes after the record changed the answer');
      const prefix = rec.subarray(0, cut % rec.length);
      const r = parseClientHello(prefix);
      assert.equal(r.kind, 'need-more', `a ${prefix.length}-byte prefix of a ${rec.length}-byte hello was answered ${r.kind}`);
    },
  }),
];
