import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Zone } from '../../src/dns/zone.ts';
import type { DnsServer } from '../../src/dns/server.ts';
import type { ZoneRoute } from '../support/dns-forwarder.ts';
import type { Pebble } from '../support/pebble.ts';
import { startPebbleRelayDns } from '../support/pebble-relay-dns.ts';
import { createToken, startAgent, startCli, tmpDir, type AgentHandle, type Proc, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Custom domains end to end, with DNS as the internet would have it: the customer's zone on a
// test nameserver, the relay's zone on the relay's own DNS server, one forwarding resolver for
// Pebble and the relay's verifier. The real relay issues from a real Pebble.

const RELAY = 'tunn.localhost';
const DOMAIN = 'tunn.example.test';
const run = promisify(execFile);

/** Runs a CLI command to its end: exit code, JSON lines, stderr. */
async function cli(args: string[]): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  const p = startCli(args);
  const code = await p.exited;
  return { code, lines: p.lines, stderr: p.stderr.join('\n') };
}

/** A TLS handshake with `servername`: the peer certificate, or the error. */
async function handshake(port: number, servername: string, ca: string): Promise<{ authorized: boolean; san?: string; issuer?: string; error?: string }> {
  const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  try {
    await Promise.race([once(s, 'secureConnect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
    const peer = s.getPeerCertificate();
    return { authorized: s.authorized, san: peer.subjectaltname, issuer: String(peer.issuer?.CN ?? '') };
  } catch (err) {
    return { authorized: false, error: (err as Error).message };
  } finally {
    s.destroy();
  }
}

describe('custom domains end to end (Pebble, relay DNS, customer nameserver)', () => {
  const dir = tmpDir('tunn-domains-e2e-');
  const customer = new Zone('example.test');
  const routes: ZoneRoute[] = [];
  let customerDns: DnsServer;
  let forwarder: DnsServer;
  let pebble: Pebble;
  let relayProc: Proc;
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle | undefined;
  let ownerToken: string;
  let otherToken: string;
  let rootFile: string;
  let dnsPort: number;
  const api = (token: string) => ['--relay', relay.url, '--token', token, '--relay-ca', rootFile, '--json'];

  before(async () => {
    const world = await startPebbleRelayDns({ relayDomain: RELAY, customer, routes, dir: dir.path });
    ({ customerDns, forwarder, pebble, dnsPort, rootFile } = world);
    const { httpsPort, httpPort } = world;
    origin = await startOrigin();
    const dataDir = join(dir.path, 'relay');
    relayProc = startCli([
      'relay', '--domain', RELAY, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', dataDir, '--json',
      '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test',
      '--dns-port', String(dnsPort), '--dns-resolver', `127.0.0.1:${forwarder.port}`, '--public-ip', '127.0.0.1',
    ]);
    const ready = await relayProc.waitFor((l) => l.event === 'ready', 40_000);
    // Ready comes once the listeners are up; these tests start with the relay's certificate in place.
    if (ready.certificate === 'pending') await relayProc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 40_000);
    assert.equal(ready.dnsPort, dnsPort);
    relay = {
      proc: relayProc, dataDir, domain: RELAY, httpsPort, httpPort: Number(ready.httpPort), caPath: rootFile, ca: pebble.rootPem,
      url: `https://${RELAY}:${httpsPort}`, stop: () => relayProc.kill(),
    };
    ownerToken = await createToken(relay, 'owner@example.test');
    otherToken = await createToken(relay, 'other@example.test');
  });
  after(async () => {
    await agent?.stop();
    await relayProc?.kill();
    await pebble?.stop();
    await origin?.close();
    await Promise.all([customerDns?.close(), forwarder?.close()]);
    dir.remove();
  });

  it("the relay's own names are served with a wildcard Pebble issued through its own DNS (DNS-01)", async () => {
    const h = await handshake(relay.httpsPort, RELAY, pebble.rootPem);
    assert.equal(h.authorized, true, h.error);
    assert.match(h.san ?? '', new RegExp(`DNS:\\*\\.${RELAY.replace('.', '\\.')}`));
  });

  it('tunn domain add prints the records, waits visibly, and verifies once the customer creates them', async () => {
    const add = startCli(['domain', 'add', DOMAIN, '--interval', '0.2', ...api(ownerToken)]);
    const first = await add.waitFor((l) => l.event === 'domain');
    const records = first.records as { name: string; type: string; value: string }[];
    assert.equal(records[0]!.name, `*.${DOMAIN}`);
    assert.equal(`${records[0]!.type} ${records[0]!.value}`, `CNAME ${RELAY}`);
    assert.equal(records[1]!.name, `_acme-challenge.${DOMAIN}`);
    assert.match(records[1]!.value, new RegExp(`^[a-z0-9]+\\._acme\\.${RELAY.replace('.', '\\.')}$`));
    const waiting = await add.waitFor((l) => l.event === 'waiting');
    assert.ok((waiting.problems as string[]).some((p) => p.includes(`_acme-challenge.${DOMAIN} has no record yet`)), JSON.stringify(waiting));
    for (const r of records) customer.add({ name: r.name, type: r.type as 'CNAME', value: r.value });
    await add.waitFor((l) => l.event === 'verified', 20_000);
    assert.equal(await add.exited, 0);
  });

  it('an agent with -d serves https://grafana.<domain> with a certificate Pebble issued on demand', async () => {
    agent = await startAgent(relay, ownerToken, origin.port, ['-n', 'grafana', '-d', DOMAIN, '--public']);
    assert.equal(agent.url, `https://grafana.${DOMAIN}:${relay.httpsPort}`);
    const { stdout } = await run('curl', ['-sS', '--max-time', '30', '--cacert', rootFile, '--resolve', `grafana.${DOMAIN}:${relay.httpsPort}:127.0.0.1`, `https://grafana.${DOMAIN}:${relay.httpsPort}/echo?via=curl`]);
    const echo = JSON.parse(stdout) as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/echo?via=curl');
    assert.equal(echo.headers.host, `grafana.${DOMAIN}:${relay.httpsPort}`);
    const h = await handshake(relay.httpsPort, `other.${DOMAIN}`, pebble.rootPem);
    assert.equal(h.authorized, true, h.error);
    assert.equal(h.san, `DNS:*.${DOMAIN}`);
    const certs = await cli(['cert', 'list', ...api(ownerToken)]);
    const entry = (certs.lines[0]!.certs as { name: string; status: string; issuer: string; lastError: string | null }[]).find((c) => c.name === `*.${DOMAIN}`);
    assert.equal(entry?.status, 'issued');
    assert.match(entry!.issuer, /^acme:https:\/\/127\.0\.0\.1:\d+\/dir$/);
    const show = await cli(['domain', 'show', DOMAIN, ...api(ownerToken)]);
    const d = show.lines[0]!.domain as { owner: string; status: string; tls: { status: string } };
    assert.equal(d.owner, 'owner@example.test');
    assert.equal(d.status, 'verified');
    assert.equal(d.tls.status, 'issued');
  });

  it('bad input: the relay zone, another account, missing records, unregistered SNI', async () => {
    const reserved = await cli(['domain', 'add', `team.${RELAY}`, '--no-wait', ...api(ownerToken)]);
    assert.equal(reserved.code, 1);
    assert.match(reserved.stderr, /inside the relay's own domain/);
    const taken = await cli(['domain', 'add', DOMAIN, '--no-wait', ...api(otherToken)]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /already registered to another account/);
    const bare = await cli(['domain', 'add', 'bare.example.test', '--no-wait', ...api(otherToken)]);
    assert.equal(bare.code, 0);
    assert.equal(bare.lines[0]!.verified, false);
    assert.ok((bare.lines[0]!.problems as string[]).some((p) => /\*\.bare\.example\.test has no record yet: create CNAME tunn\.localhost/.test(p)));
    const verify = await cli(['domain', 'verify', 'bare.example.test', ...api(otherToken)]);
    assert.equal(verify.code, 1);
    await assert.rejects(startAgent(relay, otherToken, origin.port, ['-n', 'x', '-d', 'bare.example.test']), /not verified yet/);
    const sni = await handshake(relay.httpsPort, 'www.bare.example.test', pebble.rootPem);
    assert.ok(sni.error, 'the handshake for an unverified domain must fail');
    const nobody = await handshake(relay.httpsPort, 'nobody.unknown.test', pebble.rootPem);
    assert.ok(nobody.error);
    const certs = await cli(['cert', 'list', ...api(otherToken)]);
    assert.equal((certs.lines[0]!.certs as { name: string }[]).some((c) => c.name.includes('bare') || c.name.includes('unknown')), false);
  });

  it('sharing: a shared user serves a tunnel on the domain without -d, but cannot manage it', async () => {
    assert.equal((await cli(['domain', 'share', DOMAIN, '@example.test', ...api(ownerToken)])).code, 0);
    const del = await cli(['domain', 'delete', DOMAIN, ...api(otherToken)]);
    assert.equal(del.code, 1);
    assert.match(del.stderr, /only the owner can delete/);
    // other@example.test also has the unverified bare.example.test: the one usable domain is the shared one.
    const shared = await startAgent(relay, otherToken, origin.port, ['-n', 'wiki', '--public']);
    try {
      assert.equal(shared.host, `wiki.${DOMAIN}`);
    } finally {
      await shared.stop();
    }
  });
});
