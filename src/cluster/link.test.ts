import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { readAll } from '../../test/support/read-all.ts';
import { isTunnError, TunnError } from '../lib/errors.ts';
import { ALPN_CLUSTER_LINK, forwardRequestHeaders } from '../protocol/cluster-link.ts';
import { clusterCa, credentialsFromSecret, type LinkCredentials } from './credentials.ts';
import { LinkClient } from './link-client.ts';
import { LinkServer, type LinkPeerInfo } from './link-server.ts';

// Two link endpoints on loopback, with credentials derived from cluster secrets.

const SECRET = 'a'.repeat(16) + 'cluster-secret-for-tests-0123456789';
const OTHER = 'b'.repeat(16) + 'another-clusters-secret-9876543210';

interface Received {
  host: string;
  kind: string;
  client: string;
  peer: LinkPeerInfo;
}

describe('cluster link (mutual TLS + HTTP/2)', () => {
  let serverCreds: LinkCredentials;
  let server: LinkServer;
  let url: string;
  const received: Received[] = [];
  /** What the server side does with a carried stream (set per test). */
  let serve: (host: string, stream: Duplex) => void = () => {};
  const clients: LinkClient[] = [];
  const client = async (secret: string, nodeId: string): Promise<LinkClient> => {
    const c = new LinkClient({ credentials: await credentialsFromSecret(secret, nodeId), timeoutMs: 5000 });
    clients.push(c);
    return c;
  };

  before(async () => {
    serverCreds = await credentialsFromSecret(SECRET, 'nb');
    server = new LinkServer({
      credentials: serverCreds,
      onForwardedStream: (host, kind, clientAddr, stream, peer) => {
        received.push({ host, kind, client: clientAddr, peer });
        serve(host, stream);
      },
    });
    url = `https://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  it('derives one CA per secret: the same on every relay, another for another secret', async () => {
    const [a, b, c] = await Promise.all([clusterCa(SECRET), clusterCa(SECRET), clusterCa(OTHER)]);
    const ka = new X509Certificate(a.certPem);
    assert.equal(ka.subject, new X509Certificate(b.certPem).subject);
    assert.ok(ka.publicKey.equals(new X509Certificate(b.certPem).publicKey), 'same key from the same secret');
    assert.notEqual(ka.subject, new X509Certificate(c.certPem).subject);
    assert.ok(!ka.publicKey.equals(new X509Certificate(c.certPem).publicKey));
    // The leaf names its node and is issued by the cluster CA.
    const leaf = new X509Certificate(serverCreds.cert);
    assert.match(leaf.subject, /CN=nb/);
    assert.ok(leaf.checkIssued(ka) && leaf.verify(ka.publicKey));
  });

  it('carries bytes both ways with half-close in each direction', async () => {
    const c = await client(SECRET, 'na');
    // The server answers only after the dialler half-closed, and then closes its side.
    serve = (_host, stream) => void readAll(stream).then((got) => stream.end(`pong:${got}`));
    const s1 = await c.open({ nodeId: 'nb', url }, { host: 'grafana.tunn.example.com', kind: 'http', client: '203.0.113.9:51234' });
    s1.write('pi');
    s1.end('ng');
    assert.equal(await readAll(s1), 'pong:ping');
    assert.deepEqual(received.at(-1), { host: 'grafana.tunn.example.com', kind: 'http', client: '203.0.113.9:51234', peer: { nodeId: 'na' } });

    // The other way round: the receiver half-closes first and still reads what comes after.
    let serverRead!: Promise<string>;
    serve = (_host, stream) => {
      stream.end('hello, then silence');
      serverRead = readAll(stream);
    };
    const s2 = await c.open({ nodeId: 'nb', url }, { host: 'db.tunn.example.com', kind: 'tcp', client: '[2001:db8::1]:443' });
    assert.equal(await readAll(s2), 'hello, then silence');
    s2.end('late bytes');
    assert.equal(await serverRead, 'late bytes');
  });

  // Both ends with a 64 MiB window stalled here for good (see UPLOAD_WINDOW in link-server.ts).
  it('carries 16 MiB each way at once (flow control over the link)', { timeout: 60_000 }, async () => {
    const c = await client(SECRET, 'na');
    const size = 16 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (s: Duplex) => {
      let left = size / chunk.length;
      const more = () => {
        while (left > 0) {
          left--;
          if (!s.write(chunk)) return void s.once('drain', more);
        }
        s.end();
      };
      more();
    };
    const count = (s: Duplex) => new Promise<number>((resolve, reject) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.once('end', () => resolve(n));
      s.once('error', reject);
    });
    let serverGot!: Promise<number>;
    serve = (_host, stream) => {
      serverGot = count(stream);
      pump(stream);
    };
    const s = await c.open({ nodeId: 'nb', url }, { host: 'bulk.tunn.example.com', kind: 'tcp', client: '127.0.0.1:1' });
    const clientGot = count(s);
    pump(s);
    assert.deepEqual(await Promise.all([clientGot, serverGot]), [size, size]);
  });

  it('a refusal reaches the dialler with its reason (NOT_HERE → NOT_FOUND: try another holder)', async () => {
    const c = await client(SECRET, 'na');
    serve = (host) => {
      throw new TunnError('NOT_FOUND', `no agent session for ${host} on this relay`);
    };
    await assert.rejects(c.open({ nodeId: 'nb', url }, { host: 'gone.tunn.example.com', kind: 'http', client: '127.0.0.1:1' }), (e) => isTunnError(e, 'NOT_FOUND') && /refused \(NOT_HERE\): gone\.tunn\.example\.com: no agent session for gone\.tunn\.example\.com/.test(e.message));
  });

  it('refuses a peer whose certificate comes from another cluster secret', async () => {
    // Security: only holders of this cluster's secret can carry streams into a relay (mutual TLS to the derived CA).
    const before = received.length;
    serve = (_h, stream) => stream.end('must not happen');
    // It trusts the relay's CA (so the refusal is the relay's, not its own), but its certificate is another cluster's.
    const other = await credentialsFromSecret(OTHER, 'na');
    const stranger = new LinkClient({ credentials: { ...other, ca: serverCreds.ca }, timeoutMs: 5000 });
    clients.push(stranger);
    await assert.rejects(stranger.open({ nodeId: 'nb', url }, { host: 'grafana.tunn.example.com', kind: 'http', client: '127.0.0.1:1' }), (e) => isTunnError(e, 'UNAVAILABLE') && /connecting to relay node nb .*closed the connection before accepting it: it accepts only certificates from its cluster's CA/.test(e.message));
    assert.equal(received.length, before, 'no stream reached the relay');
  });

  it('a dialler refuses a relay outside its cluster, and a relay that is not the node it meant to reach', async () => {
    // Security: visitor bytes go only to a relay holding the cluster secret, and only to the node the live row names.
    const foreign = new LinkServer({ credentials: await credentialsFromSecret(OTHER, 'nb'), onForwardedStream: () => assert.fail('foreign relay got a stream') });
    const foreignUrl = `https://127.0.0.1:${await foreign.listen(0, '127.0.0.1')}`;
    try {
      const c = await client(SECRET, 'na');
      await assert.rejects(c.open({ nodeId: 'nb', url: foreignUrl }, { host: 'a.tunn.example.com', kind: 'http', client: '127.0.0.1:1' }), (e) => isTunnError(e, 'UNAVAILABLE') && /connecting to relay node nb/.test(e.message));
      await assert.rejects(c.open({ nodeId: 'nc', url }, { host: 'a.tunn.example.com', kind: 'http', client: '127.0.0.1:1' }), (e) => isTunnError(e, 'UNAVAILABLE') && /the relay there is node nb, not nc/.test(e.message));
    } finally {
      await foreign.close();
    }
  });

  it('refuses a TLS client without a certificate', async () => {
    // Security: no unauthenticated internal port: a client that trusts the server but shows no certificate gets nothing.
    const before = received.length;
    serve = (_h, stream) => stream.end('must not happen');
    const noCert = () => tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: serverCreds.ca, ALPNProtocols: [ALPN_CLUSTER_LINK], checkServerIdentity: () => undefined });
    // At the TLS level: the relay ends the handshake with a "certificate required" alert.
    const alert = await new Promise<string>((resolve) => {
      const s = noCert();
      s.on('error', (e) => resolve(e.message));
      s.on('data', () => resolve('data'));
      s.on('close', () => resolve('closed without an alert'));
    });
    assert.match(alert, /certificate required/i);
    // And a stream attempted over such a connection gets no answer.
    const session = http2.connect('https://nb.link.invalid', { createConnection: () => noCert() });
    session.on('error', () => {});
    const outcome = await new Promise<string>((resolve) => {
      const req = session.request(forwardRequestHeaders({ host: 'grafana.tunn.example.com', kind: 'http', client: '127.0.0.1:1' }), { endStream: false });
      req.on('response', (h) => resolve(`response ${h[':status']}`));
      req.on('error', (e) => resolve(`error: ${e.message}`));
      req.on('close', () => resolve('closed'));
    });
    session.destroy();
    assert.doesNotMatch(outcome, /^response/);
    assert.equal(received.length, before, 'no stream reached the relay');
  });
});
