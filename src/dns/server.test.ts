import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, it } from 'node:test';
import { startForwarder } from '../../test/support/dns-forwarder.ts';
import { dnsQuery, rdata, txtString } from './client.ts';
import { RelayZone } from './relay-zone.ts';
import { DnsServer, answerPacket, authoritativeHandler } from './server.ts';
import { Zone } from './zone.ts';

describe('dns server', () => {
  const relay = new RelayZone({ domain: 'relay.test', publicIps: ['127.0.0.1', '::1'] });
  const customer = new Zone('example.test');
  customer.add({ name: '*.tunn.example.test', type: 'CNAME', value: 'relay.test' });
  customer.add({ name: '_acme-challenge.tunn.example.test', type: 'CNAME', value: 'abc123._acme.relay.test' });
  customer.add({ name: 'alias.example.test', type: 'CNAME', value: 'www.example.test' });
  customer.add({ name: 'www.example.test', type: 'A', value: '192.0.2.7' });
  let relayDns: DnsServer;
  let customerDns: DnsServer;
  let forwarder: DnsServer;
  const at = (s: DnsServer) => ({ host: '127.0.0.1', port: s.port });

  before(async () => {
    relayDns = new DnsServer({ handler: authoritativeHandler([relay]), authoritative: true });
    customerDns = new DnsServer({ handler: authoritativeHandler([customer]), authoritative: true });
    await relayDns.listen(0);
    await customerDns.listen(0);
    forwarder = await startForwarder([
      { zone: 'relay.test', server: at(relayDns) },
      { zone: 'example.test', server: at(customerDns) },
    ]);
  });
  after(async () => {
    await Promise.all([relayDns.close(), customerDns.close(), forwarder.close()]);
  });

  for (const tcp of [false, true]) {
    const via = tcp ? 'TCP' : 'UDP';
    it(`answers A/AAAA for the apex and any name under the zone (${via})`, async () => {
      const apex = await dnsQuery(at(relayDns), 'relay.test', 'A', { tcp });
      assert.equal(apex.rcode, 'NOERROR');
      assert.equal(apex.flag_aa, true);
      assert.deepEqual(apex.answers?.map((a) => rdata(a)), ['127.0.0.1']);
      const sub = await dnsQuery(at(relayDns), 'Grafana.Relay.Test', 'AAAA', { tcp });
      assert.deepEqual(sub.answers?.map((a) => [a.name, rdata(a)]), [['grafana.relay.test', '::1']]);
    });

    it(`refuses names outside the zone and says NXDOMAIN inside it (${via})`, async () => {
      const out = await dnsQuery(at(relayDns), 'example.org', 'A', { tcp });
      assert.equal(out.rcode, 'REFUSED');
      const none = await dnsQuery(at(customerDns), 'nothing.example.test', 'A', { tcp });
      assert.equal(none.rcode, 'NXDOMAIN');
      assert.equal(none.authorities?.[0]?.type, 'SOA');
    });
  }

  it('serves SOA and NS at the apex', async () => {
    const soa = await dnsQuery(at(relayDns), 'relay.test', 'SOA');
    assert.equal(soa.answers?.[0]?.type, 'SOA');
    const ns = await dnsQuery(at(relayDns), 'relay.test', 'NS', { tcp: true });
    assert.deepEqual(ns.answers?.map((a) => rdata(a)), ['ns1.relay.test']);
  });

  it('sets and removes _acme TXT values at run time, two values on one name', async () => {
    const name = relay.acmeName('abc123');
    await relay.present(name, 'one');
    await relay.present(name, 'two');
    const both = await dnsQuery(at(relayDns), name, 'TXT');
    assert.deepEqual(both.answers?.map((a) => txtString(a)).sort(), ['one', 'two']);
    await relay.cleanup(name, 'one');
    await relay.cleanup(name, 'two');
    const gone = await dnsQuery(at(relayDns), name, 'TXT');
    assert.equal(gone.answers?.length, 0);
  });

  it('answers a CNAMEd name with the chased record in one answer', async () => {
    const res = await dnsQuery(at(customerDns), 'alias.example.test', 'A');
    assert.deepEqual(res.answers?.map((a) => [a.type, rdata(a)]), [['CNAME', 'www.example.test'], ['A', '192.0.2.7']]);
  });

  it('resolves the customer delegation across zones through the forwarder (as Pebble would)', async () => {
    const name = relay.acmeName('abc123');
    await relay.present(name, 'token-value');
    try {
      const res = await dnsQuery(at(forwarder), '_acme-challenge.tunn.example.test', 'TXT');
      assert.deepEqual(res.answers?.map((a) => a.type), ['CNAME', 'TXT']);
      // Node's own resolver (what the relay's verifier uses) sees the same records.
      const r = new Resolver();
      r.setServers([`127.0.0.1:${forwarder.port}`]);
      assert.deepEqual(await r.resolveTxt('_acme-challenge.tunn.example.test'), [['token-value']]);
      assert.deepEqual(await r.resolveCname('random-label.tunn.example.test'), ['relay.test']);
      assert.deepEqual(await r.resolve4('grafana.tunn.example.test'), ['127.0.0.1']);
    } finally {
      await relay.cleanup(name, 'token-value');
    }
  });
});

