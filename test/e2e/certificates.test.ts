import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { DnsServer } from '../../src/dns/server.ts';
import { DnsServer as Dns, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { launchBrowser } from '../support/browser.ts';
import { startForwarder, type ZoneRoute } from '../support/dns-forwarder.ts';
import { startPebble, type Pebble } from '../support/pebble.ts';
import { freePort } from '../support/ports.ts';
import { createToken, startAgent, startCli, tmpDir, until, type AgentHandle, type Proc, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Certificates through the real relay process, against a real Pebble, beyond what
// domains.test.ts covers (DNS-01 wildcards): HTTP-01 answered on the relay's plain-HTTP port,
// TLS-ALPN-01 answered by the relay's TLS edge, renewal with a moved clock
// (TUNN_TEST_CLOCK_FILE) without dropping a kept-alive connection, a CA outage and recovery,
// and a real Chromium trusting the per-run Pebble root through an NSS db.
//
// One Pebble serves two relays: its VA connects for tls-alpn-01 to relay A's HTTPS port and
// for http-01 to relay B's HTTP port, so a relay that answered the other challenge type would
// fail validation. Relay A prefers tls-alpn-01 (dns-01 for its custom domain's wildcard),
// relay B answers http-01 only.

const A = 'tunn.localhost';
const B = 'edge.localhost';
const DOMAIN = 'apps.example.test';
const run = promisify(execFile);

interface Cert {
  name: string;
  status: string;
  issuer: string;
  renewAt: string;
  lastError: string | null;
  nextRetryAt: string | null;
  certificateRef: string;
}

interface Peer {
  authorized: boolean;
  serial?: string;
  san?: string;
  issuer?: string;
  error?: string;
}

/** A TLS handshake with `servername`: the served certificate and whether `ca` verifies it. */
async function handshake(port: number, servername: string, ca: string): Promise<Peer> {
  const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  try {
    await Promise.race([once(s, 'secureConnect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
    const peer = s.getPeerCertificate();
    return { authorized: s.authorized, serial: peer.serialNumber, san: peer.subjectaltname, issuer: String(peer.issuer?.CN ?? ''), error: s.authorizationError ? String(s.authorizationError) : undefined };
  } catch (err) {
    return { authorized: false, error: (err as Error).message };
  } finally {
    s.destroy();
  }
}

/** A GET to `https://host:port/path` over loopback, optionally on a kept-alive agent. */
function get(port: number, host: string, path: string, ca: string, agent: https.Agent | false = false): Promise<{ status: number; body: string; reused: boolean; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername: host, path, headers: { host: `${host}:${port}` }, ca, agent }, (res) => {
      const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber; // a kept-alive socket is detached at 'end'
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, reused: req.reusedSocket, serial }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('certificates through the relay (Pebble: HTTP-01, TLS-ALPN-01, renewal, CA outage, browser)', () => {
  const dir = tmpDir('tunn-certs-e2e-');
  const customer = new Zone('example.test');
  const routes: ZoneRoute[] = [];
  const clockFile = join(dir.path, 'clock-offset-ms');
  const rootFile = join(dir.path, 'pebble-roots.pem');
  const roots: string[] = [];
  let customerDns: DnsServer;
  let forwarder: DnsServer;
  let pebble: Pebble;
  let origin: Origin;
  let relayA: RelayHandle;
  let relayB: RelayHandle;
  const procs: Proc[] = [];
  const agents: AgentHandle[] = [];
  let token: string;

  const api = () => ['--relay', relayA.url, '--token', token, '--relay-ca', rootFile, '--json'];
  /** `tunn cert list --json` on relay A. */
  const certList = async (): Promise<Cert[]> => {
    const p = startCli(['cert', 'list', ...api()]);
    assert.equal(await p.exited, 0, p.stderr.join('\n'));
    return p.lines[0]!.certs as Cert[];
  };
  /** GET /v1/certs directly (for polling without starting a CLI process each time). */
  /** Every "requesting a certificate" in the relay's log has its "issued" or "failed" line. */
  const noOrderInFlight = (lines: Record<string, unknown>[]): boolean => {
    const open = new Map<string, number>();
    for (const l of lines) {
      const names = Array.isArray(l.names) ? l.names.join(',') : undefined;
      const msg = String(l.msg ?? '');
      if (!names) continue;
      if (msg.startsWith('requesting a certificate')) open.set(names, (open.get(names) ?? 0) + 1);
      else if (msg === 'certificate issued' || / failed: /.test(msg)) open.set(names, (open.get(names) ?? 0) - 1);
    }
    return [...open.values()].every((n) => n <= 0);
  };
  const certsNow = async (): Promise<Cert[]> => {
    const r = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: relayA.httpsPort, servername: A, path: '/v1/certs', headers: { host: `${A}:${relayA.httpsPort}`, authorization: `Bearer ${token}` }, ca: roots, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /v1/certs: ${res.statusCode} ${body}`))));
      });
      req.on('error', reject);
      req.end();
    });
    return (JSON.parse(r) as { certs: Cert[] }).certs;
  };
  /** Moves relay A's certificate clock to `offsetMs` ahead of real time (it then runs a maintenance pass). */
  const setClock = (offsetMs: number) => writeFileSync(clockFile, String(Math.ceil(offsetMs)));
  const trust = (pem: string) => {
    roots.push(pem);
    writeFileSync(rootFile, roots.join('\n'));
  };

  async function startRelay(domain: string, httpsPort: number, httpPort: number, extra: string[], env?: NodeJS.ProcessEnv): Promise<RelayHandle> {
    const dataDir = join(dir.path, domain);
    const dnsPort = await freePort();
    routes.push({ zone: domain, server: { host: '127.0.0.1', port: dnsPort } });
    const proc = startCli(
      [
        'relay', '--domain', domain, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', dataDir, '--json',
        '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test',
        '--dns-port', String(dnsPort), '--dns-resolver', `127.0.0.1:${forwarder.port}`, '--public-ip', '127.0.0.1', '--relay-certs', 'per-host', ...extra,
      ],
      { env },
    );
    procs.push(proc);
    const ready = await proc.waitFor((l) => l.event === 'ready', 40_000);
    // Ready comes once the listeners are up; these tests start with the relay's certificate in place.
    if (ready.certificate === 'pending') await proc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 40_000);
    return { proc, dataDir, domain, httpsPort, httpPort: Number(ready.httpPort), caPath: rootFile, ca: pebble.rootPem, url: `https://${domain}:${httpsPort}`, stop: () => proc.kill() };
  }

  before(async () => {
    customerDns = new Dns({ handler: authoritativeHandler([customer]), authoritative: true });
    await customerDns.listen(0, '127.0.0.1');
    routes.push({ zone: 'example.test', server: { host: '127.0.0.1', port: customerDns.port } });
    forwarder = await startForwarder(() => routes);
    const [aHttps, aHttp, bHttps, bHttp] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // The VA's tls-alpn-01 goes to relay A's edge, its http-01 to relay B's plain-HTTP port.
    pebble = await startPebble({ dnsServer: `127.0.0.1:${forwarder.port}`, tlsPort: aHttps, httpPort: bHttp });
    writeFileSync(join(dir.path, 'pebble-https-ca.pem'), pebble.httpsCaPem);
    trust(pebble.rootPem);
    writeFileSync(clockFile, '0');
    origin = await startOrigin();
    [relayA, relayB] = await Promise.all([
      startRelay(A, aHttps, aHttp, ['--acme-challenge', 'tls-alpn-01,dns-01'], { TUNN_TEST_CLOCK_FILE: clockFile }),
      startRelay(B, bHttps, bHttp, ['--acme-challenge', 'http-01']),
    ]);
    token = await createToken(relayA, 'owner@example.test');
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(procs.map((p) => p.kill()));
    await pebble?.stop();
    await origin?.close();
    await Promise.all([customerDns?.close(), forwarder?.close()]);
    dir.remove();
  });

  it("HTTP-01: relay B's plain-HTTP port answers Pebble, and a visitor gets the per-host certificate", async () => {
    const bToken = await createToken(relayB, 'web@example.test');
    agents.push(await startAgent(relayB, bToken, origin.port, ['-n', 'web', '--public']));
    const { stdout } = await run('curl', ['-sS', '--max-time', '30', '--cacert', rootFile, '--resolve', `web.${B}:${relayB.httpsPort}:127.0.0.1`, `https://web.${B}:${relayB.httpsPort}/echo?via=http01`]);
    assert.equal((JSON.parse(stdout) as { url: string }).url, '/echo?via=http01');
    const h = await handshake(relayB.httpsPort, `web.${B}`, pebble.rootPem);
    assert.equal(h.authorized, true, h.error);
    assert.equal(h.san, `DNS:web.${B}`);
    assert.match(h.issuer ?? '', /Pebble/);
    const presented = relayB.proc.lines.filter((l) => l.challenge !== undefined);
    assert.ok(presented.some((l) => l.identifier === `web.${B}` && l.challenge === 'http-01'), JSON.stringify(presented));
    assert.ok(presented.every((l) => l.challenge === 'http-01'), JSON.stringify(presented));
  });

  it("TLS-ALPN-01: relay A's TLS edge answers acme-tls/1 for its own names (else Pebble would not issue)", async () => {
    agents.push(await startAgent(relayA, token, origin.port, ['-n', 'grafana', '--public']));
    const r = await get(relayA.httpsPort, `grafana.${A}`, '/echo?via=alpn', pebble.rootPem);
    assert.equal(r.status, 200);
    const h = await handshake(relayA.httpsPort, `grafana.${A}`, pebble.rootPem);
    assert.equal(h.authorized, true, h.error);
    assert.equal(h.san, `DNS:grafana.${A}`);
    // Pebble offers every type for a plain name; the relay picked tls-alpn-01, and the VA
    // (tlsPort = relay A's HTTPS port) validated it there: the edge negotiated acme-tls/1.
    const presented = relayA.proc.lines.filter((l) => l.challenge !== undefined);
    for (const name of [A, `grafana.${A}`]) assert.ok(presented.some((l) => l.identifier === name && l.challenge === 'tls-alpn-01'), `${name}: ${JSON.stringify(presented)}`);
    assert.ok(!presented.some((l) => l.challenge === 'http-01'), JSON.stringify(presented));
  });

  it('a custom domain on relay A gets its wildcard by DNS-01, and Chromium trusts it through an NSS db with the Pebble root', async () => {
    const add = startCli(['domain', 'add', DOMAIN, '--no-wait', ...api()]);
    assert.equal(await add.exited, 0, add.stderr.join('\n'));
    for (const rec of add.lines[0]!.records as { name: string; type: 'CNAME'; value: string }[]) customer.add(rec);
    const verify = startCli(['domain', 'verify', DOMAIN, ...api()]);
    assert.equal(await verify.exited, 0, verify.stderr.join('\n'));
    agents.push(await startAgent(relayA, token, origin.port, ['-n', 'grafana', '-d', DOMAIN, '--public']));

    // A throwaway HOME whose NSS db trusts this run's Pebble root: no certificate errors ignored.
    const home = join(dir.path, 'home');
    mkdirSync(join(home, '.pki', 'nssdb'), { recursive: true });
    const db = `sql:${join(home, '.pki', 'nssdb')}`;
    await run('certutil', ['-d', db, '-N', '--empty-password']);
    await run('certutil', ['-d', db, '-A', '-t', 'C,,', '-n', 'tunn-test-pebble-root', '-i', rootFile]);
    const browser = await launchBrowser({ env: { HOME: home } });
    try {
      const page = await browser.newPage();
      const url = `https://grafana.${DOMAIN}:${relayA.httpsPort}/echo?via=chromium`;
      const res = await page.goto(url);
      assert.equal(res?.status(), 200);
      const echo = JSON.parse(await page.locator('body').innerText()) as { url: string; headers: Record<string, string> };
      assert.equal(echo.url, '/echo?via=chromium');
      assert.equal(echo.headers.host, `grafana.${DOMAIN}:${relayA.httpsPort}`);
      const sec = await res!.securityDetails();
      assert.equal(sec?.subjectName, `*.${DOMAIN}`);
      assert.match(sec?.issuer ?? '', /Pebble/);
    } finally {
      await browser.close();
    }
    const presented = relayA.proc.lines.filter((l) => l.identifier === DOMAIN);
    assert.ok(presented.length > 0 && presented.every((l) => l.wildcard === true && l.challenge === 'dns-01'), JSON.stringify(presented));
  });

  it('renewal: with the clock past 2/3 of the lifetime, every certificate is renewed and a kept-alive connection stays up', async () => {
    const host = `grafana.${DOMAIN}`;
    const keep = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(relayA.httpsPort, host, '/echo?n=1', pebble.rootPem, keep);
      assert.equal(first.status, 200);
      const before = await certList();
      assert.deepEqual(before.map((c) => c.name).sort(), [`*.${DOMAIN}`, A, `grafana.${A}`].sort());
      assert.ok(before.every((c) => c.status === 'issued'), JSON.stringify(before));
      const latestRenewAt = Math.max(...before.map((c) => Date.parse(c.renewAt)));
      setClock(latestRenewAt - Date.now() + 1000);
      await until(async () => {
        const now = await certsNow();
        return before.every((b) => now.some((c) => c.name === b.name && c.certificateRef !== b.certificateRef && c.status === 'issued'));
      }, 30_000, 'every certificate renewed');
      setClock(0); // back to real time: the new certificates are not due
      const renewed = await handshake(relayA.httpsPort, host, pebble.rootPem);
      assert.equal(renewed.authorized, true, renewed.error);
      assert.notEqual(renewed.serial, first.serial, 'a new certificate is served to new connections');
      const second = await get(relayA.httpsPort, host, '/echo?n=2', pebble.rootPem, keep);
      assert.equal(second.status, 200);
      assert.equal(second.reused, true, 'the connection opened before the renewal is still the one in use');
      assert.equal(second.serial, first.serial, 'that connection still has the certificate it started with');
      assert.equal((JSON.parse(second.body) as { url: string }).url, '/echo?n=2');
      const events = startCli(['domain', 'show', DOMAIN, ...api()]);
      assert.equal(await events.exited, 0);
      assert.ok((events.lines[0]!.events as { kind: string }[]).some((e) => e.kind === 'renewed'));
    } finally {
      keep.destroy();
    }
  });

  it('a CA that is down: tls_error with the reason and a retry, the last good certificate still served; recovery once the CA is back', async () => {
    const host = `grafana.${DOMAIN}`;
    // A renewal that the previous test's moved clock started may still be in flight. Let it
    // finish first: it would replace the certificate this test calls the last good one, and
    // against a stopped CA it would keep retrying for longer than this test waits.
    await until(async () => noOrderInFlight(relayA.proc.lines), 30_000, 'no certificate order in flight');
    const oldRoot = pebble.rootPem;
    await pebble.stop();
    // The last good certificate is the one served once the CA is gone (an order that slipped in
    // between the wait above and the stop can no longer replace it).
    await until(async () => noOrderInFlight(relayA.proc.lines), 30_000, 'no certificate order in flight');
    const before = await certsNow();
    setClock(Math.max(...before.map((c) => Date.parse(c.renewAt))) - Date.now() + 1000);
    await until(async () => (await certsNow()).every((c) => c.status === 'tls_error'), 30_000, 'every certificate in tls_error');
    // Every renewal has now failed against the stopped CA, so nothing can replace what is served:
    // that is the last good certificate (taken here, not before: an order finishing just before the
    // stop could still replace an earlier one; seen in CI).
    const good = await handshake(relayA.httpsPort, host, oldRoot);
    assert.equal(good.authorized, true, good.error);

    const failing = await certList();
    const wildcard = failing.find((c) => c.name === `*.${DOMAIN}`)!;
    assert.equal(wildcard.status, 'tls_error');
    assert.match(wildcard.lastError ?? '', /cannot reach the ACME server: .*ECONNREFUSED/);
    assert.ok(wildcard.nextRetryAt && Date.parse(wildcard.nextRetryAt) > Date.parse(wildcard.renewAt), JSON.stringify(wildcard));
    assert.equal(wildcard.certificateRef, before.find((c) => c.name === wildcard.name)!.certificateRef, 'the stored certificate is kept');
    const shown = startCli(['domain', 'show', DOMAIN, ...api()]);
    assert.equal(await shown.exited, 0);
    const d = shown.lines[0]!.domain as { tls: { status: string; failureCount: number; nextRetryAt: string | null } };
    assert.equal(d.tls.status, 'tls_error');
    assert.ok(d.tls.failureCount >= 1);
    assert.equal(d.tls.nextRetryAt, wildcard.nextRetryAt);
    assert.ok((shown.lines[0]!.events as { kind: string }[]).some((e) => e.kind === 'retry_scheduled'));
    // The failure is also an ops event the domain's owner sees in `tunn events`.
    const evs = startCli(['events', '--kind', 'cert_alert', ...api()]);
    assert.equal(await evs.exited, 0, evs.stderr.join('\n'));
    const alerts = evs.lines[0]!.events as { kind: string; tunnel: string | null; detail: string }[];
    assert.ok(alerts.some((e) => e.tunnel === DOMAIN && /issue_failed: .*ACME server/.test(e.detail)), JSON.stringify(alerts));
    // Visitors still get the last good certificate.
    const still = await handshake(relayA.httpsPort, host, oldRoot);
    assert.equal(still.authorized, true, still.error);
    assert.equal(still.serial, good.serial);
    assert.equal((await get(relayA.httpsPort, host, '/echo?during=outage', oldRoot)).status, 200);

    // The CA comes back (a new root), and the clock moves past the scheduled retries.
    await pebble.start();
    trust(pebble.rootPem);
    setClock(Math.max(...failing.map((c) => Date.parse(c.nextRetryAt!))) - Date.now() + 1000);
    await until(async () => (await certsNow()).every((c) => c.status === 'issued' && c.lastError === null), 30_000, 'every certificate issued again');
    setClock(0);
    const after = await certList();
    assert.ok(after.every((c) => c.status === 'issued' && c.nextRetryAt === null), JSON.stringify(after));
    const recovered = await handshake(relayA.httpsPort, host, pebble.rootPem);
    assert.equal(recovered.authorized, true, recovered.error);
    assert.notEqual(recovered.serial, good.serial);
    assert.equal((await get(relayA.httpsPort, host, '/echo?after=recovery', pebble.rootPem)).status, 200);
  });

  it("a CA that rejects: tls_error with the CA's own words, the last good certificate served, then issued after the DNS fix and `tunn domain verify`", async () => {
    const host = `grafana.${DOMAIN}`;
    const name = `*.${DOMAIN}`;
    const good = await handshake(relayA.httpsPort, host, pebble.rootPem);
    assert.equal(good.authorized, true, good.error);
    // The customer breaks the _acme-challenge delegation: Pebble's DNS-01 validation fails.
    const delegation = customer.records(`_acme-challenge.${DOMAIN}`);
    assert.equal(delegation.length, 1);
    customer.remove(`_acme-challenge.${DOMAIN}`, 'CNAME');
    const before = (await certsNow()).find((c) => c.name === name)!;
    setClock(Date.parse(before.renewAt) - Date.now() + 1000);
    await until(async () => (await certsNow()).find((c) => c.name === name)?.status === 'tls_error', 30_000, `${name} in tls_error`);
    const failed = (await certList()).find((c) => c.name === name)!;
    assert.match(failed.lastError ?? '', /No TXT records found/, 'the CA explains what it did not find');
    assert.ok(failed.nextRetryAt, JSON.stringify(failed));
    assert.equal(failed.certificateRef, before.certificateRef);
    const still = await handshake(relayA.httpsPort, host, pebble.rootPem);
    assert.equal(still.authorized, true, still.error);
    assert.equal(still.serial, good.serial);

    // Back to real time; the customer restores the record and asks for a check, which retries at once.
    setClock(0);
    customer.add(delegation[0]!);
    const verify = startCli(['domain', 'verify', DOMAIN, ...api()]);
    assert.equal(await verify.exited, 0, verify.stderr.join('\n'));
    await until(async () => {
      const c = (await certsNow()).find((x) => x.name === name);
      return c?.status === 'issued' && c.certificateRef !== before.certificateRef;
    }, 30_000, `${name} issued again`);
    const fixed = await handshake(relayA.httpsPort, host, pebble.rootPem);
    assert.equal(fixed.authorized, true, fixed.error);
    assert.notEqual(fixed.serial, good.serial);
  });
});
