import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { pairTunnel, startH2Pair } from '../../test/support/h2-pair.ts';
import { h2Carrier } from '../agent/kinds/carrier.ts';
import { carryTcp } from '../agent/kinds/tcp.ts';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { normalizeHost } from '../lib/host.ts';
import { carryConnection } from './carry-connection.ts';
import { parseClientHello } from './client-hello.ts';
import { TunnelMetrics } from './metrics.ts';

// TLS passthrough (`tunn tls 8443 -n app --public`, backend raw) with every part but the edge's
// routing table: a listener that peeks the ClientHello's SNI as the edge does (client-hello.ts)
// and hands the connection, peeked bytes first, to carryConnection → a real HTTP/2 stream → the
// agent's tcp kind → a target that terminates TLS with its own CA. The relay holds no certificate.

describe('TLS passthrough through carryConnection', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('lets the client verify the target\'s own certificate end to end, and gives an unknown name nothing', async () => {
    const ca = await createCa('the target\'s own CA');
    const leaf = await issueLeaf(ca, ['app.tunn.test']);
    const target = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(`tls ends at the target; you said ${d.toString()}`));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => target.close());
    const pair = await startH2Pair((s) => void carryTcp(h2Carrier(s), { target: { host: '127.0.0.1', port: (target.address() as AddressInfo).port } }));
    cleanups.push(() => pair.close());
    const metrics = new TunnelMetrics();
    const tunnel = pairTunnel(pair, 'app.tunn.test', metrics);

    // The edge, reduced to its passthrough route: SNI → tunnel; any other name → nothing.
    const edge = net.createServer((socket) => {
      socket.on('error', () => {});
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d]);
        const r = parseClientHello(buf);
        if (r.kind === 'need-more') return;
        socket.off('data', onData);
        if (r.kind === 'ok' && normalizeHost(r.info.serverName ?? '') === 'app.tunn.test') void carryConnection(socket, tunnel, { head: buf, idleTimeoutMs: 60_000 });
        else socket.destroy();
      };
      socket.on('data', onData);
    });
    edge.listen(0, '127.0.0.1');
    await once(edge, 'listening');
    cleanups.push(() => edge.close());
    const port = (edge.address() as AddressInfo).port;

    const c = tls.connect({ host: '127.0.0.1', port, servername: 'App.Tunn.Test', ca: ca.certPem });
    await once(c, 'secureConnect');
    assert.equal(c.authorized, true);
    assert.equal((c.getPeerCertificate() as tls.PeerCertificate).subjectaltname, 'DNS:app.tunn.test');
    c.write('hello');
    let text = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (text += d));
    await once(c, 'end');
    assert.equal(text, 'tls ends at the target; you said hello');
    assert.equal(metrics.connections, 1);

    const stranger = tls.connect({ host: '127.0.0.1', port, servername: 'other.tunn.test', ca: ca.certPem });
    const err = await new Promise<Error>((resolve) => stranger.once('error', resolve));
    assert.match(err.message, /socket disconnected|ECONNRESET/);
  });
});
