import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { readUntilClosed } from '../../test/support/read-all.ts';
import { tcpTarget } from '../../test/support/tcp-target.ts';
import { pairTunnel, startH2Pair } from '../../test/support/h2-pair.ts';
import { freePort } from '../../test/support/ports.ts';
import { h2Carrier } from '../agent/kinds/carrier.ts';
import { carryTcp } from '../agent/kinds/tcp.ts';
import { TunnelMetrics } from './metrics.ts';
import type { PortTunnel } from './public-port-tunnel.ts';
import { PublicTcpPort, type PublicTcpPortOptions } from './public-tcp.ts';

// A client on a public TCP port → the port → a real HTTP/2 stream → the agent's tcp kind → a
// real TCP target: every piece of the path but the relay's wiring (kind-ports.ts; end to end in test/e2e/tcp-udp.test.ts).

async function connect(port: number): Promise<Socket> {
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  c.on('error', () => {});
  await once(c, 'connect');
  return c;
}

/** Connects and resolves when the connection closes (it may be reset before 'connect'), with the bytes that came first. */
function closedWith(port: number): Promise<{ bytes: number }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  let bytes = 0;
  s.on('data', (d: Buffer) => (bytes += d.length));
  return new Promise((resolve) => s.once('close', () => resolve({ bytes })));
}

describe('public TCP port', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function portTo(targetPort: number, opts: Partial<PublicTcpPortOptions> & { admits?: (ip: string) => boolean; offline?: () => boolean } = {}): Promise<{ port: number; metrics: TunnelMetrics }> {
    const pair = await startH2Pair((stream) => void carryTcp(h2Carrier(stream), { target: { host: '127.0.0.1', port: targetPort } }));
    cleanups.push(() => pair.close());
    const metrics = new TunnelMetrics();
    const tunnel: PortTunnel = pairTunnel(pair, 'mc.tunn.test', metrics, opts.admits);
    const p = new PublicTcpPort({ port: 0, host: '127.0.0.1', idleTimeoutMs: 60_000, tunnel: () => (opts.offline?.() ? undefined : tunnel), ...opts });
    cleanups.push(() => p.close());
    return { port: await p.listen(), metrics };
  }

  it('carries a connection to the target with half-closes both ways, and counts it', async () => {
    const t = await tcpTarget((s) => void readUntilClosed(s).then((got) => s.end(`got:${got}`)));
    cleanups.push(t.close);
    const { port, metrics } = await portTo(t.port);
    const c = await connect(port);
    const reply = readUntilClosed(c);
    c.end('ping');
    assert.equal(await reply, 'got:ping');
    assert.equal(metrics.connections, 1);
    assert.equal(metrics.bytesIn, 4);
    assert.equal(metrics.bytesOut, 8);
  });

  it('closes the client at once, sending nothing, when the agent\'s target refuses', async () => {
    const { port, metrics } = await portTo(await freePort());
    assert.deepEqual(await closedWith(port), { bytes: 0 });
    assert.equal(metrics.drops.get('open-failed'), 1);
  });

  it('closes the client at once when no tunnel holds the port (agent offline)', async () => {
    const t = await tcpTarget((s) => s.end('should not see this'));
    cleanups.push(t.close);
    const { port } = await portTo(t.port, { offline: () => true });
    assert.deepEqual(await closedWith(port), { bytes: 0 });
  });

  // Guards: the tunnel's --allow-ip holds on its public port as on its HTTP host.
  it('refuses a client outside the tunnel\'s --allow-ip', async () => {
    const t = await tcpTarget((s) => s.end('secret'));
    cleanups.push(t.close);
    const { port, metrics } = await portTo(t.port, { admits: () => false });
    assert.deepEqual(await closedWith(port), { bytes: 0 });
    assert.equal(metrics.drops.get('allow-ip'), 1);
  });

  // Guards: one client (or a flood) cannot hold more than its share of a public port.
  it('holds connections to the per-IP and per-tunnel limits, and frees a slot when one closes', async () => {
    const held: Socket[] = [];
    const t = await tcpTarget((s) => {
      held.push(s);
      s.resume();
      // A client's FIN is a half-close; this target then finishes too, as most servers do.
      s.on('end', () => s.end());
    });
    cleanups.push(t.close);
    cleanups.push(() => held.forEach((s) => s.destroy()));
    const { port, metrics } = await portTo(t.port, { maxConnectionsPerIp: 2, maxConnections: 10 });
    const a = await connect(port);
    const b = await connect(port);
    a.write('x');
    b.write('x');
    while (held.length < 2) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(await closedWith(port), { bytes: 0 });
    assert.equal(metrics.drops.get('ip-limit'), 1);
    a.destroy();
    while (metrics.open > 1) await new Promise((r) => setTimeout(r, 10));
    const c = await connect(port);
    c.write('x');
    while (held.length < 3) await new Promise((r) => setTimeout(r, 10));
    b.destroy();
    c.destroy();

    const { port: small, metrics: m2 } = await portTo(t.port, { maxConnections: 1 });
    const only = await connect(small);
    only.write('x');
    while (m2.open < 1) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(await closedWith(small), { bytes: 0 });
    assert.equal(m2.drops.get('connection-limit'), 1);
    only.destroy();
  });
});
