import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Dns01Solver } from '../acme/dns01.ts';
import { ManualClock } from '../lib/clock.ts';
import { createLogger } from '../lib/logger.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { customerZone, startDnsWorld, type DnsWorld } from '../../test/support/dns-world.ts';
import { startPebble, type Pebble } from '../../test/support/pebble.ts';
import { KyselyAcmeAccounts } from './kysely-acme-accounts.ts';
import { AcmeIssuer } from './acme-issuer.ts';
import { createAlerter, type CertAlert } from './alerts.ts';
import { relayDecisionFunc } from './decision.ts';
import { customDomainDecider, relayCertBackends } from '../domains/cert-lifecycle.ts';
import { createDomain, domainByName, markDomainVerified } from '../domains/records.ts';
import { listCertEvents } from './events.ts';
import type { IssuedCertificate, Issuer } from './issuer.ts';
import { CertManager } from './manager.ts';

const RELAY = 'relay.test';
const DOMAIN = 'tunn.example.test';

/** The real ACME issuer, counting the orders it places. */
class CountingIssuer implements Issuer {
  readonly id: string;
  orders = 0;
  readonly #inner: Issuer;
  constructor(inner: Issuer) {
    this.#inner = inner;
    this.id = inner.id;
  }
  issue(names: string[]): Promise<IssuedCertificate> {
    this.orders++;
    return this.#inner.issue(names);
  }
}

