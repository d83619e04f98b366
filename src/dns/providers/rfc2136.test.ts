import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startBind, freeDnsPort, type Bind } from '../../../test/support/bind.ts';
import { dnsQuery, txtString } from '../client.ts';
import { isTunnError } from '../../lib/errors.ts';
import { Rfc2136Provider } from './rfc2136.ts';
import { parseTsigKey } from './tsig.ts';

// The RFC 2136 provider against a real BIND 9 (a throwaway named with a TSIG key allowed to
// write TXT records in tunn.example.test, and example.org where it may write nothing).

const ZONE = 'tunn.example.test';
const NAME = `_acme-challenge.${ZONE}`;

describe('RFC 2136 provider against BIND 9', () => {
  let bind: Bind;
  let provider: Rfc2136Provider;
  const server = () => ({ host: '127.0.0.1', port: bind.port });
  const txt = async (name: string) => ((await dnsQuery(server(), name, 'TXT', { tcp: true })).answers ?? []).filter((a) => a.type === 'TXT').map(txtString).sort();
  const make = (keyText: string) => new Rfc2136Provider({ zone: ZONE, server: server(), key: parseTsigKey(keyText, '--rfc2136-key-file test'), timeoutMs: 3000, wait: { timeoutMs: 3000, pollMs: 50 } });

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
