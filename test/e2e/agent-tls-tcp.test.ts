import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import tls, { type ConnectionOptions } from 'node:tls';
import type { KeyAndCert } from '../../src/certs/dev-ca.ts';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import { clientCertificate, leaf, testCa } from '../../src/agent/tls/testing.ts';
import { parseProxyV2, PP2_TYPE_AUTHORITY, PP2_TYPE_TUNN_EMAIL, proxyTlvText } from '../../src/lib/proxy-v2.ts';
import { assertRelayNeverSaw, listenLoopback, readyOf, request, startCli, startRelay, tmpDir, tokenFile, type Proc, type RelayHandle } from './harness.ts';
import { proxyV2Target } from '../support/proxy-v2-target.ts';

// `tunn tls <port> --backend tcp --terminate-at agent` (issue 12) with real relay and agent
// processes: TLS ends at the agent with its own certificate (--tls-cert files from a private CA
// here; ACME via Pebble is in agent-tls-acme.test.ts) and the agent sends the decrypted bytes to
// the target as plain TCP. Security properties tested: the certificate a client sees has the
// agent's key and the relay holds none for the name; a marker sent through the connection never
// appears in anything the relay writes; --client-ca refuses a client without a client
// certificate at the handshake; --allow-ip still resets a refused client at the relay before
// any byte reaches the target; a private tunnel serves a stranger nothing by SNI and is reached
// through `tunn connect` (the relay authenticates the user and checks the allow-list, then
// carries the raw TLS to the agent), with --proxy-protocol giving the target the verified email;
// on a public one --proxy-protocol gives the target the client's address and port; --alpn
// refuses a client asking only for another protocol.

/** Opens TLS to `port` for `servername`, says `text`, and resolves with the first answer (rejects on a failed handshake or a close before any answer). */
function ask(o: ConnectionOptions & { port: number; servername: string }, text: string): Promise<{ answer: string; pin: string; issuer: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', ...o });
    s.once('secureConnect', () => s.write(text));
    s.once('data', (d: Buffer) => {
      const cert = s.getPeerX509Certificate()!;
      resolve({ answer: d.toString(), pin: spkiPin(cert.toString()), issuer: cert.issuer, alpn: s.alpnProtocol });
      s.destroy();
    });
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before an answer')));
  });
}

