import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeProxyV2, parseProxyV2, PP2_TYPE_AUTHORITY, PP2_TYPE_TUNN_ASSERTION, PP2_TYPE_TUNN_EMAIL, ProxyHeaderError, proxyTlvText, tunnProxyHeader } from './proxy-v2.ts';

const SIG = '0d0a0d0a000d0a515549540a';

describe('PROXY protocol v2 encoder (proxy-protocol.txt §2.2)', () => {
  it('pins a TCP over IPv4 header: signature, 0x21 PROXY, 0x11 TCP4, length 12, addresses, ports', () => {
    const b = encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: '192.168.0.1', port: 56324 }, destination: { address: '192.168.0.11', port: 443 }, tlvs: [] });
    assert.equal(b.toString('hex'), SIG + '21' + '11' + '000c' + 'c0a80001' + 'c0a8000b' + 'dc04' + '01bb');
  });

  it('pins a UDP over IPv6 header (0x22) with "::" expanded', () => {
    const b = encodeProxyV2({ command: 'proxy', transport: 'udp', source: { address: '::1', port: 1 }, destination: { address: '2001:db8::1', port: 443 }, tlvs: [] });
    assert.equal(b.toString('hex'), SIG + '21' + '22' + '0024' + '0'.repeat(31) + '1' + '20010db8' + '0'.repeat(23) + '1' + '0001' + '01bb');
  });

  it('pins a LOCAL header (0x20, UNSPEC, no addresses)', () => {
    assert.equal(encodeProxyV2({ command: 'local', transport: 'tcp', tlvs: [] }).toString('hex'), SIG + '20' + '00' + '0000');
  });

  it('pins the tunn TLVs after the addresses: 0x02 authority, 0xE0 email, 0xE1 assertion', () => {
    const b = tunnProxyHeader({ transport: 'tcp', source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 }, authority: 'db.x', email: 'a@b', assertion: 'j.w.t' });
    const tlvs = '02' + '0004' + Buffer.from('db.x').toString('hex') + 'e0' + '0003' + Buffer.from('a@b').toString('hex') + 'e1' + '0005' + Buffer.from('j.w.t').toString('hex');
    assert.equal(b.toString('hex'), SIG + '2111' + (12 + tlvs.length / 2).toString(16).padStart(4, '0') + '0a000001' + '0a000002' + '0001' + '0002' + tlvs);
  });

  it('writes an IPv4-mapped IPv6 address (a dual-stack socket\'s view of an IPv4 client) as IPv4', () => {
    const b = encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: '::ffff:127.0.0.1', port: 5 }, destination: { address: '127.0.0.1', port: 6 }, tlvs: [] });
    assert.equal(b[13], 0x11);
  });

  it('refuses addresses of two families and names them', () => {
    assert.throws(() => encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: '10.0.0.1', port: 1 }, destination: { address: '::1', port: 2 }, tlvs: [] }), /one family: 10\.0\.0\.1, ::1/);
  });
});

describe('PROXY protocol v2 strict parser', () => {
  it('reads back what the encoder writes, with the data that follows left alone', () => {
    const header = tunnProxyHeader({ transport: 'tcp', source: { address: '2001:db8:0:0:1::5', port: 40000 }, destination: { address: 'fe80::1', port: 22 }, email: 'ann@example.com', assertion: 'eyJ.x.y' });
    const r = parseProxyV2(Buffer.concat([header, Buffer.from('SSH-2.0-')]));
    assert.ok(r);
    assert.equal(r.length, header.length);
    assert.deepEqual(r.header.source, { address: '2001:db8::1:0:0:5', port: 40000 });
    assert.deepEqual(r.header.destination, { address: 'fe80::1', port: 22 });
    assert.equal(proxyTlvText(r.header, PP2_TYPE_TUNN_EMAIL), 'ann@example.com');
    assert.equal(proxyTlvText(r.header, PP2_TYPE_TUNN_ASSERTION), 'eyJ.x.y');
    assert.equal(proxyTlvText(r.header, PP2_TYPE_AUTHORITY), undefined);
  });

  it('asks for more bytes while a header is incomplete, at every cut', () => {
    const header = tunnProxyHeader({ transport: 'udp', source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 }, email: 'e@x' });
    for (let cut = 0; cut < header.length; cut++) assert.equal(parseProxyV2(header.subarray(0, cut)), undefined, `cut ${cut}`);
    assert.equal(parseProxyV2(header)?.header.transport, 'udp');
  });

  it('refuses what the spec does not allow, saying what was wrong', () => {
    const good = encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 }, tlvs: [] });
    const patched = (i: number, v: number): Buffer => {
      const b = Buffer.from(good);
      b[i] = v;
      return b;
    };
    assert.throws(() => parseProxyV2(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), /signature/);
    assert.throws(() => parseProxyV2(patched(12, 0x11)), /version 1, not 2/);
    assert.throws(() => parseProxyV2(patched(12, 0x22)), /unknown command 0x2/);
    assert.throws(() => parseProxyV2(patched(13, 0x41)), /unknown address family/);
    assert.throws(() => parseProxyV2(patched(15, 8)), /shorter than the 12 bytes/);
    // Length 14: 12 address bytes + 2 bytes that cannot be a TLV head.
    assert.throws(() => parseProxyV2(Buffer.concat([patched(15, 14), Buffer.from([0xe0, 0x00])])), /TLV head at byte 12 runs past/);
    // A TLV claiming 5 bytes where 1 is left.
    assert.throws(() => parseProxyV2(Buffer.concat([patched(15, 16), Buffer.from([0xe0, 0x00, 0x05, 0x61])])), (e: Error) => e instanceof ProxyHeaderError && /TLV 0xe0 \(5 bytes\) runs past/.test(e.message));
  });

  it('round-trips any addresses, ports and TLVs (property)', () => {
    const addr = fc.oneof(fc.ipV4(), fc.ipV6().filter((a) => !/^::ffff:\d/i.test(a)));
    fc.assert(
      fc.property(fc.boolean(), addr, fc.nat(65535), fc.nat(65535), fc.array(fc.record({ type: fc.nat(255), value: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 5 }), (v6, a, sp, dp, tlvs) => {
        const src = v6 && a.includes(':') ? a : a.includes(':') ? '10.1.2.3' : a;
        const dst = src.includes(':') ? '::2' : '10.9.9.9';
        const t = tlvs.map((x) => ({ type: x.type, value: Buffer.from(x.value) }));
        const r = parseProxyV2(encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: src, port: sp }, destination: { address: dst, port: dp }, tlvs: t }));
        assert.ok(r);
        assert.equal(r.header.source!.port, sp);
        assert.deepEqual(r.header.tlvs, t);
        // The same bytes again: the address read back is the same address.
        assert.deepEqual(encodeProxyV2(r.header), encodeProxyV2({ command: 'proxy', transport: 'tcp', source: { address: src, port: sp }, destination: { address: dst, port: dp }, tlvs: t }));
      }),
    );
  });
});
