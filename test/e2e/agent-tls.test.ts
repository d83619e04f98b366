import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { clientCertificate, leaf, rawRequest, testCa } from '../../src/agent/tls/testing.ts';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import { formTokenIn } from '../fixtures/identity.ts';
import { startOrigin, type Origin } from './origin.ts';
import { assertRelayNeverSaw, createToken, request, startAgent, startCli, startRelay, tmpDir, type AgentHandle, type RelayHandle } from './harness.ts';

// TLS that ends at the agent (issue 12), with real relay and agent processes: the agent serves
// its own certificate (--tls-cert files from a private CA here; ACME via Pebble is covered by
// src/agent/tls/acme-agent.test.ts), the relay only pipes the TLS bytes, and identity is still
// enforced, by the agent, with the relay as decision point over the control stream.

const OWNER = 'owner@agent-tls.test';

describe('e2e: TLS that ends at the agent', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let token: string;
  let dir: { path: string; remove(): void };
  let caPem: string;
  const agents: AgentHandle[] = [];

  /** A certificate for `names` from the test CA, as --tls-cert/--tls-key files. */
  async function certFiles(label: string, names: string[]): Promise<string[]> {
    const l = await leaf(await caP, names);
    const cert = join(dir.path, `${label}.pem`);
    const key = join(dir.path, `${label}.key`);
    writeFileSync(cert, l.chainPem);
    writeFileSync(key, l.keyPem);
    return ['--tls-cert', cert, '--tls-key', key];
  }
  let caP: ReturnType<typeof testCa>;

  async function agentAt(name: string, extra: string[]): Promise<AgentHandle> {
    const a = await startAgent(relay, token, origin.port, ['-n', name, '--terminate-at', 'agent', '--no-inspect', ...extra]);
    agents.push(a);
    return a;
  }

  /** The agent's `tls` event saying TLS ends there, once the relay routes accordingly (its log line). */
  async function atAgent(a: AgentHandle): Promise<Record<string, unknown>> {
    const ev = await a.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent');
    await relay.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === a.host);
    return ev;
  }

  /** Opens TLS to the relay's HTTPS port for `host` (trusting the test CA only). */
  async function visit(host: string): Promise<TLSSocket> {
    const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: caPem, ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    return s;
  }

  before(async () => {
    dir = tmpDir('tunn-e2e-agent-tls-');
    caP = testCa();
    caPem = (await caP).certPem;
    relay = await startRelay();
    origin = await startOrigin();
    token = await createToken(relay, OWNER);
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await relay?.stop();
    await origin?.close();
    dir?.remove();
  });

  it('the certificate a visitor sees is the agent’s (pin equal to the one it reports), and the relay stores none for the name', async () => {
    const host = `pin.${relay.domain}`;
    const a = await agentAt('pin', await certFiles('pin', [host]));
    const ev = await atAgent(a);
    const s = await visit(host);
    const served = s.getPeerX509Certificate()!;
    s.destroy();
    assert.equal(spkiPin(served.toString()), ev.pin, 'the served key is the one the agent reported');
    assert.match(served.issuer, /tunn agent-tls test CA/);
    // The relay never obtained (or stored) a certificate for this name.
    const db = new DatabaseSync(join(relay.dataDir, 'tunn.db'), { readOnly: true });
    try {
      const rows = db.prepare('SELECT name FROM certificates WHERE name = ?').all(host);
      assert.deepEqual(rows, []);
    } finally {
      db.close();
    }
    // `tunn cert list` merges the agent's report (where TLS ends, not-after, pin) with the relay's view.
    const list = startCli(['cert', 'list', '--relay', relay.url, '--relay-ca', relay.caPath, '--json'], { env: { TUNN_TOKEN: token } });
    assert.equal(await list.exited, 0, list.stderr.join('\n'));
    const row = (list.lines[0]!.agent as { name: string; terminatedAt: string; pin: string; notAfter: string; state: string }[]).find((r) => r.name === host);
    assert.deepEqual({ terminatedAt: row?.terminatedAt, pin: row?.pin, state: row?.state }, { terminatedAt: 'agent', pin: ev.pin, state: 'issued' });
    assert.equal(row?.notAfter, ev.notAfter);
    const text = startCli(['cert', 'list', '--relay', relay.url, '--relay-ca', relay.caPath], { env: { TUNN_TOKEN: token } });
    assert.equal(await text.exited, 0);
    assert.match(text.lines.map((l) => String(l.raw)).join('\n'), new RegExp(`${host.replaceAll('.', '\\.')} +agent.* issued .*sha256//`));
    // The console's /v1/certificates: terminatedAt agent and the pin.
    const api = await request(`${relay.url}/v1/certificates`, { ca: relay.ca, headers: { authorization: `Bearer ${token}` } });
    const view = (JSON.parse(api.text) as { certificates: { name: string; terminatedAt: string; pin: string | null }[] }).certificates.find((c) => c.name === host);
    assert.deepEqual({ terminatedAt: view?.terminatedAt, pin: view?.pin }, { terminatedAt: 'agent', pin: ev.pin });
  });

  it('identity at the agent: no session → relay login; signed in → the page, with Tunn-User-Email; plain HTTP → 308 to https', async () => {
    const host = `who.${relay.domain}`;
    const a = await agentAt('who', await certFiles('who', [host]));
    await atAgent(a);
    const url = `https://${host}:${relay.httpsPort}/`;
    const anon = await request(url, { ca: caPem, headers: { accept: 'text/html' } });
    assert.equal(anon.status, 302);
    assert.ok(String(anon.headers.location).startsWith(`${relay.url}/login`), String(anon.headers.location));
    const cookie = await signIn(relay, OWNER, url, caPem);
    const page = await request(url + 'hello', { ca: caPem, headers: { cookie } });
    assert.equal(page.status, 200, page.text);
    const echoed = JSON.parse(page.text) as { headers: Record<string, string> };
    assert.equal(echoed.headers['tunn-user-email'], OWNER);
    assert.ok(echoed.headers['tunn-jwt-assertion']);
    const plain = await request(`http://${host}:${relay.httpPort}/x?y=1`);
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, `https://${host}:${relay.httpsPort}/x?y=1`);
  });

  // Security property: the relay sees no request line, header or body of an agent-terminated host,
  // not even in the security events the agent reports to it about refused requests.
  it('MARKER: a unique marker in path, header and body never appears in anything the relay process writes (refusals the agent reports included)', async () => {
    const host = `mark.${relay.domain}`;
    const a = await agentAt('mark', await certFiles('mark', [host]));
    await atAgent(a);
    const url = `https://${host}:${relay.httpsPort}/`;
    const cookie = await signIn(relay, OWNER, url, caPem);
    const marker = `MRK${Date.now().toString(36)}x${Math.random().toString(36).slice(2)}`;
    const r = await request(`${url}${marker}/p`, { method: 'POST', ca: caPem, headers: { cookie, 'x-marker': marker }, body: `body-${marker}` });
    assert.equal(r.status, 200);
    assert.ok(origin.received.some((p) => p.includes(marker)), 'the origin got the request (the test can fail)');
    // A refused request too (no cookie): the agent answers it, the relay sees nothing.
    await request(`${url}${marker}/anon`, { ca: caPem, headers: { 'x-marker': marker } });
    // Refusals the agent reports to the relay's security events, the marker in what was refused:
    // a bad hand-off code (login_failed) and a Host other than the SNI (421, host_mismatch).
    const bad = await request(`${url}.tunn/auth/callback?code=${marker}`, { ca: caPem, headers: { 'x-marker': marker } });
    assert.equal(bad.status, 400);
    const s = await visit(host);
    const misdirected = await rawRequest(s, `GET /${marker} HTTP/1.1\r\nhost: ${marker}.evil.test\r\nx-marker: ${marker}\r\ncontent-length: ${marker.length}\r\n\r\n`, marker);
    s.destroy();
    assert.equal(misdirected.status, 421);
    type Ev = { kind: string; ip: string | null; tunnel: string | null; detail: string };
    let events: Ev[] = [];
    for (let i = 0; i < 50; i++) {
      const p = startCli(['events', '--tunnel', host, '--relay', relay.url, '--relay-ca', relay.caPath, '--json'], { env: { TUNN_TOKEN: token } });
      assert.equal(await p.exited, 0, p.stderr.join('\n'));
      events = p.lines[0]!.events as Ev[];
      if (['login_failed', 'host_mismatch'].every((k) => events.some((e) => e.kind === k))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const kind of ['login_failed', 'host_mismatch']) {
      const e = events.find((x) => x.kind === kind);
      assert.ok(e, `the relay recorded the agent's ${kind} event: ${JSON.stringify(events)}`);
      assert.equal(e.tunnel, host);
      assert.match(String(e.ip), /127\.0\.0\.1/);
      assert.match(e.detail, /^reported by the agent \(TLS ends there; address and email as the agent says, unverified\): /);
    }
    // The table marks the agent's word: its address is not one the relay observed.
    const table = startCli(['events', '--tunnel', host, '--kind', 'host_mismatch', '--relay', relay.url, '--relay-ca', relay.caPath], { env: { TUNN_TOKEN: token } });
    assert.equal(await table.exited, 0, table.stderr.join('\n'));
    assert.match(table.lines.map((l) => String(l.raw)).join('\n'), /host_mismatch\s+\S*127\.0\.0\.1 \(agent-said\)/);
    await assertRelayNeverSaw(relay, marker);
  });

  it('fallback: a name the agent has no certificate for is terminated by the relay, and the user is told why', async () => {
    const host = `fall.${relay.domain}`;
    const a = await agentAt('fall', await certFiles('fall', [`other.${relay.domain}`]));
    const ev = await a.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && typeof l.reason === 'string' && /not fall\./.test(String(l.reason)));
    assert.match(String(ev.reason), /--tls-cert is for other\./);
    const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: relay.ca });
    await once(s, 'secureConnect');
    assert.doesNotMatch(s.getPeerX509Certificate()!.issuer, /agent-tls test CA/);
    s.destroy();
  });

  it('--no-fallback: visitors fail the handshake while the agent has no certificate', async () => {
    const host = `nofb.${relay.domain}`;
    const a = await agentAt('nofb', [...(await certFiles('nofb', [`else.${relay.domain}`])), '--no-fallback']);
    await a.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && typeof l.reason === 'string' && /not nofb\./.test(String(l.reason)));
    for (const ca of [relay.ca, caPem]) {
      const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca });
      const outcome = await new Promise<string>((resolve) => {
        s.once('secureConnect', () => resolve('connected'));
        s.once('error', (e) => resolve(`failed: ${e.message}`));
        s.once('close', () => resolve('failed: closed'));
      });
      s.destroy();
      assert.match(outcome, /^failed/);
    }
  });

  // Security property: --client-ca holds while the agent's certificate is pending: it implies --no-fallback, so the relay
  // never ends TLS (without asking for a client certificate) and serves the site to anyone.
  it('--client-ca while the agent’s certificate is pending: no relay fallback, a visitor without a client certificate is never served', async () => {
    const host = `mtlsfb.${relay.domain}`;
    const clientCa = join(dir.path, 'client-ca-fb.pem');
    writeFileSync(clientCa, clientCertificate('bob.mtls.test').caPem);
    const a = await agentAt('mtlsfb', [...(await certFiles('mtlsfb', [`else2.${relay.domain}`])), '--client-ca', clientCa, '--public']);
    const pending = await a.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay');
    assert.match(String(pending.reason), /--client-ca implies --no-fallback/);
    await a.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && typeof l.reason === 'string' && /not mtlsfb\./.test(String(l.reason)));
    for (const ca of [relay.ca, caPem]) {
      const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca, ALPNProtocols: ['http/1.1'] });
      const outcome = await new Promise<string>((resolve) => {
        s.once('secureConnect', () => rawRequest(s, `GET / HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`).then((r) => resolve(`served ${r.status}`), () => resolve('refused')));
        s.once('error', () => resolve('refused'));
        s.once('close', () => resolve('refused'));
      });
      s.destroy();
      assert.equal(outcome, 'refused');
    }
  });

  it('--client-ca: a visitor without a client certificate fails the handshake at the agent, and the relay records client_cert_refused (reported by the agent)', async () => {
    const host = `mtls.${relay.domain}`;
    const client = clientCertificate('alice.mtls.test');
    const clientCa = join(dir.path, 'client-ca.pem');
    writeFileSync(clientCa, client.caPem);
    const a = await agentAt('mtls', [...(await certFiles('mtls', [host])), '--client-ca', clientCa, '--public']);
    await atAgent(a);
    const bare = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: caPem, ALPNProtocols: ['http/1.1'] });
    const outcome = await new Promise<string>((resolve) => {
      bare.once('secureConnect', () => rawRequest(bare, `GET / HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`).then((r) => resolve(`served ${r.status}`), () => resolve('refused')));
      bare.once('error', () => resolve('refused'));
    });
    bare.destroy();
    assert.equal(outcome, 'refused');
    const ok = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: caPem, cert: client.chainPem, key: client.keyPem, ALPNProtocols: ['http/1.1'] });
    await once(ok, 'secureConnect');
    assert.equal((await rawRequest(ok, `GET / HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\n\r\n`)).status, 200);
    ok.destroy();
    let found: { kind: string; tunnel: string | null; detail: string } | undefined;
    for (let i = 0; i < 50 && !found; i++) {
      const p = startCli(['events', '--kind', 'client_cert_refused', '--tunnel', host, '--relay', relay.url, '--relay-ca', relay.caPath, '--json'], { env: { TUNN_TOKEN: token } });
      assert.equal(await p.exited, 0, p.stderr.join('\n'));
      found = (p.lines[0]!.events as (typeof found & object)[])[0];
      if (!found) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(found, 'the relay recorded the refusal the agent reported');
    assert.match(found.detail, /^reported by the agent \(TLS ends there; address and email as the agent says, unverified\): client certificate missing or refused/);
  });

  it('kept-alive connections stay with the agent, each request passing its gate', async () => {
    const host = `keep.${relay.domain}`;
    const a = await agentAt('keep', await certFiles('keep', [host]));
    await atAgent(a);
    const cookie = await signIn(relay, OWNER, `https://${host}:${relay.httpsPort}/`, caPem);
    const s = await visit(host);
    for (const p of ['/one', '/two']) {
      const r = await rawRequest(s, `GET ${p} HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\ncookie: ${cookie}\r\n\r\n`);
      assert.equal(r.status, 200);
    }
    const anon = await rawRequest(s, `GET /three HTTP/1.1\r\nhost: ${host}:${relay.httpsPort}\r\naccept: application/json\r\n\r\n`);
    assert.equal(anon.status, 401);
    s.destroy();
  });
});

