import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, createServer as h2server, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { spkiPin } from './pin.ts';
import { TlsContexts } from './contexts.ts';
import { TlsTerminator, type TlsHandler, type VisitorConnection } from './terminator.ts';
import { clientCertificate, leaf, passthrough, rawRequest, testCa, visitor } from './testing.ts';
import type { KeyAndCert } from '../../certs/dev-ca.ts';

const NAME = 'app.tunn.test';

// Echoes who asked and what, so each test sees which connection and certificate served it.
const echo: TlsHandler = {
  request(req, res, conn: VisitorConnection) {
    const body = JSON.stringify({ url: req.url, sni: conn.servername, ip: conn.clientIp, cert: conn.clientCertSubject ?? null, socket: (req.socket as { _tunnId?: number })._tunnId });
    res.setHeader('content-type', 'application/json');
    res.end(body);
  },
  upgrade(_req, socket, head) {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  },
};

describe('agent TLS terminator', () => {
  let ca: KeyAndCert;
  let first: { chainPem: string; keyPem: string };
  let second: { chainPem: string; keyPem: string };
  before(async () => {
    ca = await testCa();
    first = await leaf(ca, [NAME]);
    second = await leaf(ca, [NAME]);
  });

  it('serves HTTP/1.1 with the certificate for the SNI, keep-alive on one connection', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const t = new TlsTerminator({ contexts, handler: echo });
    const pt = await passthrough((s) => t.accept(s, '203.0.113.7'));
    after(() => (t.close(), pt.close()));
    const s = await visitor(pt.port, { servername: NAME, ca: ca.certPem });
    assert.equal(spkiPin(s.getPeerX509Certificate()!.toString()), spkiPin(first.chainPem));
    for (const path of ['/one', '/two']) {
      const r = await rawRequest(s, `GET ${path} HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`);
      assert.equal(r.status, 200);
      const j = JSON.parse(r.body);
      assert.equal(j.url, path);
      assert.equal(j.sni, NAME);
      assert.equal(j.ip, '203.0.113.7');
    }
    assert.equal(t.openConnections, 1);
    s.destroy();
  });

  it('fails the handshake for a name it has no certificate for, and without SNI', async () => {
    // Security: the agent never answers with some other name's certificate.
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const errors: string[] = [];
    const t = new TlsTerminator({ contexts, handler: echo, onTlsError: (e) => errors.push(e.message) });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(() => (t.close(), pt.close()));
    await assert.rejects(visitor(pt.port, { servername: 'other.tunn.test', ca: ca.certPem }));
    await assert.rejects(visitor(pt.port, { ca: ca.certPem, checkServerIdentity: () => undefined }));
    assert.match(errors.join('\n'), /no certificate for "other\.tunn\.test"/);
  });

  it('swaps the certificate for new handshakes and keeps an open connection on the old one', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const t = new TlsTerminator({ contexts, handler: echo });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(() => (t.close(), pt.close()));
    const old = await visitor(pt.port, { servername: NAME, ca: ca.certPem });
    contexts.set(NAME, second); // renewal
    const fresh = await visitor(pt.port, { servername: NAME, ca: ca.certPem });
    assert.equal(spkiPin(fresh.getPeerX509Certificate()!.toString()), spkiPin(second.chainPem));
    assert.notEqual(spkiPin(second.chainPem), spkiPin(first.chainPem));
    const r = await rawRequest(old, `GET /still HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`);
    assert.equal(r.status, 200, 'the connection opened before the renewal still serves requests');
    assert.equal(JSON.parse(r.body).url, '/still');
    old.destroy();
    fresh.destroy();
  });

  it('with a client CA, refuses a visitor without a client certificate and serves one with it (mTLS)', async () => {
    // Security: --client-ca makes a client certificate from that CA a condition of the handshake.
    const client = clientCertificate('alice.client.test');
    const contexts = new TlsContexts({ clientCaPem: client.caPem });
    contexts.set(NAME, first);
    const tlsErrors: string[] = [];
    const refused: string[] = [];
    const t = new TlsTerminator({ contexts, handler: echo, onTlsError: (e) => tlsErrors.push(e.message), onClientCertRefused: (ip, name) => refused.push(`${ip} ${name}`) });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(() => (t.close(), pt.close()));
    const bare = tlsConnect({ host: '127.0.0.1', port: pt.port, servername: NAME, ca: ca.certPem });
    const [outcome] = await Promise.race([once(bare, 'error').then(() => ['error']), once(bare, 'secureConnect').then(() => rawRequest(bare, `GET / HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`).then(() => ['served'], () => ['error']))]);
    assert.equal(outcome, 'error');
    const other = clientCertificate('mallory.client.test');
    const wrong = tlsConnect({ host: '127.0.0.1', port: pt.port, servername: NAME, ca: ca.certPem, cert: other.chainPem, key: other.keyPem });
    const [o2] = await Promise.race([once(wrong, 'error').then(() => ['error']), once(wrong, 'secureConnect').then(() => rawRequest(wrong, `GET / HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`).then(() => ['served'], () => ['error']))]);
    assert.equal(o2, 'error', 'a client certificate from another CA is refused');
    // Both refusals are reported (the agent sends them to the relay's security events).
    for (let i = 0; i < 100 && refused.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(refused, [`127.0.0.1 ${NAME}`, `127.0.0.1 ${NAME}`], tlsErrors.join('; '));
    const s = await visitor(pt.port, { servername: NAME, ca: ca.certPem, cert: client.chainPem, key: client.keyPem });
    const r = await rawRequest(s, `GET / HTTP/1.1\r\nhost: ${NAME}\r\n\r\n`).catch((e) => assert.fail(`${e.message}: ${tlsErrors.join('; ')}`));
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).cert, 'CN=alice.client.test');
    s.destroy();
  });

  it('passes WebSocket upgrades to the handler with the raw socket', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const t = new TlsTerminator({ contexts, handler: echo });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(() => (t.close(), pt.close()));
    const s = await visitor(pt.port, { servername: NAME, ca: ca.certPem });
    s.write(`GET /ws HTTP/1.1\r\nhost: ${NAME}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n`);
    const [head] = (await once(s, 'data')) as [Buffer];
    assert.match(head.toString(), /^HTTP\/1\.1 101/);
    s.write('ping-bytes');
    const [echoed] = (await once(s, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'ping-bytes');
    s.destroy();
  });

  it('with serve (--backend tcp), hands the decrypted bytes over instead of HTTP, whatever ALPN the client offers', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const served: VisitorConnection[] = [];
    const t = new TlsTerminator({ contexts, handler: echo });
    const pt = await passthrough((s) =>
      t.accept(s, '192.0.2.44', {
        connection(socket, conn) {
          served.push(conn);
          socket.on('data', (d: Buffer) => socket.end(`bytes: ${d.toString()}`));
        },
      }),
    );
    after(() => (t.close(), pt.close()));
    // A Postgres client with direct TLS offers ALPN "postgresql": an HTTP-only ALPN list would fail its handshake.
    const s = await visitor(pt.port, { servername: NAME, ca: ca.certPem, ALPNProtocols: ['postgresql'] });
    assert.equal(s.alpnProtocol, false, 'no ALPN is chosen for a byte stream');
    s.write('GET / HTTP/1.1\r\n\r\n');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    await once(s, 'end');
    assert.equal(got, 'bytes: GET / HTTP/1.1\r\n\r\n', 'the bytes were not parsed as HTTP');
    assert.deepEqual(served.map((c) => [c.clientIp, c.servername]), [['192.0.2.44', NAME]]);
    s.destroy();
  });

  // Security property: with --alpn, a client that asked for another protocol (a browser's h2, say) is refused at the
  // handshake instead of having its bytes fed to a target that speaks something else (cross-protocol confusion).
  it('with serve and --alpn, negotiates only the listed protocols; a client offering none is still served', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const t = new TlsTerminator({ contexts, handler: echo });
    let served = 0;
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1', { alpn: ['postgresql'], connection: () => void served++ }));
    after(() => (t.close(), pt.close()));
    const pg = await visitor(pt.port, { servername: NAME, ca: ca.certPem, ALPNProtocols: ['postgresql'] });
    assert.equal(pg.alpnProtocol, 'postgresql');
    await assert.rejects(visitor(pt.port, { servername: NAME, ca: ca.certPem, ALPNProtocols: ['h2', 'http/1.1'] }), /no application protocol/);
    const none = await visitor(pt.port, { servername: NAME, ca: ca.certPem, ALPNProtocols: [] });
    assert.equal(none.alpnProtocol, false);
    // The server side completes its handshake a moment after the client's (TLS 1.3): wait, generously.
    for (let i = 0; i < 100 && served < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(served, 2, 'the two accepted clients reached the byte handler, the refused one did not');
    pg.destroy();
    none.destroy();
  });

  it('terminates TLS carried on an HTTP/2 stream (the shape a passthrough stream has)', async () => {
    const contexts = new TlsContexts();
    contexts.set(NAME, first);
    const t = new TlsTerminator({ contexts, handler: echo });
    const srv = h2server();
    srv.on('stream', (stream: ServerHttp2Stream) => {
      stream.respond({ ':status': 200 });
      t.accept(stream, '198.51.100.9');
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const session = h2connect(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`);
    after(() => (t.close(), session.destroy(), srv.close()));
    const stream = session.request({ ':method': 'CONNECT', ':authority': `${NAME}:443` });
    const s = tlsConnect({ socket: stream, servername: NAME, ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    const r = await rawRequest(s, `POST /h2 HTTP/1.1\r\nhost: ${NAME}\r\ncontent-length: 5\r\n\r\n`, 'hello');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).ip, '198.51.100.9');
    s.destroy();
  });
});
