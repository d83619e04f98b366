import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
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
import { ariCertId, fetchRenewalWindow, renewalInfoUrl } from '../../acme/ari.ts';
import { createCa, issueLeaf } from '../../certs/dev-ca.ts';
import { AgentAcme, ARI_POLL, renewalDueAt, type AgentAcmeOptions } from './acme-agent.ts';
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

  it('a CA without ARI (Pebble 2.4 has no renewalInfo): renewal at 2/3 of the lifetime, asked again in a day', async () => {
    const clock = new ManualClock();
    const c = await agent(mkdtempSync(join(tmpdir(), 'tunn-agent-tls-')), { clock }).ensure(NAME);
    assert.equal(await renewalInfoUrl(pebble.directoryUrl), undefined, 'the installed Pebble offers no renewalInfo (if it starts to, test ARI against it directly)');
    assert.deepEqual(c.renewal, { at: renewalDueAt(c), source: 'lifetime', checkAgainAt: clock.now() + ARI_POLL.maxMs });
  });

  /**
   * An ARI front on Pebble (closed after the test) suggesting a one-day window that starts in ten days and answering
   * `retryAfter`; a fresh state dir and a manual clock.
   */
  async function ariSetup(retryAfter: string) {
    const ca = await ariFront(pebble);
    after(() => ca.close());
    const dir = mkdtempSync(join(tmpdir(), 'tunn-agent-tls-'));
    const clock = new ManualClock();
    const start = clock.now() + 10 * 86_400_000;
    ca.window = { start, end: start + 86_400_000 };
    ca.retryAfter = retryAfter;
    return { ca, dir, clock, start };
  }

  it('ARI (RFC 9773) where the CA offers it: renews at a time in the suggested window, re-asks per Retry-After (floor and ceiling), keeps the last window when asking fails, and the new order names what it replaces', async () => {
    const { ca, dir, clock, start } = await ariSetup('1'); // Retry-After below the floor: asked again in a minute, not a second
    const a = agent(dir, { directory: ca.directoryUrl, caPem: ca.caPem, clock });
    const first = await a.ensure(NAME);
    const id = ariCertId(first.chainPem)!;
    assert.deepEqual(ca.asked, [id], 'the renewal information of this certificate, by its RFC 9773 id');
    assert.equal(ca.orders[0]!.replaces, undefined, 'a first order replaces nothing');
    const plan = first.renewal!;
    assert.equal(plan.source, 'ari');
    assert.ok(plan.at >= start && plan.at < start + 86_400_000, 'a time inside the window');
    assert.equal(plan.checkAgainAt, clock.now() + ARI_POLL.minMs);
    // Not due: the stored certificate is served; asked again once checkAgainAt came, the same window keeps the time picked.
    ca.retryAfter = String(30 * 86_400); // above the ceiling: asked again within a day
    clock.advance(ARI_POLL.minMs);
    const store = new AgentCertStore(dir, box);
    assert.deepEqual(await a.renewDue([NAME]), []);
    const same = store.load(NAME)!;
    assert.equal(same.chainPem, first.chainPem);
    assert.deepEqual(ca.asked, [id, id]);
    assert.deepEqual([same.renewal!.at, same.renewal!.checkAgainAt], [plan.at, clock.now() + ARI_POLL.maxMs]);
    // The CA cannot answer: its last window stands, asked again within the hour.
    ca.fail = true;
    clock.advance(ARI_POLL.maxMs);
    assert.deepEqual(await a.renewDue([NAME]), []);
    const kept = store.load(NAME)!;
    assert.equal(kept.chainPem, first.chainPem);
    assert.deepEqual([kept.renewal!.source, kept.renewal!.at, kept.renewal!.checkAgainAt], ['ari', plan.at, clock.now() + ARI_POLL.afterFailureMs]);
    // The CA moves the window into the past (e.g. a revocation coming): renewed at once, the order saying which certificate it replaces.
    ca.fail = false;
    ca.windows[id] = { start: clock.now() - 7_200_000, end: clock.now() - 3_600_000 };
    clock.advance(ARI_POLL.afterFailureMs);
    assert.deepEqual(await a.renewDue([NAME]), [NAME]);
    const renewed = store.load(NAME)!;
    assert.notEqual(renewed.chainPem, first.chainPem);
    assert.equal(renewed.renewal!.source, 'ari');
    assert.ok(renewed.renewal!.at >= start, 'the new certificate has its own (future) window');
    assert.equal(ca.orders.length, 2);
    assert.equal(ca.orders[1]!.replaces, id);
    // The restarted agent (a new AgentAcme on the same files) keeps the stored plan: no new order.
    const again = await agent(dir, { directory: ca.directoryUrl, caPem: ca.caPem, clock }).ensure(NAME);
    assert.equal(again.chainPem, renewed.chainPem);
    assert.equal(ca.orders.length, 2);
  });

  // Availability: after a restart, a CA that never answers its renewal information must not delay serving the stored
  // certificate (with --no-fallback or a private tunnel that would be an outage); the ask has its own time limit.
  it('a restart serves the stored certificate at once while the CA hangs on renewal information; the ask gives up after its timeout', async () => {
    const { ca, dir, clock } = await ariSetup('60');
    const first = await agent(dir, { directory: ca.directoryUrl, caPem: ca.caPem, clock }).ensure(NAME);
    ca.hang = true;
    clock.advance(ARI_POLL.maxMs); // the stored plan wants a new ask
    const asked = ca.asked.length;
    let timer: NodeJS.Timeout | undefined;
    const served = await Promise.race([
      agent(dir, { directory: ca.directoryUrl, caPem: ca.caPem, clock }).ensure(NAME),
      new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 8_000))),
    ]);
    clearTimeout(timer);
    assert.notEqual(served, 'hung', 'ensure() waited for a CA that never answers');
    assert.equal((served as typeof first).chainPem, first.chainPem);
    // The plan is still asked for, in the background (the test can fail: the CA did get the ask).
    for (const end = Date.now() + 10_000; ca.asked.length === asked && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.equal(ca.asked.length, asked + 1);
    // The ask itself gives up (ARI_TIMEOUT_MS is 10 s; a short one here).
    await assert.rejects(fetchRenewalWindow(ca.directoryUrl, first.chainPem, clock.now(), 300), /did not answer within 0.3 s/);
  });
});

