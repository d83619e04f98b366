import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { parseClientHello } from './client-hello.ts';

/** Captures the first bytes a real TLS client sends. */
async function captureHello(servername: string, alpn: string[]): Promise<Buffer> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const got = new Promise<Buffer>((resolve) => {
    srv.once('connection', (s: Socket) => {
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const r = parseClientHello(buf);
        if (r.kind !== 'need-more') {
          resolve(buf);
          s.destroy();
        }
      });
    });
  });
  const c = connect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, rejectUnauthorized: false });
  c.on('error', () => {});
  const buf = await got;
  c.destroy();
  srv.close();
  return buf;
}

describe('parseClientHello', () => {
  it('reads SNI and ALPN from a real Node TLS client hello, also byte by byte', async () => {
    const buf = await captureHello('Grafana.Tunn.Example.com', ['tunn/1', 'http/1.1']);
    const r = parseClientHello(buf);
    assert.deepEqual(r, { kind: 'ok', info: { serverName: 'grafana.tunn.example.com', alpn: ['tunn/1', 'http/1.1'] } });
    assert.equal(parseClientHello(buf.subarray(0, 3)).kind, 'need-more');
    assert.equal(parseClientHello(buf.subarray(0, buf.length - 1)).kind, 'need-more');
  });

  it('says not-tls for plain HTTP and garbage', () => {
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).kind, 'not-tls');
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 0, 0])).kind, 'not-tls');
  });
});
