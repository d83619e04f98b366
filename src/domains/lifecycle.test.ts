import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount, type Account } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { customerZone, startDnsWorld, type DnsWorld } from '../../test/support/dns-world.ts';
import type { CertAlert } from '../certs/alerts.ts';
import { certEventHeaders, ReplayGuard } from '../certs/cert-event-signature.ts';
import { relayDecisionFunc } from '../certs/decision.ts';
import { createCa, issueLeaf, type KeyAndCert } from '../certs/dev-ca.ts';
import { listCertEvents } from '../certs/events.ts';
import { FilesIssuer } from '../certs/files-issuer.ts';
import { CertManager } from '../certs/manager.ts';
import { CertProbe } from '../certs/probe.ts';
import { SelfSignedIssuer } from '../certs/self-signed-issuer.ts';
import { customDomainDecider, probeRecorder, relayCertBackends } from './cert-lifecycle.ts';
import { handleCertEvent } from './cert-events.ts';
import { normalizeCustomDomain } from './names.ts';
import { createDomain, domainByName, updateDomainTls } from './records.ts';
import { verifyDomain } from './verify.ts';

const RELAY = 'relay.test';
const DAY = 86_400_000;

describe('domain rules', () => {
  it('refuses malformed names and names under the relay zone', () => {
    for (const bad of ['localhost', 'https://x.example.com', '1.2.3.4', 'a..b.com', '-x.example.com', 'x.example.123', '*.x.example.com']) {
      assert.throws(() => normalizeCustomDomain(bad, RELAY), (e) => isTunnError(e, 'NAME_INVALID'), bad);
    }
    assert.throws(() => normalizeCustomDomain('team.relay.test', RELAY), (e) => isTunnError(e, 'NAME_RESERVED'));
    assert.throws(() => normalizeCustomDomain('Relay.Test.', RELAY), (e) => isTunnError(e, 'NAME_RESERVED'));
    assert.equal(normalizeCustomDomain(' Tunn.MyCompany.com. ', RELAY), 'tunn.mycompany.com');
  });
});

