import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsWorld, type DnsWorld } from '../../test/support/dns-world.ts';
import { requiredRecords, verifyDomainDns, verificationProblems } from './verify.ts';
import { Zone } from './zone.ts';

const RELAY = 'relay.test';
const ID = 'a7x9k2';

describe('domain DNS verification', () => {
  let world: DnsWorld;
  const zone = new Zone('example.test');
  const good = (d: string) => {
    zone.add({ name: `*.${d}`, type: 'CNAME', value: RELAY });
    zone.add({ name: `_acme-challenge.${d}`, type: 'CNAME', value: `${ID}._acme.${RELAY}` });
  };
  good('good.example.test');
  zone.add({ name: '_tunn-verify.good.example.test', type: 'TXT', value: 'tok-123' });
  zone.add({ name: '_acme-challenge.nowild.example.test', type: 'CNAME', value: `${ID}._acme.${RELAY}` });
  zone.add({ name: '*.elsewhere.example.test', type: 'CNAME', value: 'other-tunnel.example.org' });
  zone.add({ name: '*.arecord.example.test', type: 'A', value: '192.0.2.1' });
  zone.add({ name: '_acme-challenge.arecord.example.test', type: 'CNAME', value: `zzz999._acme.${RELAY}` });
  good('badtoken.example.test');
  zone.add({ name: '_tunn-verify.badtoken.example.test', type: 'TXT', value: 'something-else' });
  const check = (domain: string, strict = false, token = 'tok-123') =>
    verifyDomainDns({ domain, acmeId: ID, relayDomain: RELAY, strict, verificationToken: token, resolver: world.resolver });

  before(async () => {
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [zone] });
  });
  after(() => world.close());

  it('lists the records to create, as the seed prints them', () => {
    assert.deepEqual(
      requiredRecords({ domain: 'tunn.mycompany.com', acmeId: ID, relayDomain: 'tunn.to' }).map((r) => `${r.name} ${r.type} ${r.value}`),
      ['*.tunn.mycompany.com CNAME tunn.to', `_acme-challenge.tunn.mycompany.com CNAME ${ID}._acme.tunn.to`],
    );
  });

  it('accepts a domain with both CNAMEs (and the TXT token in strict mode)', async () => {
    assert.equal((await check('good.example.test')).ok, true);
    const strict = await check('good.example.test', true);
    assert.equal(strict.ok, true);
    assert.equal(strict.records.length, 3);
  });

  it('names a missing wildcard record', async () => {
    const v = await check('nowild.example.test');
    assert.equal(v.ok, false);
    assert.deepEqual(verificationProblems(v), ['*.nowild.example.test has no record yet: create CNAME relay.test (DNS changes can take a few minutes to show)']);
  });

  it('names a CNAME that points elsewhere (the wildcard also answers for a missing _acme-challenge)', async () => {
    const v = await check('elsewhere.example.test');
    assert.deepEqual(verificationProblems(v), [
      '*.elsewhere.example.test is a CNAME to other-tunnel.example.org instead of relay.test',
      `_acme-challenge.elsewhere.example.test is a CNAME to other-tunnel.example.org instead of ${ID}._acme.${RELAY}`,
    ]);
  });

  it('names an A record found instead of the CNAME, and an _acme CNAME for another account', async () => {
    const v = await check('arecord.example.test');
    assert.deepEqual(verificationProblems(v), [
      '*.arecord.example.test has A 192.0.2.1 instead of CNAME relay.test',
      `_acme-challenge.arecord.example.test is a CNAME to zzz999._acme.${RELAY} instead of ${ID}._acme.${RELAY}`,
    ]);
  });

  it('in strict mode, names a missing or different TXT token', async () => {
    assert.deepEqual(verificationProblems(await check('nowild.example.test', true)).at(-1), '_tunn-verify.nowild.example.test has no TXT record yet: create TXT "tok-123"');
    assert.deepEqual(verificationProblems(await check('badtoken.example.test', true)), ['_tunn-verify.badtoken.example.test has TXT "something-else" but not the verification token "tok-123"']);
  });

  it('reports a resolver that does not answer', async () => {
    const v = await verifyDomainDns({ domain: 'good.example.test', acmeId: ID, relayDomain: RELAY, resolver: '127.0.0.1:9', timeoutMs: 200 });
    assert.equal(v.ok, false);
    assert.match(verificationProblems(v)[0]!, /could not look up \*\.good\.example\.test: (ECONNREFUSED|ETIMEOUT)/);
  });
});
