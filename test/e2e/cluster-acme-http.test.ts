import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { DnsServer, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { openStore } from '../../src/store/store.ts';
import { startPebble, type Pebble } from '../support/pebble.ts';
import { startClusterDatabase, type ClusterDatabase } from '../support/cluster.ts';
import { handshake } from '../support/tls-handshake.ts';
import { readyOf, startCli, tmpDir, type Proc } from './harness.ts';

// Issue 14: a relay's own HTTP-01 and TLS-ALPN-01 answers in a cluster. The CA connects to
// whichever relay DNS gives it, not necessarily the one that placed the order. Three relays on
// one PostgreSQL database bind the same HTTPS and HTTP ports on 127.0.0.1 (A), 127.0.0.2 (B) and
// 127.0.0.3 (C); Pebble's VA connects to those ports at the address the test's DNS gives for
// each name. A orders with HTTP-01 and C with TLS-ALPN-01, for names whose DNS points at
// another relay, so a certificate is issued only if that other relay answers from the database.

const RELAY = 'tunn.localhost';
const HOSTS = { a: '127.0.0.1', b: '127.0.0.2', c: '127.0.0.3' } as const;

interface Relay {
  proc: Proc;
  host: string;
}

async function freeOn(host: string, port = 0): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, resolve);
  });
  const got = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return got;
}

/** A port free on every relay's address (so the three relays bind the same one). */
async function freeOnAll(): Promise<number> {
  for (;;) {
    const port = await freeOn(HOSTS.a);
    const ok = await Promise.all([HOSTS.b, HOSTS.c].map((h) => freeOn(h, port).then(() => true, () => false)));
    if (ok.every(Boolean)) return port;
  }
}

/** Handshakes at `host` until the certificate for `servername` is trusted (the first one starts the order). */
async function issuedAt(host: string, port: number, servername: string, ca: string): Promise<{ authorized: boolean; san?: string; error?: string }> {
  let h = await handshake(host, port, servername, ca);
  const end = Date.now() + 60_000;
  while (!h.authorized && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    h = await handshake(host, port, servername, ca);
  }
  return h;
}

