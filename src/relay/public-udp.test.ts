import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { pairTunnel, startH2Pair } from '../../test/support/h2-pair.ts';
import { h2Carrier } from '../agent/kinds/carrier.ts';
import { carryUdp } from '../agent/kinds/udp.ts';
import { TunnelMetrics } from './metrics.ts';
import { FlowBudget, PublicUdpPort, type PublicUdpPortOptions } from './public-udp.ts';

// A UDP client → a public UDP port → a real HTTP/2 stream per flow → the agent's udp kind → a real
// UDP target (an echo, a DNS server queried by Debian's dig). Everything but the relay's wiring.

const run = promisify(execFile);

async function udpTarget(answer: (msg: Buffer) => Buffer | undefined): Promise<{ port: number; sent: () => number; close(): void }> {
  const s = dgram.createSocket('udp4');
  let sent = 0;
  s.on('message', (msg, r) => {
    const a = answer(msg);
    if (!a) return;
    sent += a.length;
    s.send(a, r.port, r.address);
  });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return { port: (s.address() as AddressInfo).port, sent: () => sent, close: () => s.close() };
}

/** A UDP client socket that records every byte it receives. */
async function client(): Promise<{ socket: dgram.Socket; got: Buffer[]; bytes: () => number; send(port: number, text: string | Buffer): void; close(): void }> {
  const socket = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, got, bytes: () => got.reduce((n, b) => n + b.length, 0), send: (port, text) => socket.send(text, port, '127.0.0.1'), close: () => socket.close() };
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

describe('public UDP port', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function portTo(targetPort: number, opts: Partial<PublicUdpPortOptions> & { offline?: boolean } = {}): Promise<{ port: PublicUdpPort; metrics: TunnelMetrics }> {
    const pair = await startH2Pair((stream) => void carryUdp(h2Carrier(stream), { target: { host: '127.0.0.1', port: targetPort } }));
    cleanups.push(() => pair.close());
    const metrics = new TunnelMetrics();
    const tunnel = pairTunnel(pair, 'wg.tunn.test', metrics);
    const port = new PublicUdpPort({ port: 0, host: '127.0.0.1', budget: new FlowBudget(100), tunnel: () => (opts.offline ? undefined : tunnel), ...opts });
    cleanups.push(() => port.close());
    await port.listen();
    return { port, metrics };
  }

  it('answers a DNS query from dig through the port', async () => {
    const dns = await udpTarget((m) => {
      const q = dnsPacket.decode(m);
      return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.44' }] });
    });
    cleanups.push(dns.close);
    const { port } = await portTo(dns.port);
    const r = await run('dig', ['@127.0.0.1', '-p', String(port.port), 'game.example.test', 'A', '+short', '+tries=3', '+time=5']);
    assert.equal(r.stdout.trim(), '192.0.2.44');
  });

  it('carries many small datagrams both ways, one flow per client, counting them', async () => {
    const echo = await udpTarget((m) => m);
    cleanups.push(echo.close);
    const { port, metrics } = await portTo(echo.port);
    const a = await client();
    const b = await client();
    cleanups.push(a.close, b.close);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20; i++) {
        a.send(port.port, `a${round * 20 + i}`);
        b.send(port.port, `b${round * 20 + i}`);
      }
      await until(() => a.got.length >= (round + 1) * 20 && b.got.length >= (round + 1) * 20, `round ${round}`);
    }
    assert.ok(a.got.every((m) => m.toString().startsWith('a')) && b.got.every((m) => m.toString().startsWith('b')), 'each answer went to the flow that asked');
    assert.equal(port.flows, 2);
    assert.equal(metrics.flows, 2);
    assert.equal(metrics.datagramsIn, 200);
    assert.equal(metrics.datagramsOut, 200);
    assert.deepEqual([...metrics.drops], []);
  });

  // Guards: no amplification. A client receives only what the target sent back on its flow —
  // never more bytes, and nothing at all when the relay refuses the flow (spoofable sources).
  it('sends a client exactly the bytes the target sent it, and nothing of its own', async () => {
    const target = await udpTarget((m) => (m.toString() === 'quiet' ? undefined : Buffer.from('ok')));
    cleanups.push(target.close);
    const { port, metrics } = await portTo(target.port, { maxFlows: 1 });
    const c = await client();
    cleanups.push(c.close);
    c.send(port.port, Buffer.alloc(1000, 1));
    c.send(port.port, 'quiet');
    await until(() => c.got.length === 1, 'one answer');
    await settle();
    assert.equal(c.bytes(), target.sent());
    assert.equal(c.bytes(), 2);

    // A second source over the flow cap: dropped, counted, and sent nothing.
    const over = await client();
    cleanups.push(over.close);
    over.send(port.port, 'hello?');
    await until(() => metrics.drops.get('flow-limit') === 1, 'the flow-limit drop');
    await settle();
    assert.equal(over.bytes(), 0);
  });

  it('sends nothing to anyone while no tunnel holds the port', async () => {
    const target = await udpTarget(() => Buffer.from('never'));
    cleanups.push(target.close);
    const { port } = await portTo(target.port, { offline: true });
    const c = await client();
    cleanups.push(c.close);
    c.send(port.port, 'anyone?');
    await settle();
    assert.equal(c.bytes(), 0);
    assert.equal(port.flows, 0);
  });

  it('caps flows across the relay with the shared budget', async () => {
    const echo = await udpTarget((m) => m);
    cleanups.push(echo.close);
    const budget = new FlowBudget(1);
    const first = await portTo(echo.port, { budget });
    const second = await portTo(echo.port, { budget });
    const c = await client();
    cleanups.push(c.close);
    c.send(first.port.port, 'one');
    await until(() => c.got.length === 1, 'the first flow');
    c.send(second.port.port, 'two');
    await until(() => second.metrics.drops.get('flow-limit-relay') === 1, 'the relay-wide drop');
    assert.equal(budget.open, 1);
  });

  it('ends a flow idle both ways, freeing its place in the budget', async () => {
    const echo = await udpTarget((m) => m);
    cleanups.push(echo.close);
    const budget = new FlowBudget(10);
    const { port, metrics } = await portTo(echo.port, { budget, flowIdleMs: 300 });
    const c = await client();
    cleanups.push(c.close);
    c.send(port.port, 'x');
    await until(() => c.got.length === 1, 'the answer');
    // Generous ceiling: the point is that it ends by itself.
    await until(() => port.flows === 0, 'the flow to idle out');
    assert.equal(budget.open, 0);
    assert.equal(metrics.flowsOpen, 0);
  });
});
