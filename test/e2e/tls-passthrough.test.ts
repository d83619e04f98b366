import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { parseProxyV2, PP2_TYPE_AUTHORITY, PP2_TYPE_TUNN_ASSERTION, PP2_TYPE_TUNN_EMAIL, proxyTlvText } from '../../src/lib/proxy-v2.ts';
import { listenLoopback, readyOf, request, startCli, startRelay, tmpDir, tokenFile, type Proc, type RelayHandle } from './harness.ts';
import { proxyV2Target } from '../support/proxy-v2-target.ts';

// `tunn tls` end to end (real relay, agents and targets) and PROXY v2 through `tunn connect`.
// Security properties: with --backend raw the relay never terminates: the client verifies the
// target's own certificate (its own CA) through the relay; a private tls tunnel serves a
// stranger nothing by SNI (no byte reaches the target) and is reached only through `tunn
// connect`; plain HTTP for a tls host is answered 426; --backend tcp ends TLS at the relay
// (the client verifies the relay's certificate) and the target receives plain TCP; a target
// behind --proxy-protocol learns the verified email of a `tunn connect` user from the relay.

/** Connects with TLS and resolves with what the peer answered to `text` (rejects on a failed handshake). */
function tlsAsk(o: { port: number; servername: string; ca: string }, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: o.port, servername: o.servername, ca: o.ca });
    let got = '';
    s.on('secureConnect', () => s.write(text));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