describe('HTTP-01 and TLS-ALPN-01 answered by any relay of a cluster (three relays, PostgreSQL, Pebble)', () => {
  const dir = tmpDir('tunn-e2e-cluster-acme-http-');
  const zone = new Zone(RELAY);
  let tokenFile = '';
  const rootFile = join(dir.path, 'pebble-root.pem');
  const procs: Proc[] = [];
  const relays: Record<keyof typeof HOSTS, Relay> = {} as never;
  let db: ClusterDatabase;
  let dns: DnsServer;
  let pebble: Pebble;
  let origin: http.Server;
  let httpsPort: number;
  let httpPort: number;

  async function startRelay(host: string, challenges: string): Promise<Relay> {
    const proc = startCli(
      [
        'relay', '--domain', RELAY, '--listen', host, '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', join(dir.path, `relay-${host}`), '--json',
        '--store-file', db.storeFile, '--node-url', `https://${host}:${await freeOn(host)}`, '--cluster-secret-file', db.secretFile,
        '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test',
        '--relay-certs', 'per-host', '--acme-challenge', challenges,
      ],
      { env: db.env },
    );
    procs.push(proc);
    const ready = await readyOf(proc, 40_000);
    if (ready.certificate === 'pending') await proc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 40_000);
    return { proc, host };
  }

  async function startAgent(name: string): Promise<void> {
    const proc = startCli([String((origin.address() as AddressInfo).port), '-n', name, '--public', '--relay', `https://${RELAY}:${httpsPort}`, '--relay-ca', rootFile, '--token-file', tokenFile, '--json'], {
      env: { TUNN_CONFIG_DIR: join(dir.path, `agent-${name}`), TUNN_RELAY: '', TUNN_TOKEN: '' },
    });
    procs.push(proc);
    await readyOf(proc);
  }

  const presented = (r: Relay, name: string) => r.proc.lines.filter((l) => l.identifier === name && l.challenge !== undefined).map((l) => String(l.challenge));

  before(async () => {
    db = await startClusterDatabase({ prefix: 'tunn-e2e-cluster-acme-http-db-' });
    // The relay's own name is A's; every other name points where each test says.
    zone.add({ name: RELAY, type: 'A', value: HOSTS.a });
    dns = new DnsServer({ handler: authoritativeHandler([zone]), authoritative: true });
    await dns.listen(0, '127.0.0.1');
    httpsPort = await freeOnAll();
    httpPort = await freeOnAll();
    // The VA connects to these ports at the address DNS gives: the relay there answers.
    pebble = await startPebble({ dnsServer: `127.0.0.1:${dns.port}`, httpPort, tlsPort: httpsPort });
    writeFileSync(join(dir.path, 'pebble-https-ca.pem'), pebble.httpsCaPem);
    writeFileSync(rootFile, pebble.rootPem);
    origin = http.createServer((_req, res) => res.end('origin'));
    origin.listen(0, '127.0.0.1');
    await once(origin, 'listening');
    // One after another: A creates the schema and the sealing canary and obtains the relay's own certificate.
    relays.a = await startRelay(HOSTS.a, 'http-01');
    [relays.b, relays.c] = await Promise.all([startRelay(HOSTS.b, 'http-01'), startRelay(HOSTS.c, 'tls-alpn-01')]);
    tokenFile = await db.tokenFile('owner@example.test');
    // Agents reach relay A (tunn.localhost is 127.0.0.1 for them): every tunnel is held on A.
    await Promise.all(['web', 'alpn', 'alpn2'].map(startAgent));
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await pebble?.stop();
    await db?.stop();
    await dns?.close();
    origin?.close();
    dir.remove();
  });

  it("HTTP-01: relay A orders, Pebble fetches the token from relay B's plain-HTTP port, and the certificate is issued", async () => {
    const name = `web.${RELAY}`;
    zone.add({ name, type: 'A', value: HOSTS.b });
    const h = await issuedAt(HOSTS.a, httpsPort, name, pebble.rootPem);
    assert.equal(h.authorized, true, `${h.error}; A's challenges: ${JSON.stringify(presented(relays.a, name))}`);
    assert.equal(h.san, `DNS:${name}`);
    // A presented it (by HTTP-01); Pebble could only reach B (DNS), so B answered from the database.
    // Without that, A's order fails and B's certificate maintenance orders the name again itself
    // (validated at B): the certificate would be issued all the same, by B's order.
    assert.deepEqual(presented(relays.b, name), [], "B did not order: the certificate comes from A's order");
    assert.deepEqual([...new Set(presented(relays.a, name))], ['http-01']);
  });

  it('TLS-ALPN-01: relay C orders, Pebble validates at relay B (the tunnel is held on A), and the certificate is issued', async () => {
    // B sees the name as served elsewhere (on A): its acme-tls/1 answer comes from the database
    // before it would carry the handshake to the holder's agent.
    const name = `alpn.${RELAY}`;
    zone.add({ name, type: 'A', value: HOSTS.b });
    const h = await issuedAt(HOSTS.c, httpsPort, name, pebble.rootPem);
    assert.equal(h.authorized, true, `${h.error}; C's challenges: ${JSON.stringify(presented(relays.c, name))}`);
    assert.equal(h.san, `DNS:${name}`);
    assert.deepEqual([...new Set(presented(relays.c, name))], ['tls-alpn-01']);
    assert.deepEqual([...presented(relays.a, name), ...presented(relays.b, name)], [], 'only C ordered');
  });

  it('TLS-ALPN-01: relay C orders, Pebble validates at relay A, which holds the tunnel and did not present the challenge', async () => {
    const name = `alpn2.${RELAY}`;
    zone.add({ name, type: 'A', value: HOSTS.a });
    const h = await issuedAt(HOSTS.c, httpsPort, name, pebble.rootPem);
    assert.equal(h.authorized, true, `${h.error}; C's challenges: ${JSON.stringify(presented(relays.c, name))}`);
    assert.deepEqual([...new Set(presented(relays.c, name))], ['tls-alpn-01']);
    assert.deepEqual([...presented(relays.a, name), ...presented(relays.b, name)], [], 'only C ordered');
  });

  // Security: a relay answers only challenges that are pending. After the orders, cleanup has
  // removed every row, and an acme-tls/1 handshake for a served name gets no certificate at all.
  it('after the orders: no challenge rows are left, and acme-tls/1 for a name without a pending challenge is refused', async () => {
    const store = await openStore(db.storeUrl);
    try {
      let left = await store.db.selectFrom('acme_challenges').select(['type', 'name']).execute();
      const end = Date.now() + 10_000;
      while (left.length && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        left = await store.db.selectFrom('acme_challenges').select(['type', 'name']).execute();
      }
      assert.deepEqual(left, [], 'cleanup removed every challenge row');
    } finally {
      await store.close();
    }
    // A relay answers a hit from its last read for up to 1 s (src/acme/shared-challenges.ts): past that, it reads again.
    await new Promise((r) => setTimeout(r, 1500));
    for (const [host, name] of [[HOSTS.b, `alpn.${RELAY}`], [HOSTS.a, `alpn2.${RELAY}`], [HOSTS.b, `nothing.${RELAY}`]] as const) {
      const s = tls.connect({ host, port: httpsPort, servername: name, ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false });
      const got = await new Promise<string>((resolve) => {
        s.once('secureConnect', () => resolve(`negotiated ${String(s.alpnProtocol)}`));
        s.once('error', () => resolve('refused'));
        s.once('close', () => resolve('refused'));
      });
      s.destroy();
      assert.equal(got, 'refused', `${name} at ${host}`);
    }
    // And an HTTP-01 token nobody presents is not answered: the plain port redirects to HTTPS.
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get({ host: HOSTS.b, port: httpPort, path: '/.well-known/acme-challenge/no-such-token', headers: { host: `web.${RELAY}` } }, resolve);
      req.on('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 308);
  });
});
