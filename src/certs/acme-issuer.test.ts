import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ariCertIdFromParts } from '../acme/ari.ts';
import { Dns01Solver } from '../acme/dns01.ts';
import { Http01Solver } from '../acme/http01.ts';
import { ACME_TLS_ALPN, TlsAlpn01Solver } from '../acme/tls-alpn01.ts';
import { Writable } from 'node:stream';
import { isTunnError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { customerZone, startDnsWorld, type DnsWorld } from '../../test/support/dns-world.ts';
import { startPebble, type Pebble } from '../../test/support/pebble.ts';
import { freePort } from '../../test/support/ports.ts';
import { KyselyAcmeAccounts } from './kysely-acme-accounts.ts';
import { AcmeIssuer, resolveAcmeDirectory } from './acme-issuer.ts';
import type { IssuedCertificate } from './issuer.ts';

const RELAY = 'relay.test';
const DOMAIN = 'tunn.example.test';
const ACME_ID = 'a7x9k2';

/** Serves `cert` on a loopback TLS server and reports whether a client trusting only `rootPem` accepts it for `servername`. */
async function trustedFor(cert: IssuedCertificate, servername: string, rootPem: string): Promise<boolean> {
  const srv = createTlsServer({ key: cert.keyPem, cert: cert.chainPem }, (s) => s.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    const sock = connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, servername, ca: rootPem, rejectUnauthorized: false });
    await once(sock, 'secureConnect');
    const ok = sock.authorized;
    sock.destroy();
    return ok;
  } finally {
    srv.close();
  }
}

