import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { DnsServer } from '../../src/dns/server.ts';
import { DnsServer as Dns, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { startForwarder, type ZoneRoute } from '../support/dns-forwarder.ts';
import { startPebble, type Pebble } from '../support/pebble.ts';
import { freePort } from '../support/ports.ts';
import { startClusterDatabase, type ClusterDatabase } from '../support/cluster.ts';
import { startCli, tmpDir, type Proc } from './harness.ts';

// Issue 14, "certificates are shared": three relays on one PostgreSQL database, one Pebble, a
// verified custom domain, and the first TLS handshakes for a name under it arriving on all three
// relays at once. DNS-01 only: the relays' DNS servers all answer the `_acme-challenge` TXT
// values from the database (SharedTxt), so whichever relay orders, Pebble can validate through
// the customer's CNAME to any relay's DNS server (HTTP-01/TLS-ALPN-01: cluster-acme-http.test.ts).

const RELAY = 'tunn.localhost';
const DOMAIN = 'apps.example.test';
const NAME = `www.${DOMAIN}`;

interface Relay {
  proc: Proc;
  httpsPort: number;
}

/** A TLS handshake with `servername`: the served certificate and whether `ca` verifies it. */
async function handshake(port: number, servername: string, ca: string): Promise<{ authorized: boolean; san?: string; serial?: string; error?: string }> {
  const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  try {
    await Promise.race([once(s, 'secureConnect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
    const peer = s.getPeerCertificate();
    return { authorized: s.authorized, san: peer.subjectaltname, serial: peer.serialNumber, error: s.authorizationError ? String(s.authorizationError) : undefined };
  } catch (err) {
    return { authorized: false, error: (err as Error).message };
  } finally {
    s.destroy();
  }
}

/** The relay's log lines saying it starts an ACME order for `name` (obtain.ts logs one per order). */
const ordersFor = (r: Relay, name: string): Record<string, unknown>[] =>
  r.proc.lines.filter((l) => String(l.msg ?? '').startsWith('requesting a certificate') && Array.isArray(l.names) && (l.names as string[])[0] === name);

describe('three relays on one PostgreSQL, one Pebble: one ACME order for a custom domain', () => {
  const dir = tmpDir('tunn-e2e-cluster-acme-');
  const customer = new Zone('example.test');
  const routes: ZoneRoute[] = [];
  const rootFile = join(dir.path, 'pebble-root.pem');
  const relays: Relay[] = [];
  const procs: Proc[] = [];
  let db: ClusterDatabase;
  let customerDns: DnsServer;
  let forwarder: DnsServer;
  let pebble: Pebble;
  let token: string;

  async function startRelay(i: number): Promise<Relay> {
    const [httpsPort, httpPort, dnsPort, linkPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // Any relay's DNS server answers the relay zone (TXT values come from the database).
    routes.push({ zone: RELAY, server: { host: '127.0.0.1', port: dnsPort } });
    const proc = startCli(
      [
        'relay', '--domain', RELAY, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', join(dir.path, `relay${i}`), '--json',
        '--store-file', db.storeFile, '--node-url', `https://127.0.0.1:${linkPort}`, '--cluster-secret-file', db.secretFile,
        '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test', '--acme-challenge', 'dns-01',
        '--dns-port', String(dnsPort), '--dns-resolver', `127.0.0.1:${forwarder.port}`, '--public-ip', '127.0.0.1',
      ],
      { env: db.env },
    );
    procs.push(proc);
    const ready = await proc.waitFor((l) => l.event === 'ready', 40_000);
    if (ready.certificate === 'pending') await proc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 40_000);
    return { proc, httpsPort };
  }

  before(async () => {
    db = await startClusterDatabase({ prefix: 'tunn-e2e-cluster-acme-db-' });
    customerDns = new Dns({ handler: authoritativeHandler([customer]), authoritative: true });
    await customerDns.listen(0, '127.0.0.1');
    routes.push({ zone: 'example.test', server: { host: '127.0.0.1', port: customerDns.port } });
    forwarder = await startForwarder(() => routes);
    pebble = await startPebble({ dnsServer: `127.0.0.1:${forwarder.port}` });
    writeFileSync(join(dir.path, 'pebble-https-ca.pem'), pebble.httpsCaPem);
    writeFileSync(rootFile, pebble.rootPem);
    // One after another: the first creates the schema, the sealing canary and the relay's own certificate.
    for (let i = 0; i < 3; i++) relays.push(await startRelay(i));
    token = await db.token('owner@example.test');
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await pebble?.stop();
    await db?.stop();
    await Promise.all([customerDns?.close(), forwarder?.close()]);
    dir.remove();
  });

  // Guards: one ACME order cluster-wide for a name (the PostgreSQL advisory lock in
  // src/certs/kysely-locker.ts), the certificate stored once and served by every relay.
  it('concurrent first handshakes on all three relays → exactly one order at Pebble, and all three serve it', async () => {
    const [a] = relays as [Relay, Relay, Relay];
    const add = startCli(['domain', 'add', DOMAIN, '--interval', '0.2', '--relay', `https://${RELAY}:${a.httpsPort}`, '--token', token, '--relay-ca', rootFile, '--json']);
    const records = (await add.waitFor((l) => l.event === 'domain')).records as { name: string; type: 'CNAME'; value: string }[];
    for (const r of records) customer.add(r);
    await add.waitFor((l) => l.event === 'verified', 30_000);
    assert.equal(await add.exited, 0, add.stderr.join('\n'));
    const wildcard = `*.${DOMAIN}`;
    const atVerified = relays.map((r) => ordersFor(r, wildcard).length);

    // The first handshakes, at once on every relay (several per relay, so each relay's own
    // single-flight and the cross-relay lock are both in play). Verification on relay A has just
    // started its own background order (verify.ts prefetchCertificate), so these race that one:
    // with an in-process lock instead of the advisory lock, B and C each order again.
    const first = await Promise.all(relays.flatMap((r) => [1, 2].map(() => handshake(r.httpsPort, NAME, pebble.rootPem))));
    // A handshake may have been answered before its certificate existed; every relay serves it afterwards.
    const served: { san?: string; serial?: string }[] = [];
    for (const r of relays) {
      let h = await handshake(r.httpsPort, NAME, pebble.rootPem);
      const end = Date.now() + 45_000;
      while (!h.authorized && Date.now() < end) {
        await new Promise((res) => setTimeout(res, 500));
        h = await handshake(r.httpsPort, NAME, pebble.rootPem);
      }
      assert.equal(h.authorized, true, `relay on ${r.httpsPort}: ${h.error} (first handshakes: ${JSON.stringify(first)})`);
      assert.equal(h.san, `DNS:${wildcard}`);
      served.push(h);
    }

    const orders = relays.map((r, i) => ordersFor(r, wildcard).length - atVerified[i]!);
    const total = relays.reduce((n, r) => n + ordersFor(r, wildcard).length, 0);
    assert.equal(total, 1, `exactly one ACME order for ${wildcard} in the cluster (per relay since verification: ${JSON.stringify(orders)}; lines: ${JSON.stringify(relays.map((r) => ordersFor(r, wildcard)))})`);
    // Two orders would also show as different certificates on different relays.
    assert.equal(new Set(served.map((h) => h.serial)).size, 1, `every relay serves the same certificate: ${JSON.stringify(served)}`);
    for (const r of relays) assert.ok(!r.proc.lines.some((l) => / failed: /.test(String(l.msg ?? '')) && JSON.stringify(l.names ?? '').includes(DOMAIN)), 'no failed order');
  });
});