describe('custom domain lifecycle (self-signed and file issuers)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-lifecycle-'));
  const box = new SecretBox(randomBytes(32));
  const clock = new ManualClock(Date.now());
  const alerts: CertAlert[] = [];
  let store: Store;
  let world: DnsWorld;
  let owner: Account;
  let other: Account;
  let ca: KeyAndCert;
  let manager: CertManager;
  let edge: TlsServer;
  let port = 0;

  before(async () => {
    store = await openStore(':memory:');
    owner = await ensureAccount(store, 'owner@example.test');
    other = await ensureAccount(store, 'other@example.test');
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [customerZone('example.test', 'tunn.example.test', RELAY, owner.acme_id)] });
    ca = await createCa('lifecycle test CA');
    manager = new CertManager({ ...relayCertBackends(store, box), clock, issuer: new SelfSignedIssuer(ca), decide: relayDecisionFunc({ relayDomain: RELAY, customDomain: customDomainDecider(store) }), onAlert: (a) => void alerts.push(a) });
    edge = createTlsServer({ SNICallback: (n, cb) => void manager.getSecureContext(n).then((ctx) => (ctx ? cb(null, ctx) : cb(new Error('refused')))) }, (s) => s.end());
    edge.listen(0, '127.0.0.1');
    await once(edge, 'listening');
    port = (edge.address() as { port: number }).port;
  });
  after(async () => {
    edge?.close();
    await world?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a domain once: the same account again is a no-op, another account is refused', async () => {
    const d = await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: 'tunn.example.test', relayDomain: RELAY });
    assert.equal(d.tlsStatus, 'pending_issue');
    assert.equal(d.verifiedAt, null);
    assert.equal((await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: 'TUNN.example.test', relayDomain: RELAY })).id, d.id);
    await assert.rejects(createDomain(store, { accountId: other.id, acmeId: other.acme_id, domain: 'tunn.example.test', relayDomain: RELAY }), (e) => isTunnError(e, 'CONFLICT'));
    const p = await createDomain(store, { accountId: other.id, acmeId: other.acme_id, domain: 'pass.example.test', relayDomain: RELAY, tlsMode: 'passthrough' });
    assert.equal(p.tlsStatus, 'passthrough_unverified');
  });

  it('verifies through DNS, then serves the domain; strict mode wants the TXT token', async () => {
    assert.equal(await manager.getSecureContext('app.tunn.example.test'), undefined, 'unverified: refused');
    const strict = await verifyDomain(store, 'tunn.example.test', { relayDomain: RELAY, resolver: world.resolver, strict: true });
    assert.equal(strict.ok, false);
    assert.match(strict.records.find((r) => !r.ok)!.problem!, /_tunn-verify\.tunn\.example\.test has no TXT record/);
    const v = await verifyDomain(store, 'tunn.example.test', { relayDomain: RELAY, resolver: world.resolver, now: clock.now() });
    assert.equal(v.ok, true);
    assert.ok(v.verifiedAt);
    assert.ok(await manager.getSecureContext('app.tunn.example.test'));
    const row = await domainByName(store, 'tunn.example.test');
    assert.equal(row?.tlsStatus, 'issued');
    assert.deepEqual((await listCertEvents(store, 'tunn.example.test')).map((e) => e.kind).sort(), ['issued', 'verified']);
  });

  it('probes each served name and records drift', async () => {
    const probe = new CertProbe({ storage: manager.storage, record: probeRecorder(store), target: { host: '127.0.0.1', port }, ca: ca.certPem, clock });
    const [ok] = await probe.runOnce();
    assert.equal(ok?.ok, true);
    assert.equal(ok?.servername, 'tunn-probe.tunn.example.test');
    let row = await domainByName(store, 'tunn.example.test');
    assert.equal(row?.tlsLastCheckedAt, new Date(clock.now()).toISOString());
    assert.ok(row?.tlsNotAfter);
    assert.equal(row?.tlsLastError, null);
    // Someone replaces the stored certificate behind the running relay's back.
    await manager.storage.save('*.tunn.example.test', await new SelfSignedIssuer(ca).issue(['*.tunn.example.test']));
    const [drift] = await probe.runOnce();
    assert.equal(drift?.drift, true);
    row = await domainByName(store, 'tunn.example.test');
    assert.match(row?.tlsLastError ?? '', /not the current one in the store/);
    assert.equal((await listCertEvents(store, 'tunn.example.test'))[0]?.kind, 'probe_drift');
  });

  it('accepts cert events from an external manager only when signed with the token', async () => {
    const deps = { store, token: 'secret-token', clock, replay: new ReplayGuard() };
    const send = (body: unknown, token = 'secret-token') => {
      const raw = JSON.stringify(body);
      const h = certEventHeaders(token, raw, clock.now());
      return handleCertEvent(deps, { timestamp: h['x-cert-event-timestamp'], signature: h['x-cert-event-signature'] }, raw);
    };
    assert.equal((await handleCertEvent({ ...deps, token: undefined }, {}, '{}')).status, 404);
    assert.equal((await handleCertEvent(deps, {}, JSON.stringify({ domain: 'pass.example.test', status: 'issued' }))).status, 401);
    assert.equal((await send({ domain: 'pass.example.test', status: 'issued' }, 'wrong')).status, 401);
    const bad = await send({ domain: 'pass.example.test', status: 'great', not_after: 'soon' });
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.message), /status: one of .*not_after/);
    assert.equal((await send({ domain: 'nope.example.test', status: 'issued' })).status, 404);
    const okay = await send({ domain: 'pass.example.test', status: 'tls_error', error: 'upstream cert expired' });
    assert.deepEqual(okay, { status: 202, body: { ok: true, domain: 'pass.example.test', tls_status: 'tls_error' } });
    const row = await domainByName(store, 'pass.example.test');
    assert.equal(row?.tlsStatus, 'tls_error');
    assert.equal(row?.tlsLastError, 'upstream cert expired');
    assert.equal((await listCertEvents(store, 'pass.example.test'))[0]?.kind, 'external');
  });

  // Security property: cert-event replay protection is not per process. A captured signed
  // event replayed to a restarted relay (a fresh in-memory guard) is refused, and so is an
  // older event arriving after a newer one for the same domain.
  it('refuses a cert event replayed after a restart, and an older event after a newer one', async () => {
    const token = 'secret-token';
    const signed = (body: unknown, at: number) => {
      const raw = JSON.stringify(body);
      const h = certEventHeaders(token, raw, at);
      return { raw, headers: { timestamp: h['x-cert-event-timestamp'], signature: h['x-cert-event-signature'] } };
    };
    const relay = () => ({ store, token, clock, replay: new ReplayGuard() }); // each call: a relay process
    clock.advance(60_000); // after the events of the test above
    const newer = signed({ domain: 'pass.example.test', status: 'expiring' }, clock.now());
    const older = signed({ domain: 'pass.example.test', status: 'tls_error', error: 'old news' }, clock.now() - 30_000);
    assert.equal((await handleCertEvent(relay(), newer.headers, newer.raw)).status, 202);
    const replayed = await handleCertEvent(relay(), newer.headers, newer.raw);
    assert.equal(replayed.status, 409);
    assert.match(String(replayed.body.message), /a cert event for pass\.example\.test signed at \d+ or later was already applied: events apply in order, once each; sign each event afresh/);
    assert.equal((await handleCertEvent(relay(), older.headers, older.raw)).status, 409, 'out of order');
    assert.equal((await domainByName(store, 'pass.example.test'))?.tlsStatus, 'expiring', 'the newer state stands');
  });

  it('alerts before expiry when renewal keeps failing, and respects the manual policy', async () => {
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    const leaf = await issueLeaf(ca, ['*.files.example.test'], 30);
    writeFileSync(certFile, leaf.certPem);
    writeFileSync(keyFile, leaf.keyPem);
    const d = await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: 'files.example.test', relayDomain: RELAY });
    await store.db.updateTable('domains').set({ verified_at: new Date().toISOString() }).where('id', '=', d.id).execute();
    await updateDomainTls(store, 'files.example.test', { cert_failure_policy: 'manual' });
    const got: CertAlert[] = [];
    const files = new CertManager({ ...relayCertBackends(store, box), clock, issuer: new FilesIssuer(certFile, keyFile), decide: relayDecisionFunc({ relayDomain: RELAY, customDomain: customDomainDecider(store) }), onAlert: (a) => void got.push(a) });
    assert.ok(await files.getSecureContext('x.files.example.test'));
    unlinkSync(certFile); // renewal will fail from now on
    const cert = (await files.storage.load('*.files.example.test'))!;
    clock.set(cert.notAfter - 2 * DAY);
    await files.maintain();
    const row = await domainByName(store, 'files.example.test');
    assert.equal(row?.tlsStatus, 'tls_error');
    assert.match(row?.tlsLastError ?? '', /ENOENT/);
    assert.equal(row?.certNextRetryAt, null, 'manual policy: no automatic retry');
    assert.deepEqual(got.map((a) => a.kind).sort(), ['expiring', 'issue_failed']);
    assert.ok(await files.getSecureContext('x.files.example.test'), 'last good certificate still served');
    await files.maintain();
    assert.equal(got.length, 2, 'no retry and no repeated alert');
    clock.set(Date.now());
  });
});
