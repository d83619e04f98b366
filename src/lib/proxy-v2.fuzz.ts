import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cuts, fuzzTarget, mutated, randomBytes, split, type FuzzTarget } from './fuzz.ts';
import { encodeProxyV2, parseProxyV2, PROXY_V2_SIGNATURE, ProxyHeaderError, tunnProxyHeader } from './proxy-v2.ts';

// Fuzz target of the strict PROXY v2 parser (proxy-v2.ts), which example targets and tests use to
// read what a tunnel sends. Properties: any bytes give a header, "need more" or a
// ProxyHeaderError, nothing else; a header it accepts encodes back to the same bytes; a prefix of
// an accepted header is "need more" (or refused), never a different header.

const address = fc.oneof(
  fc.tuple(fc.ipV4(), fc.ipV4()),
  fc.tuple(fc.ipV6(), fc.ipV6()).filter(([a, b]) => !/^::ffff:\d/i.test(a) && !/^::ffff:\d/i.test(b)),
);
const valid = fc
  .tuple(address, fc.nat(65535), fc.nat(65535), fc.constantFrom('tcp' as const, 'udp' as const), fc.option(fc.emailAddress()), fc.option(fc.string({ maxLength: 60 })))
  .map(([[s, d], sp, dp, transport, email, assertion]) => tunnProxyHeader({ transport, source: { address: s, port: sp }, destination: { address: d, port: dp }, email: email ?? undefined, assertion: assertion ?? undefined }));
const input = fc.oneof({ weight: 4, arbitrary: valid }, mutated(valid), randomBytes(300).map((b) => Buffer.concat([PROXY_V2_SIGNATURE, b])), randomBytes(64));

function parse(b: Buffer): ReturnType<typeof parseProxyV2> | 'refused' {
  try {
    return parseProxyV2(b);
  } catch (err) {
    assert.ok(err instanceof ProxyHeaderError, `parseProxyV2 threw ${String(err)}`);
    assert.ok(err.message.length <= 160, `an error message of ${err.message.length} characters`);
    return 'refused';
  }
}

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'proxy-v2',
    about: 'PROXY v2 parser: a header, "need more" or a ProxyHeaderError; accepted headers re-encode to the same bytes; a prefix never reads as another header',
    input: fc.tuple(input, cuts),
    check: ([bytes, at]) => {
      const r = parse(bytes);
      if (r === 'refused' || r === undefined) return;
      const head = bytes.subarray(0, r.length);
      // UNSPEC/LOCAL headers carry address bytes the parser does not read back: only PROXY with addresses round-trips.
      if (r.header.source) assert.deepEqual(encodeProxyV2(r.header), head, 'an accepted header did not encode back to its bytes');
      const first = split(head, at)[0] ?? head;
      if (first.length < head.length) {
        const p = parse(first);
        assert.ok(p === undefined || p === 'refused', 'a prefix of a header read as a whole header');
      }
    },
  }),
];
