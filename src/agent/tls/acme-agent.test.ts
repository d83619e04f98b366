import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { configureAcmeHttp } from '../../acme/http-settings.ts';
import { TlsAlpn01Solver } from '../../acme/tls-alpn01.ts';
import { agentDns01 } from '../../dns/agent-dns01.ts';
import { ManualClock } from '../../lib/clock.ts';
import { SecretBox } from '../../lib/secret-box.ts';
import { customerZone, startDnsWorld, type DnsWorld } from '../../../test/support/dns-world.ts';
import { startPebble, type Pebble } from '../../../test/support/pebble.ts';
import { freePort } from '../../../test/support/ports.ts';
import { AgentAcme, renewalDueAt, type AgentAcmeOptions } from './acme-agent.ts';
import { answerTlsAlpn01 } from './alpn-responder.ts';
import { AgentCertStore } from './cert-store.ts';
import { TlsContexts } from './contexts.ts';
import { RequestedDns01Solver } from './dns01-requester.ts';
import { spkiPin } from './pin.ts';
import { TlsTerminator } from './terminator.ts';
import { passthrough, rawRequest, visitor } from './testing.ts';

// The agent's own ACME against a real Pebble: DNS-01 through the relay's zone (the relay's
// half, src/dns/agent-dns01.ts, in-process), TLS-ALPN-01 through a loopback port standing in
// for the relay's edge routing `acme-tls/1` to the agent.

const RELAY = 'relay.test';
const DOMAIN = 'tunn.example.test';
const NAME = `grafana.${RELAY}`;

