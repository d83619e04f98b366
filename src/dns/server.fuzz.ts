import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { fuzzTarget, mutated, randomBytes, type FuzzTarget } from '../lib/fuzz.ts';
import { RelayZone } from './relay-zone.ts';
import { answerPacket, authoritativeHandler, type DnsServerOptions } from './server.ts';
import { Zone } from './zone.ts';

// Fuzz target of the DNS server's packet handling (server.ts answerPacket over zone.ts), which
// answers any datagram sent to the relay's port 53. Properties, for random bytes, grammar-built
// queries (names in and out of the zones, every type, odd classes and flags, raw labels with any
// byte) and mutations of them:
// - it never rejects (a rejection is an unhandled one in the UDP handler: the relay would exit);
// - it answers with a well-formed DNS response (decodable, same id, QR set, ≤ 512 bytes over UDP)
//   or drops the message;
// - a well-formed one-question query is answered, with its question, REFUSED outside the zones.

const relay = new RelayZone({ domain: 'relay.test', publicIps: ['127.0.0.1', '::1'] });
void relay.present(relay.acmeName('Acct1'), 'token-value');
const customer = new Zone('example.test');
customer.add({ name: '*.tunn.example.test', type: 'CNAME', value: 'relay.test' });
customer.add({ name: '_acme-challenge.tunn.example.test', type: 'CNAME', value: 'acct1._acme.relay.test' });
customer.add({ name: 'a.loop.example.test', type: 'CNAME', value: 'b.loop.example.test' });
customer.add({ name: 'b.loop.example.test', type: 'CNAME', value: 'a.loop.example.test' });
customer.add({ name: 'big.example.test', type: 'TXT', value: 'x'.repeat(250) });
customer.add({ name: 'big.example.test', type: 'TXT', value: 'y'.repeat(250) });
const opts: DnsServerOptions = { handler: authoritativeHandler([relay, customer]), authoritative: true };

const TYPES = ['A', 'AAAA', 'TXT', 'CNAME', 'NS', 'SOA', 'MX', 'ANY', 'CAA', 'PTR', 'SRV', 'OPT'] as const;
const label = fc.oneof(
  fc.constantFrom('www', 'Grafana', '_acme', 'acct1', '_acme-challenge', 'tunn', '*', 'a', 'b', 'loop', 'big', 'xn--bcher-kva'),
  fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 1, maxLength: 63 }),
);
const suffix = fc.constantFrom('relay.test', 'RELAY.TEST', 'example.test', 'tunn.example.test', 'loop.example.test', 'example.org', '', 'test');
const name = fc.tuple(fc.array(label, { maxLength: 4 }), suffix).map(([ls, s]) => [...ls, s].filter(Boolean).join('.') || '.');
const question = fc.record({ name, type: fc.constantFrom(...TYPES), class: fc.constantFrom('IN', 'IN', 'IN', 'CH', 'ANY') }) as fc.Arbitrary<dnsPacket.Question>;

interface Query {
  id: number;
  flags: number;
  questions: dnsPacket.Question[];
  edns: boolean;
}
const query: fc.Arbitrary<Query> = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  flags: fc.oneof(fc.constant(dnsPacket.RECURSION_DESIRED), fc.integer({ min: 0, max: 0xffff }).map((f) => f & 0x7fff)),
  questions: fc.oneof({ weight: 8, arbitrary: fc.array(question, { minLength: 1, maxLength: 1 }) }, fc.array(question, { maxLength: 3 })),
  edns: fc.boolean(),
});
const encodeQuery = (q: Query): Buffer =>
  dnsPacket.encode({ type: 'query', id: q.id, flags: q.flags, questions: q.questions, additionals: q.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0, flag_do: false, extendedRcode: 0, ednsVersion: 0, options: [] }] : [] });

/** A query whose question name is raw labels of any bytes (non-ASCII, dots, zero bytes, long). */
const rawLabelQuery = fc
  .tuple(fc.integer({ min: 0, max: 0xffff }), fc.array(fc.uint8Array({ minLength: 1, maxLength: 63 }), { maxLength: 4 }), fc.constantFrom(['relay', 'test'], ['example', 'test'], []), fc.integer({ min: 0, max: 0xffff }))
  .map(([id, raw, tail, type]) => {
    const labels = [...raw.map((b) => Buffer.from(b)), ...tail.map((t) => Buffer.from(t))];
    const qname = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    header.writeUInt16BE(dnsPacket.RECURSION_DESIRED, 2);
    header.writeUInt16BE(1, 4);
    const tc = Buffer.alloc(4);
    tc.writeUInt16BE(type, 0);
    tc.writeUInt16BE(1, 2);
    return Buffer.concat([header, qname, tc]);
  });

type Input = { kind: 'query'; q: Query; tcp: boolean } | { kind: 'bytes'; msg: Buffer; tcp: boolean };
const input: fc.Arbitrary<Input> = fc.oneof(
  fc.record({ kind: fc.constant('query' as const), q: query, tcp: fc.boolean() }),
  fc.record({ kind: fc.constant('bytes' as const), msg: fc.oneof(rawLabelQuery, mutated(query.map(encodeQuery)), mutated(rawLabelQuery), randomBytes(600)), tcp: fc.boolean() }),
);

async function check(inp: Input): Promise<void> {
  const msg = inp.kind === 'query' ? encodeQuery(inp.q) : inp.msg;
  const out = await answerPacket(msg, inp.tcp, opts);
  if (out === undefined) {
    assert.notEqual(inp.kind, 'query', 'a well-formed query was dropped');
    return;
  }
  assert.ok(out.length <= (inp.tcp ? 0xffff : 512), `a ${out.length}-byte response over ${inp.tcp ? 'TCP' : 'UDP'}`);
  let res: dnsPacket.DecodedPacket & { rcode?: string };
  try {
    res = dnsPacket.decode(out);
  } catch (err) {
    throw new Error(`the response is not a DNS message (${(err as Error).message}): ${out.toString('hex')}`);
  }
  assert.equal(res.type, 'response');
  assert.equal(res.id, msg.readUInt16BE(0), 'the response does not carry the query id');
  if (res.questions?.length === 1) {
    // An echoed question is the question asked, byte for byte (labels as on the wire).
    const labels = res.questions[0]!.name === '.' ? [] : res.questions[0]!.name.split('.').map((l) => Buffer.from(l));
    const wire = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
    assert.ok(msg.subarray(12, 12 + wire.length).equals(wire), `the echoed question ${JSON.stringify(res.questions[0]!.name)} is not the one asked`);
  }
  if (inp.kind === 'query' && inp.q.questions.length === 1) {
    const q = inp.q.questions[0]!;
    assert.equal(res.questions?.length, 1, 'the question is not echoed');
    assert.equal(res.questions![0]!.name.toLowerCase(), q.name.toLowerCase().replace(/^\.$/, '.'));
    const inZone = /(^|\.)(relay|example)\.test$/i.test(q.name);
    if (!inZone) assert.equal(res.rcode, 'REFUSED', `${q.name} is outside the zones`);
    else assert.ok(['NOERROR', 'NXDOMAIN', 'SERVFAIL'].includes(res.rcode!), `rcode ${res.rcode} for ${q.name}`);
  }
}

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'dns-packet',
    about: 'DNS packet handling: never rejects; a well-formed response with the query id, or a drop',
    input,
    check,
  }),
];