describe('e2e: tunn tls --backend tcp --terminate-at agent', () => {
  const dir = tmpDir('tunn-e2e-agent-tls-tcp-');
  let relay: RelayHandle;
  let ca: KeyAndCert;
  let echo: net.Server;
  /** Everything the echo target read, as text (it must be plain, never TLS). */
  let echoGot = '';
  let echoConnections = 0;
  let pp: net.Server;
  let ppHeader: ReturnType<typeof parseProxyV2>;
  let ownerFile = '';
  let annFile = '';
  const procs: Proc[] = [];
  const relayArgs = (): string[] => ['--relay', relay.url, '--relay-ca', relay.caPath];
  const portOf = (s: net.Server): number => (s.address() as AddressInfo).port;
  let n = 0;
  const env = (): NodeJS.ProcessEnv => ({ TUNN_CONFIG_DIR: join(dir.path, `config-${n++}`), TUNN_RELAY: '', TUNN_TOKEN: '' });

  /** --tls-cert/--tls-key files for `names` from the test CA. */
  async function certFiles(label: string, names: string[]): Promise<string[]> {
    const l = await leaf(ca, names);
    writeFileSync(join(dir.path, `${label}.pem`), l.chainPem);
    writeFileSync(join(dir.path, `${label}.key`), l.keyPem);
    return ['--tls-cert', join(dir.path, `${label}.pem`), '--tls-key', join(dir.path, `${label}.key`)];
  }

  /** Starts `tunn tls <target> --backend tcp --terminate-at agent -n name …` and waits for its ready event. */
  async function agentTcp(target: number, name: string, extra: string[]): Promise<Proc> {
    const p = startCli(['tls', String(target), '-n', name, '--backend', 'tcp', '--terminate-at', 'agent', ...extra, ...relayArgs(), '--token-file', ownerFile, '--json'], { env: env() });
    procs.push(p);
    await readyOf(p);
    return p;
  }

  /** The agent's tls event saying TLS ends there, once the relay routes accordingly (its log line). */
  async function atAgent(p: Proc, host: string): Promise<Record<string, unknown>> {
    const ev = await p.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent', 30_000);
    await relay.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === host, 30_000);
    return ev;
  }

  before(async () => {
    relay = await startRelay();
    ca = await testCa();
    echo = net.createServer((s) => {
      echoConnections++;
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        echoGot += d.toString('latin1');
        s.write(`echo: ${d.toString()}`);
      });
    });
    pp = proxyV2Target(1, (s, r, payload) => {
      ppHeader = r;
      s.write(`after the header: ${payload.toString()}`);
    });
    await listenLoopback(echo, pp);
    ownerFile = await tokenFile(relay, join(dir.path, 'owner'), 'owner@example.com');
    annFile = await tokenFile(relay, join(dir.path, 'ann'), 'ann@example.com');
  });

  after(async () => {
    for (const p of procs.reverse()) await p.kill();
    await relay?.stop();
    for (const s of [echo, pp]) s?.close();
    dir.remove();
  });

  it('--public: the client sees the agent’s certificate (pin equal to its report), the target gets plain TCP, the relay holds no certificate and never sees the bytes', async () => {
    const host = `pg.${relay.domain}`;
    const a = await agentTcp(portOf(echo), 'pg', ['--public', ...(await certFiles('pg', [host]))]);
    const ev = await atAgent(a, host);
    const marker = `MRK${Date.now().toString(36)}x${Math.random().toString(36).slice(2)}`;
    const r = await ask({ port: relay.httpsPort, servername: host, ca: ca.certPem }, `hello ${marker}`);
    assert.equal(r.answer, `echo: hello ${marker}`);
    assert.equal(r.pin, ev.pin, 'the served key is the one the agent reported');
    assert.match(r.issuer, /tunn agent-tls test CA/);
    assert.ok(echoGot.includes(`hello ${marker}`), 'the target read the plain bytes (the test can fail)');
    // Plain HTTP for the name: 426 as for every tls tunnel (it speaks TLS end to end), nothing carried to the target.
    const plain = await request(`http://127.0.0.1:${relay.httpPort}/`, { headers: { Host: host } });
    assert.equal(plain.status, 426);
    // The relay never obtained (or stored) a certificate for this name.
    const db = new DatabaseSync(join(relay.dataDir, 'tunn.db'), { readOnly: true });
    try {
      assert.deepEqual(db.prepare('SELECT name FROM certificates WHERE name = ?').all(host), []);
    } finally {
      db.close();
    }
    // `tunn cert list` shows it as for an HTTP agent-terminated name: TLS at the agent, the agent's pin.
    const list = startCli(['cert', 'list', ...relayArgs(), '--json'], { env: { ...env(), TUNN_TOKEN_FILE: ownerFile } });
    assert.equal(await list.exited, 0, list.stderr.join('\n'));
    const row = (list.lines[0]!.agent as { name: string; terminatedAt: string; pin: string; state: string }[]).find((x) => x.name === host);
    assert.deepEqual({ terminatedAt: row?.terminatedAt, pin: row?.pin, state: row?.state }, { terminatedAt: 'agent', pin: ev.pin, state: 'issued' });
    // Security: the relay only piped ciphertext: the marker is in nothing it wrote.
    await assertRelayNeverSaw(relay, marker);
  });

  it('--client-ca: a client without a client certificate is refused at the handshake (the target sees nothing); one with it gets through; --alpn postgresql: only that protocol is negotiated', async () => {
    const host = `mtls.${relay.domain}`;
    const client = clientCertificate('db-user.client.test');
    writeFileSync(join(dir.path, 'client-ca.pem'), client.caPem);
    const a = await agentTcp(portOf(echo), 'mtls', ['--public', '--client-ca', join(dir.path, 'client-ca.pem'), '--alpn', 'postgresql', ...(await certFiles('mtls', [host]))]);
    await atAgent(a, host);
    const before = echoConnections;
    await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: ca.certPem }, 'no client certificate'));
    const other = clientCertificate('mallory.client.test');
    await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: ca.certPem, cert: other.chainPem, key: other.keyPem }, 'a certificate from another CA'));
    assert.equal(echoConnections, before, 'no connection reached the target');
    // --alpn postgresql: a direct-TLS Postgres client (it offers and requires "postgresql") gets it; one asking for h2 is refused.
    const r = await ask({ port: relay.httpsPort, servername: host, ca: ca.certPem, cert: client.chainPem, key: client.keyPem, ALPNProtocols: ['postgresql'] }, 'with my certificate');
    assert.equal(r.answer, 'echo: with my certificate');
    assert.equal(r.alpn, 'postgresql');
    await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: ca.certPem, cert: client.chainPem, key: client.keyPem, ALPNProtocols: ['h2'] }, 'GET / HTTP/2'), /no application protocol/);
    assert.equal(echoConnections, before + 1, 'only the allowed connection reached the target');
  });

  it('refuses --terminate-at with --backend raw, and --alpn without TLS at the agent, before connecting, saying why', async () => {
    const raw = startCli(['tls', String(portOf(echo)), '-n', 'raw', '--terminate-at', 'agent', ...relayArgs(), '--token-file', ownerFile], { env: env() });
    assert.notEqual(await raw.exited, 0);
    assert.match(raw.stderr.join('\n'), /--terminate-at: with --backend raw \(the default\) TLS ends at your target.*Add --backend tcp/s);
    const alpn = startCli(['tls', String(portOf(echo)), '-n', 'alpn', '--backend', 'tcp', '--alpn', 'postgresql', ...relayArgs(), '--token-file', ownerFile], { env: env() });
    assert.notEqual(await alpn.exited, 0);
    assert.match(alpn.stderr.join('\n'), /--alpn only applies with --terminate-at agent/);
  });

  it('fallback: until the agent has a certificate for the name the relay terminates as --backend tcp does; --no-fallback: the handshake fails instead', async () => {
    const host = `fb.${relay.domain}`;
    const a = await agentTcp(portOf(echo), 'fb', ['--public', ...(await certFiles('fb', [`other.${relay.domain}`]))]);
    const ev = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && /not fb\./.test(String(l.reason)), 30_000);
    assert.match(String(ev.reason), /--tls-cert is for other\./);
    const r = await ask({ port: relay.httpsPort, servername: host, ca: relay.ca }, 'during fallback');
    assert.equal(r.answer, 'echo: during fallback', 'the relay terminated (its certificate verified) and the target got plain TCP');
    assert.doesNotMatch(r.issuer, /agent-tls test CA/);

    const nofb = `nofb.${relay.domain}`;
    const b = await agentTcp(portOf(echo), 'nofb', ['--public', '--no-fallback', ...(await certFiles('nofb', [`else.${relay.domain}`]))]);
    await b.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && /not nofb\./.test(String(l.reason)), 30_000);
    const before = echoConnections;
    for (const c of [relay.ca, ca.certPem]) await assert.rejects(ask({ port: relay.httpsPort, servername: nofb, ca: c }, 'no fallback'));
    assert.equal(echoConnections, before, 'no connection reached the target');
  });

  // Security property: --client-ca holds while the agent's certificate is pending: it implies --no-fallback, so the relay
  // never ends TLS (without asking for a client certificate) and hands plain bytes to the target.
  it('--client-ca while the agent’s certificate is pending: no relay fallback, a client without a client certificate never reaches the target', async () => {
    const host = `mtlsfb.${relay.domain}`;
    writeFileSync(join(dir.path, 'client-ca-fb.pem'), (await testCa()).certPem);
    const a = await agentTcp(portOf(echo), 'mtlsfb', ['--public', '--client-ca', join(dir.path, 'client-ca-fb.pem'), ...(await certFiles('mtlsfb', [`other2.${relay.domain}`]))]);
    const pending = await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay', 30_000);
    assert.match(String(pending.reason), /--client-ca implies --no-fallback/);
    await a.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'relay' && /not mtlsfb\./.test(String(l.reason)), 30_000);
    const before = echoConnections;
    for (const c of [relay.ca, ca.certPem]) await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: c }, 'no client certificate'));
    assert.equal(echoConnections, before, 'no connection reached the target');
  });

  // Guards --allow-ip with TLS at the agent: a refused client is reset at the relay, before any handshake or byte to the target.
  it('--allow-ip: a client outside the list gets no handshake and the target sees nothing', async () => {
    const host = `office.${relay.domain}`;
    const a = await agentTcp(portOf(echo), 'office', ['--public', '--allow-ip', '10.0.0.0/8', ...(await certFiles('office', [host]))]);
    await atAgent(a, host);
    const before = echoConnections;
    await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: ca.certPem }, 'from loopback'), /ECONNRESET|socket disconnected|closed before/);
    assert.equal(echoConnections, before, 'no connection reached the target');
  });

  it('--proxy-protocol on a public one: the target reads the client’s address and port in a PROXY v2 header, then the decrypted bytes', async () => {
    const host = `pp.${relay.domain}`;
    const a = await agentTcp(portOf(pp), 'pp', ['--public', '--proxy-protocol', ...(await certFiles('pp', [host]))]);
    await atAgent(a, host);
    const s = tls.connect({ host: '127.0.0.1', port: relay.httpsPort, servername: host, ca: ca.certPem });
    await once(s, 'secureConnect');
    s.write('payload');
    const [d] = (await once(s, 'data')) as [Buffer];
    assert.equal(d.toString(), 'after the header: payload');
    const got = ppHeader as ReturnType<typeof parseProxyV2>;
    assert.equal(got?.header.source?.address, '127.0.0.1');
    assert.equal(got?.header.source?.port, s.localPort, 'the client’s own port, as the relay saw it');
    assert.equal(proxyTlvText(got!.header, PP2_TYPE_AUTHORITY), host);
    assert.equal(proxyTlvText(got!.header, PP2_TYPE_TUNN_EMAIL), undefined, 'no email: nobody was authenticated');
    s.destroy();
    ppHeader = undefined;
  });

  it('private: a stranger gets nothing by SNI; through `tunn connect` the user’s TLS ends at the agent, and --proxy-protocol gives the target the verified email', async () => {
    const host = `secret.${relay.domain}`;
    const a = await agentTcp(portOf(pp), 'secret', ['-a', 'ann@example.com', '--proxy-protocol', ...(await certFiles('secret', [host]))]);
    const ev = await atAgent(a, host);
    // The stranger's handshake is never with the agent: its certificate does not verify, and nothing reaches the target.
    await assert.rejects(ask({ port: relay.httpsPort, servername: host, ca: ca.certPem }, 'let me in'));
    assert.equal(ppHeader, undefined, 'nothing reached the target');
    const c = startCli(['connect', host, '--listen', '0', '--json', ...relayArgs(), '--token-file', annFile], { env: env() });
    procs.push(c);
    const up = await c.waitFor((l) => l.event === 'ready', 30_000);
    const port = Number(String(up.listen).split(':')[1]);
    const r = await ask({ port, servername: host, ca: ca.certPem }, 'payload');
    assert.equal(r.answer, 'after the header: payload');
    assert.equal(r.pin, ev.pin, 'through tunn connect too, TLS ends at the agent');
    // (Read again: the assertion above narrowed the variable, which the target's callback sets.)
    const got = ppHeader as ReturnType<typeof parseProxyV2>;
    assert.ok(got, 'a PROXY v2 header came first');
    assert.equal(proxyTlvText(got.header, PP2_TYPE_TUNN_EMAIL), 'ann@example.com');
    assert.equal(proxyTlvText(got.header, PP2_TYPE_AUTHORITY), host);
    assert.equal(got.header.source?.address, '127.0.0.1');
  });
});