describe('certificate manager against Pebble', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-certs-'));
  const dbPath = join(dir, 'tunn.db');
  const box = new SecretBox(randomBytes(32));
  const clock = new ManualClock(Date.now());
  const alerts: CertAlert[] = [];
  const webhookBodies: CertAlert[] = [];
  let store: Store;
  let world: DnsWorld;
  let pebble: Pebble;
  let issuer: CountingIssuer;
  let manager: CertManager;
  let edge: TlsServer;
  let webhook: HttpServer;
  let edgePort = 0;

  const makeManager = (s: Store) =>
    new CertManager({
      ...relayCertBackends(s, box),
      issuer,
      clock,
      decide: relayDecisionFunc({ relayDomain: RELAY, customDomain: customDomainDecider(s) }),
      onAlert: createAlerter({ store: s, webhookUrl: `http://127.0.0.1:${(webhook.address() as { port: number }).port}/hook`, onAlert: (a) => void alerts.push(a) }),
    });

  /** A TLS handshake with the edge, trusting only Pebble's current root. */
  async function handshake(servername: string): Promise<{ authorized: boolean; fingerprint: string }> {
    const sock = connect({ host: '127.0.0.1', port: edgePort, servername, ca: pebble.rootPem, rejectUnauthorized: false });
    try {
      await once(sock, 'secureConnect');
      return { authorized: sock.authorized, fingerprint: sock.getPeerCertificate().fingerprint256 };
    } finally {
      sock.destroy();
    }
  }

  before(async () => {
    store = await openStore(dbPath);
    const owner = await ensureAccount(store, 'owner@example.test');
    await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: DOMAIN, relayDomain: RELAY });
    await markDomainVerified(store, DOMAIN);
    await createDomain(store, { accountId: owner.id, acmeId: owner.acme_id, domain: 'unverified.example.test', relayDomain: RELAY });
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [customerZone('example.test', DOMAIN, RELAY, owner.acme_id)] });
    pebble = await startPebble({ dnsServer: world.resolver });
    const dns01 = new Dns01Solver({ txt: world.relayZone, acmeIdFor: async (d) => (await domainByName(store, d))?.acmeIdentifier });
    issuer = new CountingIssuer(new AcmeIssuer({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, httpRetry: { maxAttempts: 0, defaultDelaySeconds: 0.05 }, accounts: new KyselyAcmeAccounts(store, box), solvers: [dns01], backoff: { minMs: 50, maxMs: 500 } }));
    webhook = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        webhookBodies.push(JSON.parse(body) as CertAlert);
        res.end('ok');
      });
    });
    webhook.listen(0, '127.0.0.1');
    await once(webhook, 'listening');
    manager = makeManager(store);
    edge = createTlsServer(
      {
        SNICallback: (name, cb) =>
          void manager.getSecureContext(name).then(
            (ctx) => (ctx ? cb(null, ctx) : cb(new Error(`no certificate for ${name}`))),
            (err: Error) => cb(err),
          ),
      },
      (s) => s.end(),
    );
    edge.listen(0, '127.0.0.1');
    await once(edge, 'listening');
    edgePort = (edge.address() as { port: number }).port;
  });

  after(async () => {
    edge?.close();
    webhook?.close();
    await pebble?.stop();
    await world?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses names nobody registered fast, without an ACME order', async () => {
    await assert.rejects(handshake('grafana.unregistered.test'));
    await assert.rejects(handshake('grafana.unverified.example.test'));
    assert.equal(await manager.getSecureContext('a.b.relay.test'), undefined);
    assert.equal(await manager.getSecureContext('not a name'), undefined);
    assert.equal(issuer.orders, 0);
  });

  it('issues one wildcard on demand for concurrent handshakes on a verified custom domain (one order)', async () => {
    const results = await Promise.all(['grafana', 'jenkins', 'grafana', 'wiki', 'api'].map((n) => handshake(`${n}.${DOMAIN}`)));
    assert.ok(results.every((r) => r.authorized));
    assert.equal(new Set(results.map((r) => r.fingerprint)).size, 1);
    assert.equal(issuer.orders, 1);
    const row = await domainByName(store, DOMAIN);
    assert.equal(row?.tlsStatus, 'issued');
    assert.ok(row?.certificateRef);
    assert.ok(row?.tlsNotAfter);
    assert.deepEqual((await listCertEvents(store, DOMAIN)).map((e) => e.kind), ['issued']);
  });

  it("serves the relay's own names from one wildcard issued through its own zone", async () => {
    const a = await handshake(`x.${RELAY}`);
    const b = await handshake(RELAY);
    assert.equal(a.authorized && b.authorized, true);
    assert.equal(a.fingerprint, b.fingerprint);
    assert.equal(issuer.orders, 2);
  });

  it('keeps private keys sealed at rest', async () => {
    const rows = await store.db.selectFrom('certificates').selectAll().execute();
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.match(r.chain_pem, /BEGIN CERTIFICATE/);
      assert.equal(JSON.stringify(r).includes('PRIVATE KEY'), false, 'no PEM key in the row');
      assert.match(r.key_sealed, /^v1:/);
    }
  });

  it('serves stored certificates after the store is reopened, without a new order', async () => {
    const reopened = await openStore(dbPath);
    try {
      const fresh = makeManager(reopened);
      assert.ok(await fresh.getSecureContext(`other.${DOMAIN}`));
      assert.equal(issuer.orders, 2);
      const list = await fresh.list();
      assert.deepEqual(list.map((c) => [c.name, c.status]), [[`*.${RELAY}`, 'issued'], [`*.${DOMAIN}`, 'issued']]);
    } finally {
      await reopened.close();
    }
  });

  it('renews at two thirds of the lifetime (injected clock)', async () => {
    const before = await handshake(`grafana.${DOMAIN}`);
    const cert = (await manager.storage.load(`*.${DOMAIN}`))!;
    clock.set(manager.renewAt(cert) - 1000);
    await manager.maintain();
    assert.equal(issuer.orders, 2, 'not due yet');
    clock.set(manager.renewAt(cert) + 1000);
    await manager.maintain();
    assert.equal(issuer.orders, 4, 'both certificates were due');
    clock.set(Date.now()); // the new certificates start now
    const afterRenew = await handshake(`grafana.${DOMAIN}`);
    assert.equal(afterRenew.authorized, true);
    assert.notEqual(afterRenew.fingerprint, before.fingerprint);
    const row = await domainByName(store, DOMAIN);
    assert.notEqual(row?.certificateRef, cert.id);
    assert.equal((await listCertEvents(store, DOMAIN))[0]?.kind, 'renewed');
  });

  it('on a CA outage: tls_error with the cause, a scheduled retry, the last good certificate still served; then recovery', async () => {
    const serving = await handshake(`grafana.${DOMAIN}`);
    const cert = (await manager.storage.load(`*.${DOMAIN}`))!;
    await pebble.stop();
    clock.set(manager.renewAt(cert) + 1000);
    await manager.maintain();
    const failed = await domainByName(store, DOMAIN);
    assert.equal(failed?.tlsStatus, 'tls_error');
    assert.match(failed?.tlsLastError ?? '', /issuing a certificate for \*\.tunn\.example\.test.*ECONNREFUSED/);
    assert.equal(failed?.certFailureCount, 1);
    assert.equal(failed?.certNextRetryAt, new Date(clock.now() + 60_000).toISOString());
    const still = await handshake(`grafana.${DOMAIN}`);
    assert.equal(still.fingerprint, serving.fingerprint, 'last good certificate still served');
    const orders = issuer.orders;
    await manager.maintain();
    assert.equal(issuer.orders, orders, 'no new attempt before the retry time');
    assert.ok(alerts.some((a) => a.kind === 'issue_failed' && a.domain === DOMAIN));
    assert.ok(webhookBodies.some((a) => a.kind === 'issue_failed' && /ECONNREFUSED/.test(a.message)));
    const kinds = (await listCertEvents(store, DOMAIN)).map((e) => e.kind);
    assert.ok(kinds.includes('failed') && kinds.includes('retry_scheduled') && kinds.includes('alert'));

    await pebble.start();
    clock.advance(61_000);
    await manager.maintain();
    const healed = await domainByName(store, DOMAIN);
    assert.equal(healed?.tlsStatus, 'issued');
    assert.equal(healed?.tlsLastError, null);
    assert.equal(healed?.certFailureCount, 0);
    assert.equal(healed?.certNextRetryAt, null);
    clock.set(Date.now());
    const recovered = await handshake(`grafana.${DOMAIN}`);
    assert.equal(recovered.authorized, true, 'trusted by the restarted CA');
    assert.notEqual(recovered.fingerprint, serving.fingerprint);
  });

  it("manage(): with the CA down, a server's own certificate is retried in the background on the back-off schedule and taken once the CA is back", async () => {
    // Guards issue 9 (Faults): a relay whose CA is down at start does not stop; its certificate
    // is obtained by itself later, without a handshake or an operator asking for it.
    const fresh = await openStore(join(dir, 'managed.db'));
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ json: true, destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) });
    const m = new CertManager({ ...relayCertBackends(fresh, box), issuer, clock: { now: () => Date.now() }, logger, decide: relayDecisionFunc({ relayDomain: RELAY, customDomain: customDomainDecider(fresh) }), retrySchedule: [300] });
    try {
      await pebble.stop();
      const orders = issuer.orders;
      const managed = await m.manage(RELAY);
      assert.equal(managed.ready, false, 'nothing stored yet');
      assert.equal(managed.name, `*.${RELAY}`);
      // Two failed orders with nobody asking: the back-off timer retries by itself.
      const end = Date.now() + 30_000;
      while (issuer.orders < orders + 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.ok(issuer.orders >= orders + 2, 'retried on the schedule');
      // A handshake meanwhile is refused, and the log says why and when the next attempt is.
      assert.equal(await m.getSecureContext(RELAY), undefined);
      await new Promise((r) => setImmediate(r));
      const refusal = lines.find((l) => String(l.msg).startsWith(`refusing TLS for ${RELAY}`));
      assert.match(String(refusal?.msg), /no certificate for it yet \(last attempt failed: .*ECONNREFUSED.*; next attempt at /);

      await pebble.start();
      const cert = await Promise.race([managed.arrived, sleep(30_000, undefined, { ref: false })]);
      assert.ok(cert, 'the certificate arrived once the CA was back');
      assert.deepEqual(cert.names.sort(), [RELAY, `*.${RELAY}`].sort());
      assert.ok(await m.getSecureContext(`x.${RELAY}`), 'served from now on');
      assert.equal((await m.manage(RELAY)).ready, true, 'stored: ready at once next time (a restart)');
    } finally {
      m.stop();
      await fresh.close();
    }
  });
});