describe('answerPacket: questions that cannot be echoed as asked (found by npm run fuzz)', () => {
  const opts = { handler: authoritativeHandler([new RelayZone({ domain: 'relay.test', publicIps: ['127.0.0.1'] })]), authoritative: true };
  /** A one-question query whose name is these raw labels, type A. */
  const rawQuery = (labels: Buffer[]): Buffer => {
    const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    return Buffer.concat([header, ...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0, 0, 1, 0, 1])]);
  };
  // Guards: every response is a well-formed DNS message. dns-packet decodes a label as UTF-8 and
  // joins labels with '.', so a label of invalid UTF-8 (63 bytes → up to 189 once re-encoded, a
  // length byte with the pointer bits set) or holding a dot was echoed as a malformed or a
  // different name, and its encoder drops a '.' after a newline; before the fix the first answer
  // below could not be decoded by any client and the others named another name.
  const cases: [string, Buffer[]][] = [
    ['invalid UTF-8 in a label', [Buffer.alloc(40, 0x80), Buffer.from('relay'), Buffer.from('test')]],
    ['a dot inside a label', [Buffer.from('x.relay'), Buffer.from('test')]],
    ['a newline before a label (dns-packet drops the dot after it)', [Buffer.from('\n'), Buffer.from('relay'), Buffer.from('test')]],
  ];
  for (const [what, labels] of cases) {
    it(`answers FORMERR without a question for ${what}`, async () => {
      const out = await answerPacket(rawQuery(labels), false, opts);
      assert.ok(out);
      const res = dnsPacket.decode(out) as dnsPacket.DecodedPacket & { rcode?: string };
      assert.equal(res.id, 0x1234);
      assert.equal(res.rcode, 'FORMERR');
      assert.deepEqual(res.questions, []);
    });
  }
  it('still answers a plainly written name, in any case', async () => {
    const out = await answerPacket(rawQuery([Buffer.from('Www'), Buffer.from('relay'), Buffer.from('TEST')]), false, opts);
    const res = dnsPacket.decode(out!) as dnsPacket.DecodedPacket & { rcode?: string };
    assert.equal(res.rcode, 'NOERROR');
    assert.equal(res.questions?.[0]?.name, 'Www.relay.TEST');
    assert.deepEqual(res.answers?.map((a) => rdata(a)), ['127.0.0.1']);
  });
});

describe('startRelayDns', () => {
  it('listens on a free port and reports it', async () => {
    const { startRelayDns } = await import('./relay-dns.ts');
    const dns = await startRelayDns({ domain: 'relay.test', publicIps: ['127.0.0.1'], port: 0, host: '127.0.0.1' });
    try {
      assert.ok(dns.port > 0);
      const res = await dnsQuery({ host: '127.0.0.1', port: dns.port }, 'x.relay.test', 'A', { tcp: true });
      assert.deepEqual(res.answers?.map((a) => rdata(a)), ['127.0.0.1']);
    } finally {
      await dns.close();
    }
  });
});