/**
 * A CA that offers ARI: a real HTTPS front for Pebble (which has no renewalInfo). It forwards
 * every ACME request to Pebble with the Host kept (Pebble builds its URLs from it, so the client
 * stays on the front), adds `renewalInfo` to the directory, answers renewal information with
 * `windows[id] ?? window` and `retryAfter` (500 with `fail`, never with `hang`), and keeps the newOrder payloads it forwarded.
 */
async function ariFront(pebble: Pebble) {
  const tlsCa = await createCa('tunn ARI front test CA');
  const leafCert = await issueLeaf(tlsCa, ['127.0.0.1']);
  const pebbleUrl = new URL(pebble.directoryUrl);
  const state = { window: { start: 0, end: 0 }, windows: {} as Record<string, { start: number; end: number }>, retryAfter: '21600', fail: false, hang: false, asked: [] as string[], orders: [] as Record<string, unknown>[] };
  const srv = createHttpsServer({ cert: leafCert.certPem, key: leafCert.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? '/';
      if (path.startsWith('/renewal-info/')) {
        const id = path.slice('/renewal-info/'.length);
        state.asked.push(id);
        if (state.hang) return; // never answered
        const w = state.windows[id] ?? state.window;
        if (state.fail) return void res.writeHead(500, { 'content-type': 'application/problem+json' }).end('{"type":"urn:ietf:params:acme:error:serverInternal","detail":"try later"}');
        res.writeHead(200, { 'content-type': 'application/json', 'retry-after': state.retryAfter });
        return void res.end(JSON.stringify({ suggestedWindow: { start: new Date(w.start).toISOString(), end: new Date(w.end).toISOString() } }));
      }
      if (path === '/order-plz' && body.length) {
        const jws = JSON.parse(body.toString()) as { payload: string };
        state.orders.push(JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<string, unknown>);
      }
      const up = httpsRequest({ host: pebbleUrl.hostname, port: pebbleUrl.port, method: req.method, path, headers: req.headers, ca: pebble.httpsCaPem }, (r) => {
        const chunks2: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks2.push(c));
        r.on('end', () => {
          let out = Buffer.concat(chunks2);
          const headers = { ...r.headers };
          if (path === '/dir') {
            const d = JSON.parse(out.toString()) as Record<string, unknown>;
            out = Buffer.from(JSON.stringify({ ...d, renewalInfo: `https://${req.headers.host}/renewal-info` }));
            delete headers['content-length'];
          }
          res.writeHead(r.statusCode ?? 502, headers).end(out);
        });
      });
      up.on('error', () => res.writeHead(502).end());
      up.end(body);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return Object.assign(state, {
    directoryUrl: `https://127.0.0.1:${(srv.address() as AddressInfo).port}/dir`,
    caPem: tlsCa.certPem,
    close: () => {
      srv.closeAllConnections();
      srv.close();
    },
  });
}
