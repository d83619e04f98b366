import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { readUntilClosed } from '../../test/support/read-all.ts';
import { tcpTarget } from '../../test/support/tcp-target.ts';
import { startContractServer, type ContractServer } from '../../test/support/connect-contract.ts';
import { freePort } from '../../test/support/ports.ts';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { isTunnError } from '../lib/errors.ts';
import { ConnectClient } from './client.ts';
import { parseListen, serveStdio, serveTcp, serveUdp } from './serve.ts';

// `tunn connect`'s client against the tunn-connect/1 contract server (test/support/connect-contract.ts),
// which hands each carried stream to the agent's real kind handlers and on to real targets.

const run = promisify(execFile);

describe('tunn connect client (TCP)', () => {
  let relay: ContractServer;
  let target: { port: number; close(): void };
  const client = (token: string, host = 'db.tunn.test'): ConnectClient => new ConnectClient({ relayUrl: relay.url, token, relayCa: relay.caPem, host, kind: 'tcp' });
  before(async () => {
    target = await tcpTarget((s) => void readUntilClosed(s).then((got) => s.end(`got:${got}`)));
    relay = await startContractServer({ host: 'db.tunn.test', tunnelKind: 'tcp', target: { host: '127.0.0.1', port: target.port } });
    relay.tokens.set('ann-token', 'ann@example.com');
    relay.tokens.set('bob-token', 'bob@example.com');
    relay.allowed.add('ann@example.com');
  });
  after(async () => {
    await relay.close();
    target.close();
  });

  it('asks the relay first and learns who it is signed in as', async () => {
    const c = client('ann-token');
    assert.deepEqual(await c.check(), { allowed: true, host: 'db.tunn.test', tunnelKind: 'tcp', email: 'ann@example.com' });
    c.close();
  });

  it('fails the check with the relay\'s own message when the user is not allowed, not signed in, or the tunnel is not there', async () => {
    await assert.rejects(client('bob-token').check(), (e: Error) => isTunnError(e, 'FORBIDDEN') && e.message === 'bob@example.com is not on the allow-list of db.tunn.test: ask its owner to add you (-a bob@example.com)');
    await assert.rejects(client('nobody').check(), (e: Error) => isTunnError(e, 'AUTH_INVALID_TOKEN') && /run `tunn login`/.test(e.message));
    await assert.rejects(client('ann-token', 'nope.tunn.test').check(), (e: Error) => isTunnError(e, 'NOT_FOUND') && /no tunnel nope\.tunn\.test is online/.test(e.message));
  });

  it('carries each local connection on its own stream, half-closes included', async () => {
    const c = client('ann-token');
    const refused: string[] = [];
    const l = await serveTcp(() => c.open(), { host: '127.0.0.1', port: 0 }, { refused: (_p, m) => refused.push(m) });
    const before = relay.carried;
    for (const word of ['one', 'two']) {
      const s = net.connect({ port: l.address.port, host: '127.0.0.1', allowHalfOpen: true });
      const reply = readUntilClosed(s);
      s.end(word);
      assert.equal(await reply, `got:${word}`);
    }
    assert.equal(relay.carried - before, 2);
    assert.deepEqual(refused, []);
    await l.close();
    c.close();
  });

  // Guards: access is decided per connection, not once at start: a user taken off the allow-list
  // after `tunn connect` started gets no new connection, and is told why.
  it('closes a local connection at once, with the relay\'s message, when the relay refuses it', async () => {
    relay.tokens.set('carl-token', 'carl@example.com');
    relay.allowed.add('carl@example.com');
    const c = client('carl-token');
    await c.check();
    relay.allowed.delete('carl@example.com');
    const refused: string[] = [];
    const l = await serveTcp(() => c.open(), { host: '127.0.0.1', port: 0 }, { refused: (_p, m) => refused.push(m) });
    const s = net.connect({ port: l.address.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.write('hello');
    await new Promise((r) => s.once('close', r));
    assert.deepEqual(refused, ['carl@example.com is not on the allow-list of db.tunn.test: ask its owner to add you (-a carl@example.com)']);
    await l.close();
    c.close();
  });

  // Guards (the client's half of live revocation): when the relay cuts a user's stream, the local
  // connection it carries is cut at once rather than left open.
  it('resets the local connection when the relay cuts its stream', async () => {
    const held = await tcpTarget((s) => s.resume());
    const relay2 = await startContractServer({ host: 'db.tunn.test', tunnelKind: 'tcp', target: { host: '127.0.0.1', port: held.port } });
    relay2.tokens.set('dan-token', 'dan@example.com');
    relay2.allowed.add('dan@example.com');
    const c = new ConnectClient({ relayUrl: relay2.url, token: 'dan-token', relayCa: relay2.caPem, host: 'db.tunn.test', kind: 'tcp' });
    const l = await serveTcp(() => c.open(), { host: '127.0.0.1', port: 0 }, { refused: () => {} });
    const s = net.connect({ port: l.address.port, host: '127.0.0.1' });
    let error = '';
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.resume();
    s.write('live session');
    while (relay2.carried === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(relay2.cut('dan@example.com'), 1);
    await new Promise((r) => s.once('close', r));
    assert.equal(error, 'ECONNRESET', 'the local side sees a reset, not a clean end');
    await l.close();
    c.close();
    await relay2.close();
    held.close();
  });

  it('passes on why the agent could not reach its target, and refuses a UDP flow to a TCP tunnel', async () => {
    const port = await freePort();
    const down = await startContractServer({ host: 'db.tunn.test', tunnelKind: 'tcp', target: { host: '127.0.0.1', port } });
    down.tokens.set('ann-token', 'ann@example.com');
    down.allowed.add('ann@example.com');
    const c = new ConnectClient({ relayUrl: down.url, token: 'ann-token', relayCa: down.caPem, host: 'db.tunn.test', kind: 'tcp' });
    await assert.rejects(c.open(), (e: Error) => isTunnError(e, 'UNAVAILABLE') && e.message === `nothing accepts connections at 127.0.0.1:${port} (connection refused): is the service running?`);
    const u = new ConnectClient({ relayUrl: down.url, token: 'ann-token', relayCa: down.caPem, host: 'db.tunn.test', kind: 'udp' });
    await assert.rejects(u.open(), (e: Error) => isTunnError(e, 'INVALID_INPUT') && e.message === 'db.tunn.test is a tcp tunnel, which carries TCP: connect without --udp');
    c.close();
    u.close();
    await down.close();
  });

  it('dials again when its connection to the relay was dropped', async () => {
    const c = client('ann-token');
    await c.check();
    relay.dropConnections();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await c.check()).email, 'ann@example.com');
    c.close();
  });

  it('rejects stdio mode with the relay\'s message when the connection is refused', async () => {
    const c = client('bob-token');
    await assert.rejects(serveStdio(() => c.open(), new PassThrough(), new PassThrough()), /bob@example\.com is not on the allow-list of db\.tunn\.test/);
    c.close();
  });

  it('carries stdin/stdout as one connection (ssh ProxyCommand mode)', async () => {
    const c = client('ann-token');
    const input = new PassThrough();
    const output = new PassThrough();
    const got = readUntilClosed(output);
    const done = serveStdio(() => c.open(), input, output);
    input.end('over stdio');
    await done;
    assert.equal(await got, 'got:over stdio');
    c.close();
  });

  it('says the relay does not speak tunn-connect/1 when the ALPN is not chosen', async () => {
    const ca = await createCa('h2-only test CA');
    const leaf = await issueLeaf(ca, ['127.0.0.1']);
    const h2 = http2.createSecureServer({ key: leaf.keyPem, cert: leaf.certPem });
    h2.on('tlsClientError', () => {});
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    const c = new ConnectClient({ relayUrl: `https://127.0.0.1:${(h2.address() as AddressInfo).port}`, token: 't', relayCa: ca.certPem, host: 'db.tunn.test', kind: 'tcp' });
    // Node's server ends the handshake without a protocol in common (no_application_protocol).
    await assert.rejects(c.check(), (e: Error) => isTunnError(e) && /tunn-connect\/1|cannot reach/.test(e.message));
    h2.close();
  });

  it('names the missing CA when the relay\'s certificate is not trusted', async () => {
    const c = new ConnectClient({ relayUrl: relay.url, token: 'ann-token', host: 'db.tunn.test', kind: 'tcp' });
    await assert.rejects(c.check(), (e: Error) => isTunnError(e, 'UNAVAILABLE') && /pass the relay's CA with --relay-ca/.test(e.message));
  });
});

describe('tunn connect client (UDP)', () => {
  let relay: ContractServer;
  let dns: dgram.Socket;
  before(async () => {
    dns = dgram.createSocket('udp4');
    dns.on('message', (m, r) => {
      const q = dnsPacket.decode(m);
      dns.send(dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.53' }] }), r.port, r.address);
    });
    dns.bind(0, '127.0.0.1');
    await once(dns, 'listening');
    relay = await startContractServer({ host: 'dns.tunn.test', tunnelKind: 'udp', target: { host: '127.0.0.1', port: (dns.address() as AddressInfo).port } });
    relay.tokens.set('ann-token', 'ann@example.com');
    relay.allowed.add('ann@example.com');
  });
  after(async () => {
    await relay.close();
    dns.close();
  });

  it('answers dig through a local UDP listener, one flow per peer', async () => {
    const c = new ConnectClient({ relayUrl: relay.url, token: 'ann-token', relayCa: relay.caPem, host: 'dns.tunn.test', kind: 'udp' });
    const l = await serveUdp(() => c.open(), { host: '127.0.0.1', port: 0 }, { refused: () => {} });
    for (const name of ['a.example.test', 'b.example.test']) {
      const r = await run('dig', ['@127.0.0.1', '-p', String(l.address.port), name, 'A', '+short', '+tries=3', '+time=5']);
      assert.equal(r.stdout.trim(), '192.0.2.53');
    }
    assert.ok(relay.carried >= 2, 'each dig (its own source port) was its own flow');
    await l.close();
    c.close();
  });
});

describe('tunn connect client (UDP, refused)', () => {
  it('tells why a peer\'s flow was refused, and sends that peer nothing', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    const relay = await startContractServer({ host: 'dns.tunn.test', tunnelKind: 'udp', target: { host: '127.0.0.1', port: (echo.address() as AddressInfo).port } });
    relay.tokens.set('bob-token', 'bob@example.com');
    const c = new ConnectClient({ relayUrl: relay.url, token: 'bob-token', relayCa: relay.caPem, host: 'dns.tunn.test', kind: 'udp' });
    const refused: string[] = [];
    const l = await serveUdp(() => c.open(), { host: '127.0.0.1', port: 0 }, { refused: (_p, m) => refused.push(m) });
    const peer = dgram.createSocket('udp4');
    let got = 0;
    peer.on('message', () => got++);
    peer.send('anyone?', l.address.port, '127.0.0.1');
    const end = Date.now() + 20_000;
    while (refused.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(refused, ['bob@example.com is not on the allow-list of dns.tunn.test: ask its owner to add you (-a bob@example.com)']);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got, 0);
    peer.close();
    await l.close();
    c.close();
    await relay.close();
    echo.close();
  });
});

describe('--listen', () => {
  it('takes a bare port as loopback, and an explicit address only when given', () => {
    assert.deepEqual(parseListen('15432'), { host: '127.0.0.1', port: 15432 });
    assert.deepEqual(parseListen('0.0.0.0:15432'), { host: '0.0.0.0', port: 15432 });
    assert.deepEqual(parseListen('[::1]:5353'), { host: '::1', port: 5353 });
  });
  it('says what to write instead of a bad value', () => {
    assert.deepEqual(parseListen('db:15432'), { error: '--listen "db:15432": "db" is not an IP address; use 127.0.0.1, ::1 or 0.0.0.0' });
    assert.deepEqual(parseListen('99999'), { error: '--listen "99999": use a port (15432, on 127.0.0.1) or address:port (0.0.0.0:15432, [::1]:15432)' });
  });
});
