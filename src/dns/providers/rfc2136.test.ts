import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { after, before, describe, it } from 'node:test';
import { startBind, freeDnsPort, type Bind } from '../../../test/support/bind.ts';
import { dnsQuery, txtString } from '../client.ts';
import { ManualClock } from '../../lib/clock.ts';
import { isTunnError } from '../../lib/errors.ts';
import { Rfc2136Provider } from './rfc2136.ts';
import { parseTsigKey, signMessage } from './tsig.ts';

// The RFC 2136 provider against a real BIND 9 (a throwaway named with a TSIG key allowed to
// write TXT records in tunn.example.test, and example.org where it may write nothing).

const ZONE = 'tunn.example.test';
const NAME = `_acme-challenge.${ZONE}`;

describe('RFC 2136 provider against BIND 9', () => {
  let bind: Bind;
  let provider: Rfc2136Provider;
  const server = () => ({ host: '127.0.0.1', port: bind.port });
  const txt = async (name: string) => ((await dnsQuery(server(), name, 'TXT', { tcp: true })).answers ?? []).filter((a) => a.type === 'TXT').map(txtString).sort();
  const make = (keyText: string, clock?: ManualClock) => new Rfc2136Provider({ zone: ZONE, server: server(), key: parseTsigKey(keyText, '--rfc2136-key-file test'), timeoutMs: 3000, wait: { timeoutMs: 3000, pollMs: 50 }, clock });

  before(async () => {
    bind = await startBind({ zones: [{ name: ZONE, dynamic: true }, { name: 'example.org' }], keyName: 'tunn-acme' });
    provider = make(readFileSync(bind.keyFile, 'utf8'));
  });
  after(async () => {
    await bind?.stop();
  });

  it('adds two values at one name, waits until named answers them, and deletes exactly one (class NONE)', async () => {
    await Promise.all([provider.present(NAME, 'apex-value'), provider.present(NAME, 'wildcard-value')]);
    await provider.waitVisible(NAME, 'apex-value');
    assert.deepEqual(await txt(NAME), ['apex-value', 'wildcard-value']);
    // The apex's cleanup must not take the wildcard's value with it.
    await provider.cleanup(NAME, 'apex-value');
    assert.deepEqual(await txt(NAME), ['wildcard-value']);
    await provider.cleanup(NAME, 'wildcard-value');
    assert.deepEqual(await txt(NAME), []);
  });

  it('finds the zone from the SOA for a name deeper in it (the customer CNAME target <id>._acme.<zone>)', async () => {
    const name = `abc123._acme.${ZONE}`;
    assert.equal(await provider.zoneOf(name), ZONE);
    await provider.present(name, 'v');
    await provider.waitVisible(name, 'v');
    await provider.cleanup(name, 'v');
    assert.deepEqual(await txt(name), []);
  });

  it('a wrong secret is refused with BADSIG and what to fix, and the secret is not in the message', async () => {
    const wrong = `tunn-acme:${Buffer.alloc(32, 9).toString('base64')}`;
    await assert.rejects(make(wrong).present(NAME, 'x'), (e) => isTunnError(e, 'FORBIDDEN') && /BADSIG.*the secret in --rfc2136-key-file is not the server's secret/.test(e.message) && !e.message.includes(Buffer.alloc(32, 9).toString('base64')));
    assert.deepEqual(await txt(NAME), []);
  });

  it('an unknown key name is refused with BADKEY', async () => {
    await assert.rejects(make(`someone-else:${bind.secret}`).present(NAME, 'x'), (e) => isTunnError(e, 'FORBIDDEN') && /does not know TSIG key "someone-else" \(BADKEY\)/.test(e.message));
  });

  it('a clock more than 300 s off is refused with BADTIME and what to fix', async () => {
    const clock = new ManualClock(Date.now() + 3600_000);
    await assert.rejects(make(readFileSync(bind.keyFile, 'utf8'), clock).present(NAME, 'x'), (e) => isTunnError(e, 'FORBIDDEN') && /BADTIME\): this machine's clock and the server's differ by more than 300 s; fix them \(NTP\)/.test(e.message));
  });

  it('a zone the key may not write is refused (REFUSED) with the grant to add', async () => {
    const p = make(readFileSync(bind.keyFile, 'utf8'));
    await assert.rejects(p.present('_acme-challenge.example.org', 'x'), (e) => isTunnError(e, 'FORBIDDEN') && /zone example\.org .*REFUSED.*update-policy \{ grant tunn-acme zonesub TXT; \}/.test(e.message));
  });

  it('a name no zone on the server holds, and a server that is not there, say so', async () => {
    await assert.rejects(provider.present('_acme-challenge.nowhere.test', 'x'), (e) => isTunnError(e, 'UNAVAILABLE') && /not authoritative for _acme-challenge\.nowhere\.test .*REFUSED/.test(e.message));
    const port = await freeDnsPort();
    const gone = new Rfc2136Provider({ zone: ZONE, server: { host: '127.0.0.1', port }, key: parseTsigKey(readFileSync(bind.keyFile, 'utf8'), 'k'), timeoutMs: 2000 });
    await assert.rejects(gone.present(NAME, 'x'), (e) => isTunnError(e, 'UNAVAILABLE') && new RegExp(`RFC 2136 server 127\\.0\\.0\\.1:${port}.*cannot reach the server: connection refused`).test(e.message));
  });

  it('waitVisible gives up with what it asked when the value never appears', async () => {
    await assert.rejects(make(readFileSync(bind.keyFile, 'utf8')).waitVisible(NAME, 'never-written'), (e) => isTunnError(e, 'UNAVAILABLE') && /TXT record _acme-challenge\.tunn\.example\.test was written but is not visible after 3 s \(last: 127\.0\.0\.1:\d+ answered NXDOMAIN without it\)/.test(e.message));
  });
});

