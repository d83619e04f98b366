import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTunnError } from '../../lib/errors.ts';
import { parseTsigKey, requestMac, signMessage, verifyResponse } from './tsig.ts';
import { encodeTxtUpdate, parseAnswer } from './wire.ts';

// Bytes pinned from a real exchange: BIND 9.18's `nsupdate -y hmac-sha256:tunn-test:…` adding
// `_acme-challenge.tunn.example.test 60 TXT "abc-DEF_123"`, and `named`'s signed NOERROR answer
// (captured through a UDP proxy in front of a throwaway named). nsupdate compresses names and
// tunn does not, so the MAC (over the bytes as sent) is what is compared, not the messages.

const SECRET = 'Xv+4PUfnePcfEW1/nyQi4sbeBzRppkXLPq/6MWMRWug=';
const KEY_FILE = `key "tunn-test" {\n\talgorithm hmac-sha256;\n\tsecret "${SECRET}";\n};\n`;
const REQUEST =
  '3788280000010000000100010474756e6e076578616d706c65047465737400000600010f5f61636d652d6368616c6c656e6765c00c001000010000003c000c0b6162632d4445465f313233' +
  '0974756e6e2d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b0f0836012c0020f6996c0f318102bd985088cf089cd0e92c7034c2b7a0761711fdceb41562b1d6378800000000';
const RESPONSE =
  '3788a80000010000000000010474756e6e076578616d706c65047465737400000600010974756e6e2d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b0f0836012c00201d9354d69843c5500feb0658a0175d78f869cf0b2f892dab9d158da0239c2910378800000000';
const NSUPDATE_TIME = 0x6b0f0836;

describe('TSIG HMAC-SHA256 (RFC 8945)', () => {
  const key = parseTsigKey(KEY_FILE, 'test');

  it("computes nsupdate's request MAC over the same message and time (canonical TSIG variables, §4.3.3)", () => {
    const sent = parseAnswer(Buffer.from(REQUEST, 'hex'));
    assert.equal(sent.tsig?.keyName, 'tunn-test');
    assert.equal(sent.tsig?.timeSigned, NSUPDATE_TIME);
    assert.deepEqual(requestMac(key, sent.tsig!.unsigned, NSUPDATE_TIME), sent.tsig!.mac);
  });

  it("verifies named's signed answer to that request, and refuses it with another secret or a tampered byte", () => {
    const requestMacValue = parseAnswer(Buffer.from(REQUEST, 'hex')).tsig!.mac;
    const answer = parseAnswer(Buffer.from(RESPONSE, 'hex'));
    assert.equal(answer.rcode, 0);
    assert.equal(answer.opcode, 5);
    assert.deepEqual(verifyResponse(key, answer.tsig!, requestMacValue, NSUPDATE_TIME + 10), { ok: true });
    // Security: an answer not signed with our key (forged, or from another server) is not believed.
    const other = parseTsigKey(`tunn-test:${Buffer.alloc(32, 7).toString('base64')}`, 'test');
    assert.match(String((verifyResponse(other, answer.tsig!, requestMacValue, NSUPDATE_TIME) as { why: string }).why), /does not match the key/);
    const tampered = Buffer.from(RESPONSE, 'hex');
    tampered[3] = 0x05; // NOERROR → REFUSED
    assert.equal(verifyResponse(key, parseAnswer(tampered).tsig!, requestMacValue, NSUPDATE_TIME).ok, false);
    // Security: an old signed answer replayed later is refused (time outside the fudge).
    assert.match(String((verifyResponse(key, answer.tsig!, requestMacValue, NSUPDATE_TIME + 301) as { why: string }).why), /more than 300 s/);
  });

  it('signs its own update so that the TSIG RR reads back with the MAC over the unsigned message', () => {
    const msg = encodeTxtUpdate(0x1234, 'tunn.example.test', [{ op: 'add', name: '_acme-challenge.tunn.example.test', value: 'v1' }, { op: 'delete', name: '_acme-challenge.tunn.example.test', value: 'v0' }]);
    const { signed, mac } = signMessage(key, msg, 1_800_000_000);
    const back = parseAnswer(signed);
    assert.deepEqual(back.tsig?.unsigned, msg);
    assert.deepEqual(back.tsig?.mac, mac);
    assert.equal(back.tsig?.originalId, 0x1234);
    assert.equal(signed.readUInt16BE(10), 1);
  });

  it('writes the delete of one TXT value with class NONE and TTL 0 (RFC 2136 §2.5.4), never "delete the RRset"', () => {
    const msg = encodeTxtUpdate(1, 'z.test', [{ op: 'delete', name: 'a.z.test', value: 'v' }]);
    // header(12) zone(z.test SOA IN = 8+4) then a.z.test(10) TXT(0010) NONE(00fe) TTL 0 RDLEN 2 "\x01v"
    assert.equal(msg.subarray(24).toString('hex'), '0161017a04746573740000100' + '0fe' + '00000000' + '0002' + '0176');
    assert.equal(msg.readUInt16BE(2) >> 11, 5);
  });

  it('reads a key in BIND format, as name:secret and as hmac-sha256:name:secret', () => {
    assert.equal(key.name, 'tunn-test');
    assert.equal(key.secret.toString('base64'), SECRET);
    assert.deepEqual(parseTsigKey(`tunn-test:${SECRET}`, 'x'), key);
    assert.deepEqual(parseTsigKey(`hmac-sha256:Tunn-Test.:${SECRET}\n`, 'x'), key);
  });

  it('says what is wrong with a bad key file, and never quotes the secret', () => {
    const cases: [string, RegExp][] = [
      [`key "k" { algorithm hmac-md5; secret "${SECRET}"; };`, /algorithm hmac-md5 is not supported; make an hmac-sha256 key/],
      [`key "k" { secret "${SECRET}"; };`, /no "algorithm hmac-sha256;" line/],
      ['key "k" { algorithm hmac-sha256; };', /no secret/],
      [`key "k" { algorithm hmac-sha256; secret "${SECRET}";`, /not a complete key block/],
      [`k:${SECRET.slice(1)}`, /the secret of key k is not base64/],
      ['k:AAAA', /is 3 bytes; use at least 16/],
      [SECRET, /not a TSIG key/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseTsigKey(text, '--rfc2136-key-file /etc/tunn/tsig.key'), (e) => isTunnError(e, 'CONFIG_INVALID') && re.test(e.message) && e.message.startsWith('--rfc2136-key-file /etc/tunn/tsig.key: ') && !e.message.includes(SECRET.slice(4, 20)), text);
    }
  });
});