describe('ACME issuer against Pebble', () => {
  let world: DnsWorld;
  let pebble: Pebble;
  let store: Store;
  let httpServer: HttpServer;
  let tlsServer: TlsServer;
  const box = new SecretBox(randomBytes(32));
  const http01 = new Http01Solver();
  const alpn = new TlsAlpn01Solver();
  let dns01: Dns01Solver;
  const issuer = (solvers: ConstructorParameters<typeof AcmeIssuer>[0]['solvers']) =>
    new AcmeIssuer({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, httpRetry: { maxAttempts: 0, defaultDelaySeconds: 0.05 }, accounts: new KyselyAcmeAccounts(store, box), solvers, backoff: { minMs: 50, maxMs: 500 } });

  before(async () => {
    const zone = customerZone('example.test', DOMAIN, RELAY, ACME_ID);
    // A second customer domain registered to an account but without the _acme-challenge CNAME.
    zone.add({ name: '*.broken.example.test', type: 'CNAME', value: RELAY });
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [zone] });
    dns01 = new Dns01Solver({ txt: world.relayZone, acmeIdFor: async (d) => (d === DOMAIN || d === 'broken.example.test' ? ACME_ID : undefined) });
    const httpPort = await freePort();
    const tlsPort = await freePort();
    httpServer = createHttpServer((req, res) => {
      // Without a shared store the answer is synchronous; the Host is given without its port, as the relay's router does.
      const body = http01.respond(req.url ?? '', (req.headers.host ?? '').replace(/:\d+$/, '')) as string | undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' }).end(body ?? 'not found');
    });
    httpServer.listen(httpPort, '127.0.0.1');
    const fallback = createSecureContext({});
    tlsServer = createTlsServer(
      {
        ALPNCallback: ({ protocols }) => (protocols.includes(ACME_TLS_ALPN) ? ACME_TLS_ALPN : undefined),
        SNICallback: (name, cb) => cb(null, alpn.secureContext(name) ?? fallback),
      },
      (s) => s.end(),
    );
    tlsServer.listen(tlsPort, '127.0.0.1');
    await Promise.all([once(httpServer, 'listening'), once(tlsServer, 'listening')]);
    pebble = await startPebble({ dnsServer: world.resolver, httpPort, tlsPort });
    store = await openStore(':memory:');
  });

  after(async () => {
    await pebble?.stop();
    httpServer?.close();
    tlsServer?.close();
    await world?.close();
    await store?.close();
  });

  it('issues a wildcard and its apex for a customer domain via DNS-01 through the _acme CNAME delegation', async () => {
    const cert = await issuer([dns01]).issue([`*.${DOMAIN}`, DOMAIN]);
    assert.deepEqual(cert.names, [`*.${DOMAIN}`, DOMAIN]);
    assert.ok(cert.notAfter > Date.now());
    assert.equal(await trustedFor(cert, `grafana.${DOMAIN}`, pebble.rootPem), true);
    // The challenge TXT records are gone afterwards.
    assert.deepEqual(world.relayZone.records(`${ACME_ID}._acme.${RELAY}`), []);
  });

  it("issues the relay's own wildcard via DNS-01 in its own zone", async () => {
    const cert = await issuer([dns01]).issue([RELAY, `*.${RELAY}`]);
    assert.equal(await trustedFor(cert, `x.${RELAY}`, pebble.rootPem), true);
  });

  it('issues via HTTP-01 for a name reached through the customer CNAME', async () => {
    const cert = await issuer([http01]).issue([`app.${DOMAIN}`]);
    assert.equal(await trustedFor(cert, `app.${DOMAIN}`, pebble.rootPem), true);
    assert.equal(http01.respond('/.well-known/acme-challenge/anything', `app.${DOMAIN}`), undefined);
  });

  it('issues via TLS-ALPN-01', async () => {
    const cert = await issuer([alpn]).issue([`alpn.${RELAY}`]);
    assert.equal(await trustedFor(cert, `alpn.${RELAY}`, pebble.rootPem), true);
    assert.equal(alpn.has(`alpn.${RELAY}`), false);
  });

  it("fails with the CA's message when the delegation CNAME is missing", async () => {
    await assert.rejects(issuer([dns01]).issue(['*.broken.example.test']), (err) => {
      assert.ok(isTunnError(err, 'CERT_ISSUE_FAILED'));
      assert.match(err.message, /issuing a certificate for \*\.broken\.example\.test/);
      assert.match(err.message, /TXT/i);
      return true;
    });
  });

  it('keeps one account per directory, its key sealed', async () => {
    const rows = await store.db.selectFrom('acme_accounts').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.key_sealed.includes('PRIVATE KEY'), false);
    assert.match(rows[0]!.account_url ?? '', /^https:\/\/127\.0\.0\.1/);
  });

  // Mend (issue 10): a failure to note the account URL used to vanish (`.catch(() => {})`);
  // the certificate is still issued, and the log says what failed.
  it('issues when the account URL cannot be recorded, and logs why', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ json: true, destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) });
    const kysely = new KyselyAcmeAccounts(store, box);
    const accounts = { accountKey: kysely.accountKey.bind(kysely), recordAccountUrl: async () => Promise.reject(new Error('the disk is full')) };
    const cert = await new AcmeIssuer({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, accounts, solvers: [alpn], backoff: { minMs: 50, maxMs: 500 }, logger }).issue([`noted.${RELAY}`]);
    assert.equal(await trustedFor(cert, `noted.${RELAY}`, pebble.rootPem), true);
    const line = lines.find((l) => String(l.msg).startsWith('recording the ACME account URL'));
    assert.match(String(line?.msg), new RegExp(`recording the ACME account URL for ${pebble.directoryUrl.replace(/[.?]/g, '\\$&')} failed: the disk is full`));
  });

  it('asks for renewal information only where the CA offers it (Pebble 2.4 does not)', async () => {
    const cert = await issuer([alpn]).issue([`ari.${RELAY}`]);
    assert.equal(await issuer([alpn]).renewalHint(cert.chainPem), undefined);
  });
});

describe('ACME helpers', () => {
  it('computes the RFC 9773 certificate identifier (the RFC example)', () => {
    assert.equal(ariCertIdFromParts('69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4', '00:87:65:43:21'), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });
  it('resolves directory presets', () => {
    assert.equal(resolveAcmeDirectory('letsencrypt'), 'https://acme-v02.api.letsencrypt.org/directory');
    assert.match(resolveAcmeDirectory('letsencrypt-staging'), /staging/);
    assert.throws(() => resolveAcmeDirectory('nope'), /neither a URL/);
  });
});