describe('tls tunnels (passthrough, private, --backend tcp) and PROXY v2', () => {
  const dir = tmpDir('tunn-tls-e2e-');
  let relay: RelayHandle;
  let targetCa = '';
  let tlsTarget: tls.Server;
  let targetConnections = 0;
  let plain: net.Server;
  let plainGot = '';
  let pp: net.Server;
  let ppHeader: ReturnType<typeof parseProxyV2>;
  let ownerFile = '';
  let annFile = '';
  const procs: Proc[] = [];
  const env = (): NodeJS.ProcessEnv => ({ TUNN_CONFIG_DIR: join(dir.path, 'config'), TUNN_RELAY: '', TUNN_TOKEN: '' });
  const relayArgs = (): string[] => ['--relay', relay.url, '--relay-ca', relay.caPath];
  const portOf = (s: net.Server): number => (s.address() as AddressInfo).port;
  const startKind = async (args: string[]): Promise<Record<string, unknown>> => {
    const p = startCli([...args, ...relayArgs(), '--token-file', ownerFile, '--json'], { env: env() });
    procs.push(p);
    const ready = await readyOf(p);
    return ready;
  };
  const connectListen = async (host: string): Promise<number> => {
    const c = startCli(['connect', host, '--listen', '0', '--json', ...relayArgs(), '--token-file', annFile], { env: env() });
    procs.push(c);
    const up = await c.waitFor((l) => l.event === 'ready', 30_000);
    return Number(String(up.listen).split(':')[1]);
  };

  before(async () => {
    relay = await startRelay();
    const ca = await createCa('the target\'s own CA');
    targetCa = ca.certPem;
    const leaf = await issueLeaf(ca, [`shop.${relay.domain}`, `secret.${relay.domain}`]);
    tlsTarget = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(`tls ends at the target (${s.servername}); you said ${d.toString()}`));
    });
    tlsTarget.on('connection', () => targetConnections++);
    plain = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d) => {
        plainGot += d.toString('latin1');
        s.end(`plain tcp: ${d.toString()}`);
      });
    });
    pp = proxyV2Target('payload'.length, (s, r, payload) => {
      ppHeader = r;
      s.end(`after the header: ${payload.toString()}`);
    });
    await listenLoopback(tlsTarget, plain, pp);
    ownerFile = await tokenFile(relay, join(dir.path, 'owner'), 'owner@example.com');
    annFile = await tokenFile(relay, join(dir.path, 'ann'), 'ann@example.com');
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await relay?.stop();
    for (const s of [tlsTarget, plain, pp]) s?.close();
    dir.remove();
  });

  it('--public (backend raw): the client verifies the target\'s own certificate through the relay; plain HTTP gets 426', async () => {
    const ready = await startKind(['tls', String(portOf(tlsTarget)), '-n', 'shop', '--public']);
    const host = `shop.${relay.domain}`;
    assert.equal(ready.url, `https://${host}:${relay.httpsPort}`);
    assert.equal(await tlsAsk({ port: relay.httpsPort, servername: host, ca: targetCa }, 'hi'), `tls ends at the target (${host}); you said hi`);
    const r = await request(`http://127.0.0.1:${relay.httpPort}/`, { headers: { Host: host } });
    assert.equal(r.status, 426);
    assert.match(r.body.toString(), /TLS that ends at its own service/);
  });

  // Guards --allow-ip on public kinds (the same check public TCP/UDP ports make): a client
  // outside the list is reset before any byte reaches the target.
  it('--allow-ip: a client outside the list is reset and the target sees nothing', async () => {
    await startKind(['tls', String(portOf(tlsTarget)), '-n', 'office', '--public', '--allow-ip', '10.0.0.0/8']);
    const before = targetConnections;
    await assert.rejects(tlsAsk({ port: relay.httpsPort, servername: `office.${relay.domain}`, ca: targetCa }, 'from loopback'), /ECONNRESET|socket disconnected/);
    assert.equal(targetConnections, before, 'no connection reached the target');
  });

  it('a private tls tunnel serves a stranger nothing by SNI, and works through tunn connect', async () => {
    await startKind(['tls', String(portOf(tlsTarget)), '-n', 'secret', '-a', 'ann@example.com']);
    const host = `secret.${relay.domain}`;
    const before = targetConnections;
    // The stranger's handshake is not with the target (its CA does not verify what answers).
    await assert.rejects(tlsAsk({ port: relay.httpsPort, servername: host, ca: targetCa }, 'let me in'));
    assert.equal(targetConnections, before, 'no connection reached the target');
    const port = await connectListen(host);
    assert.equal(await tlsAsk({ port, servername: host, ca: targetCa }, 'through connect'), `tls ends at the target (${host}); you said through connect`);
  });

  it('--backend tcp: TLS ends at the relay (its certificate verifies) and the target receives plain TCP', async () => {
    await startKind(['tls', String(portOf(plain)), '-n', 'plain', '--public', '--backend', 'tcp']);
    const host = `plain.${relay.domain}`;
    assert.equal(await tlsAsk({ port: relay.httpsPort, servername: host, ca: relay.ca }, 'hello'), 'plain tcp: hello');
    assert.equal(plainGot, 'hello', 'the target read the plain bytes, not TLS');
  });

  // Guards the relay itself: refusing a --backend tcp visitor (TLS already ended here) once threw
  // ERR_INVALID_HANDLE_TYPE (Node cannot reset a TLS socket) and ended the relay process.
  it('--backend tcp with --allow-ip: a client outside the list is closed, the target sees nothing, and the relay keeps serving', async () => {
    await startKind(['tls', String(portOf(plain)), '-n', 'plainoffice', '--public', '--backend', 'tcp', '--allow-ip', '10.0.0.0/8']);
    const got = plainGot;
    const answer = await tlsAsk({ port: relay.httpsPort, servername: `plainoffice.${relay.domain}`, ca: relay.ca }, 'from loopback').catch((err: Error) => `refused: ${err.message}`);
    assert.ok(answer === '' || answer.startsWith('refused'), answer);
    assert.equal(plainGot, got, 'nothing reached the target');
    const r = await request(`http://127.0.0.1:${relay.httpPort}/`, { headers: { Host: `plainoffice.${relay.domain}` } });
    assert.equal(r.status, 426, 'the relay is still up and answering');
  });

  it('--proxy-protocol: the target parses a PROXY v2 header with the tunn connect user\'s verified email', async () => {
    const ready = await startKind(['tcp', String(portOf(pp)), '-n', 'pp', '-a', 'ann@example.com', '--proxy-protocol']);
    const port = await connectListen(String(ready.host));
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => c.write('payload'));
      let s = '';
      c.on('data', (d: Buffer) => (s += d.toString()));
      c.on('end', () => resolve(s));
      c.on('error', reject);
    });
    assert.equal(got, 'after the header: payload');
    assert.ok(ppHeader, 'a PROXY v2 header came first');
    assert.equal(proxyTlvText(ppHeader.header, PP2_TYPE_TUNN_EMAIL), 'ann@example.com');
    assert.equal(proxyTlvText(ppHeader.header, PP2_TYPE_AUTHORITY), `pp.${relay.domain}`);
    assert.equal(ppHeader.header.source?.address, '127.0.0.1');
    // TLV 0xE1: a JWT the target verifies with the relay's published keys, for this host only.
    const jwt = proxyTlvText(ppHeader.header, PP2_TYPE_TUNN_ASSERTION);
    assert.ok(jwt, 'the assertion TLV is present');
    const keys = await request(`${relay.url}/.well-known/jwks.json`, { ca: relay.ca });
    const { payload } = await jwtVerify(jwt, createLocalJWKSet(JSON.parse(keys.text) as JSONWebKeySet), { audience: `pp.${relay.domain}` });
    assert.equal(payload.email, 'ann@example.com');
  });
});