// Security: the answer to a signed update is believed only when it is signed with the same key.
// A server on loopback plays someone on the path: it answers the SOA question honestly and
// the update with a forged NOERROR, unsigned or signed with another key.
describe('RFC 2136 provider: forged answers are not believed', () => {
  const key = parseTsigKey(`tunn-acme:${Buffer.alloc(32, 1).toString('base64')}`, 'k');
  const otherKey = parseTsigKey(`tunn-acme:${Buffer.alloc(32, 2).toString('base64')}`, 'k');
  let forge: 'unsigned' | 'other-key' = 'unsigned';
  let srv: Server;
  before(async () => {
    srv = createServer((sock) => {
      sock.once('data', (buf) => {
        const req = buf.subarray(2, 2 + buf.readUInt16BE(0));
        const id = req.readUInt16BE(0);
        let answer: Buffer;
        if (((req.readUInt16BE(2) >> 11) & 0xf) === 0) {
          const q = dnsPacket.decode(req);
          answer = dnsPacket.encode({ type: 'response', id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, authorities: [{ type: 'SOA', name: ZONE, data: { mname: `ns1.${ZONE}`, rname: `hostmaster.${ZONE}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 } }] });
        } else {
          const header = Buffer.alloc(12);
          header.writeUInt16BE(id, 0);
          header.writeUInt16BE(0x8000 | (5 << 11), 2); // QR, UPDATE, NOERROR
          answer = forge === 'unsigned' ? header : signMessage(otherKey, header, Math.floor(Date.now() / 1000)).signed;
        }
        const len = Buffer.alloc(2);
        len.writeUInt16BE(answer.length);
        sock.end(Buffer.concat([len, answer]));
      });
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
  });
  after(() => srv?.close());
  const provider = () => new Rfc2136Provider({ zone: ZONE, server: { host: '127.0.0.1', port: (srv.address() as { port: number }).port }, key, timeoutMs: 3000 });

  it('an unsigned NOERROR', async () => {
    forge = 'unsigned';
    await assert.rejects(provider().present(NAME, 'x'), (e) => isTunnError(e, 'PROTOCOL_ERROR') && /the answer \(NOERROR\) is not signed, so it cannot be believed/.test(e.message));
  });

  it('a NOERROR signed with another secret', async () => {
    forge = 'other-key';
    await assert.rejects(provider().present(NAME, 'x'), (e) => isTunnError(e, 'PROTOCOL_ERROR') && /the signature on the answer does not match the key, so it cannot be believed/.test(e.message));
  });
});
