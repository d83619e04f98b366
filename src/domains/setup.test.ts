import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createDomain, markDomainVerified } from './records.ts';
import { dnsQuery, rdata } from '../dns/client.ts';
import { SharedChallenges } from '../acme/shared-challenges.ts';
import { ManualClock, systemClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { silentLogger } from '../lib/logger.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { createCustomDomains, parseAcmeChallenges, parsePublicIps, type CustomDomains, type CustomDomainsConfig } from './setup.ts';

describe('relay custom-domain wiring (dev CA issuer, relay DNS on a free port)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-cd-'));
  let store: Store;
  let cd: CustomDomains;
  const base: CustomDomainsConfig = { domain: 'tunn.localhost', dataDir: dir, dev: true, publicIps: [], strictDomainVerify: false };
  const deps = () => ({ store, box: new SecretBox(randomBytes(32)), logger: silentLogger(), clock: new ManualClock(Date.now()) });

  before(async () => {
    store = await openStore(':memory:');
    cd = await createCustomDomains({ ...base, dnsPort: 0, dnsListen: '127.0.0.1' }, deps());
  });
  after(async () => {
    await cd?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers DNS for the relay zone on the port it reports', async () => {
    assert.ok(cd.dnsPort! > 0);
    const r = await dnsQuery({ host: '127.0.0.1', port: cd.dnsPort! }, 'grafana.tunn.localhost', 'A');
    assert.deepEqual(r.answers?.map((a) => rdata(a)), ['127.0.0.1']);
    assert.ok(cd.caPath?.endsWith('dev-ca.pem'));
  });

  it('serves the relay names, issues for verified custom domains, refuses everything else', async () => {
    assert.ok(await cd.certs.contextFor('tunn.localhost'));
    assert.ok(await cd.certs.contextFor(undefined));
    assert.equal(await cd.certs.contextFor('nobody.example.test'), undefined);
    const a = await ensureAccount(store, 'owner@example.test');
    await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'tunn.example.test', relayDomain: 'tunn.localhost' });
    assert.equal(await cd.certs.contextFor('grafana.tunn.example.test'), undefined, 'unverified: refused');
    await markDomainVerified(store, 'tunn.example.test');
    assert.ok(await cd.certs.contextFor('grafana.tunn.example.test'));
    assert.equal((await cd.manager.list()).find((c) => c.name === '*.tunn.example.test')?.issuer, 'self-signed');
    assert.equal(cd.plainHook('/.well-known/acme-challenge/unknown', 'x'), undefined);
    assert.equal(await cd.resolveDomain({ id: a.id, email: a.email, acme_id: a.acme_id, created_at: '' }, undefined), 'tunn.example.test');
  });

  // Security property: the movable certificate clock (TUNN_TEST_CLOCK_FILE) never reaches an
  // authentication decision: the domains API, whose clock bounds the freshness of signed cert
  // events (a replayed old event must stay refused), keeps the system clock.
  it('gives the domains API the system clock, not the certificate clock', async () => {
    const moved = { ...deps(), clock: new ManualClock(Date.now() + 61 * 86_400_000) };
    const other = await createCustomDomains({ ...base, dataDir: mkdtempSync(join(dir, 'moved-')) }, moved);
    try {
      assert.ok(Math.abs(other.api.clock.now() - Date.now()) < 60_000, 'the API clock is the real time');
    } finally {
      await other.close();
    }
  });

  // Security property: a relay whose certificate clock is moved (TUNN_TEST_CLOCK_FILE) still
  // reads the cluster's shared ACME challenges on the real time: another relay's live row is
  // answered, not taken as expired (nor swept as such by this relay's next present).
  it('reads the shared ACME challenges on the system clock, not the certificate clock', async () => {
    const moved = { ...deps(), clock: new ManualClock(Date.now() + 61 * 86_400_000) };
    const cfg: CustomDomainsConfig = { ...base, dev: false, dataDir: mkdtempSync(join(dir, 'shared-')), acmeDirectory: 'https://127.0.0.1:9/directory', acmeEmail: 'ops@example.test', relayCerts: 'per-host', acmeChallenges: ['http-01'], sharedChallenges: true };
    const other = await createCustomDomains(cfg, moved);
    try {
      const token = 'tok_live-on-another-relay';
      await new SharedChallenges({ store, clock: systemClock, logger: silentLogger() }).present({ type: 'http-01', name: 'web.tunn.localhost', token, keyAuthorization: `${token}.tp` });
      const r = await other.plainHook(`/.well-known/acme-challenge/${token}`, 'web.tunn.localhost');
      assert.equal(r?.body, `${token}.tp`, "another relay's live challenge is answered");
    } finally {
      await other.close();
    }
  });

  it('says what is wrong with the certificate configuration', async () => {
    const prod = { ...base, dev: false };
    await assert.rejects(createCustomDomains(prod, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /--acme-directory letsencrypt/.test(e.message));
    await assert.rejects(createCustomDomains({ ...prod, tlsCert: 'a.pem' }, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /go together/.test(e.message));
    await assert.rejects(createCustomDomains({ ...prod, tlsCert: 'a.pem', tlsKey: 'b.pem', acmeDirectory: 'letsencrypt' }, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /exclude each other/.test(e.message));
    await assert.rejects(createCustomDomains({ ...prod, acmeDirectory: 'letsencrypt', dnsPort: 0 }, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /--public-ip is required/.test(e.message));
    assert.deepEqual(parsePublicIps(['192.0.2.1,2001:db8::1', '192.0.2.1']), ['192.0.2.1', '2001:db8::1']);
    const acme = { ...prod, acmeDirectory: 'https://127.0.0.1:1/dir', publicIps: ['127.0.0.1'] };
    await assert.rejects(createCustomDomains({ ...acme, dnsPort: 0, acmeChallenges: ['http-01'] }, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /must include dns-01 with --relay-certs wildcard/.test(e.message));
    await assert.rejects(createCustomDomains({ ...acme, relayCerts: 'per-host', acmeChallenges: ['dns-01', 'http-01'] }, deps()), (e) => isTunnError(e, 'CONFIG_INVALID') && /dns-01 needs the relay's DNS server/.test(e.message));
    const provider = { zone: 'tunn.localhost', label: 'a test provider', present: async () => {}, cleanup: async () => {}, waitVisible: async () => {} };
    await assert.rejects(createCustomDomains({ ...base }, { ...deps(), dnsProvider: provider }), (e) => isTunnError(e, 'CONFIG_INVALID') && /--dns-provider writes ACME DNS-01 records: it needs --acme-directory/.test(e.message));
    // With a provider: no DNS server of its own (so no --public-ip), and dns-01 is allowed.
    const withProvider = await createCustomDomains({ ...prod, acmeDirectory: 'https://127.0.0.1:1/dir', acmeChallenges: ['dns-01'] }, { ...deps(), dnsProvider: provider });
    assert.equal(withProvider.dnsPort, undefined);
    await withProvider.close();
    assert.deepEqual(parseAcmeChallenges('tls-alpn-01, dns-01,tls-alpn-01'), ['tls-alpn-01', 'dns-01']);
    assert.throws(() => parseAcmeChallenges('http-02'), /unknown challenge type "http-02"/);
  });
});