/** The relay's dev login, then the hand-off to the agent-terminated host (whose certificate is from `hostCa`); returns the host cookie the agent set. */
async function signIn(relay: RelayHandle, email: string, returnUrl: string, hostCa: string): Promise<string> {
  const form = { 'content-type': 'application/x-www-form-urlencoded', origin: relay.url };
  const login = await request(`${relay.url}/login/dev`, { method: 'POST', ca: relay.ca, headers: form, body: new URLSearchParams({ email, return: returnUrl }).toString() });
  assert.equal(login.status, 302, login.text);
  const relayCookie = String(login.headers['set-cookie']![0]).split(';')[0]!;
  const ask = await request(new URL(String(login.headers.location), relay.url).href, { ca: relay.ca, headers: { cookie: relayCookie } });
  assert.equal(ask.status, 200, ask.text);
  const go = await request(`${relay.url}/login/continue`, { method: 'POST', ca: relay.ca, headers: { ...form, cookie: relayCookie }, body: new URLSearchParams({ return: returnUrl, csrf: formTokenIn(ask.text) }).toString() });
  assert.equal(go.status, 302, go.text);
  const handoff = await request(String(go.headers.location), { ca: hostCa });
  assert.equal(handoff.status, 302, handoff.text);
  return String(handoff.headers['set-cookie']![0]).split(';')[0]!;
}