describe('agent ACME against Pebble', () => {
  let world: DnsWorld;
  let pebble: Pebble;
  let alpnPort: Server;
  const alpn = new TlsAlpn01Solver();
  const box = new SecretBox(randomBytes(32));
  before(async () => {
    configureAcmeHttp({ retry: { maxAttempts: 0, defaultDelaySeconds: 0.05 } });
    world = await startDnsWorld({ relayDomain: RELAY, publicIps: ['127.0.0.1'], customerZones: [customerZone('example.test', DOMAIN, RELAY, 'a7x9k2')] });
    const tlsPort = await freePort();
    // The relay's edge would route a ClientHello with ALPN acme-tls/1 for the agent's host
    // to the agent as an `acme-tls-alpn` stream; here every connection to this port is one.
    alpnPort = createServer((s) => answerTlsAlpn01(s, alpn));
    alpnPort.listen(tlsPort, '127.0.0.1');
    await once(alpnPort, 'listening');
    pebble = await startPebble({ dnsServer: world.resolver, tlsPort, validitySeconds: 3 * 86400 });
  });
  after(async () => {
    await pebble?.stop();
    alpnPort?.close();
    await world?.close();
  });

  const relayDns = (holds: (h: string) => boolean) => new RequestedDns01Solver(agentDns01(world.relayZone, holds));
  const agent = (dir: string, over: Partial<AgentAcmeOptions> = {}) =>
    new AgentAcme({ directory: pebble.directoryUrl, caPem: pebble.httpsCaPem, store: new AgentCertStore(dir, box), solvers: [relayDns((h) => h === NAME)], clock: new ManualClock(), backoff: { minMs: 50, maxMs: 500 }, ...over });

  it('gets a certificate for a name under the relay zone by DNS-01 through the relay; keeps it sealed, 0600; a restart reuses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    const served: string[] = [];
    const a = agent(dir, { onCertificate: (c) => served.push(spkiPin(c.chainPem)) });
    const cert = await a.ensure(NAME);
    assert.equal(served.length, 1);
    assert.match(cert.chainPem, /BEGIN CERTIFICATE/);
    assert.equal(served[0], spkiPin(cert.chainPem));
    assert.deepEqual(world.relayZone.records(`_acme-challenge.${NAME}`), [], 'the relay removed the TXT record after');
    assert.match(a.accountUrl() ?? '', /^https:\/\/127\.0\.0\.1:\d+\/my-account\//);
    // Security: keys stay on the agent, sealed at rest in 0600 files.
    for (const sub of ['certs', 'acme']) {
      for (const f of readdirSync(join(dir, sub))) {
        const p = join(dir, sub, f);
        assert.equal(statSync(p).mode & 0o777, 0o600, p);
        assert.doesNotMatch(readFileSync(p, 'utf8'), /PRIVATE KEY/, `${p} holds a key in clear`);
      }
    }
    assert.equal(statSync(join(dir, 'certs')).mode & 0o777, 0o700);
    const again = await agent(dir).ensure(NAME);
    assert.equal(again.chainPem, cert.chainPem, 'the stored certificate, no new order');
  });

  it('refuses to publish TXT records for a name this agent does not hold', async () => {
    // Security: another agent cannot get DNS-01 records (and so a certificate) for a name it does not hold.
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    const a = agent(dir, { solvers: [relayDns((h) => h === 'mine.relay.test')] });
    await assert.rejects(a.ensure(NAME), (err: Error & { code?: string }) => err.code === 'CERT_ISSUE_FAILED' && /does not hold a tunnel for grafana\.relay\.test/.test(err.message));
    await assert.rejects(agentDns01(world.relayZone, () => true).present('_acme-challenge.other.zone.test', 'x'), /only ask for _acme-challenge/);
  });

  it('gets a certificate for a custom domain by TLS-ALPN-01 answered at the agent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    const cert = await agent(dir, { solvers: [alpn] }).ensure(`app.${DOMAIN}`);
    assert.match(cert.chainPem, /BEGIN CERTIFICATE/);
    assert.equal(alpn.has(`app.${DOMAIN}`), false, 'the challenge certificate is gone after');
  });

  it('renews at 2/3 of the lifetime (injected clock), --keep-key keeps the pin, and an open connection survives the swap', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    const clock = new ManualClock();
    const contexts = new TlsContexts();
    const keep = agent(dir, { clock, keepKey: true, onCertificate: (c) => contexts.set(c.name, c) });
    const first = await keep.ensure(NAME);
    const t = new TlsTerminator({ contexts, handler: { request: (_q, res) => res.end('ok'), upgrade: (_q, s) => s.destroy() } });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(() => (t.close(), pt.close()));
    const open = await visitor(pt.port, { servername: NAME, ca: pebble.rootPem });
    assert.deepEqual(await keep.renewDue([NAME]), [], 'not due yet');
    clock.set(renewalDueAt(first));
    assert.deepEqual(await keep.renewDue([NAME]), [NAME]);
    const second = keep.ensure(NAME);
    const renewed = await second;
    assert.notEqual(renewed.chainPem, first.chainPem);
    assert.equal(spkiPin(renewed.chainPem), spkiPin(first.chainPem), '--keep-key: same key, same pin');
    assert.equal((await rawRequest(open, `GET / HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`)).status, 200, 'the connection opened before the renewal still serves');
    const fresh = await visitor(pt.port, { servername: NAME, ca: pebble.rootPem });
    assert.equal(fresh.getPeerX509Certificate()!.serialNumber, new (await import('node:crypto')).X509Certificate(renewed.chainPem).serialNumber);
    open.destroy();
    fresh.destroy();
    // Without --keep-key a renewal brings a new key (and a new pin).
    const moving = agent(dir, { clock });
    clock.set(renewalDueAt(renewed));
    const other = await moving.obtain(NAME);
    assert.notEqual(spkiPin(other.chainPem), spkiPin(renewed.chainPem));
  });

  it('says why when the CA cannot be reached (the relay keeps terminating), and succeeds once it is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    await pebble.stop();
    try {
      await assert.rejects(agent(dir).ensure(NAME), (err: Error & { code?: string }) => err.code === 'CERT_ISSUE_FAILED' && /issuing a certificate for grafana\.relay\.test from https:\/\/127\.0\.0\.1:\d+\/dir: cannot reach the ACME server: connect ECONNREFUSED/.test(err.message));
    } finally {
      await pebble.start();
    }
    assert.match((await agent(dir).ensure(NAME)).chainPem, /BEGIN CERTIFICATE/);
  });
});
