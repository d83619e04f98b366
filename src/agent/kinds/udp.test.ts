import assert from 'node:assert/strict';
import { once } from 'node:events';
import dgram from 'node:dgram';
import type { ClientHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { startH2Pair, type H2Pair } from '../../../test/support/h2-pair.ts';
import { CapsuleDecoder, encodeDatagram } from '../../protocol/capsules.ts';
import { h2Carrier, newKindCounters, type KindCounters } from './carrier.ts';
import { carryUdp, type UdpKindOptions, type UdpOutcome } from './udp.ts';

/** A UDP target on loopback that answers each datagram with `answer(msg)` (nothing when undefined). */
async function udpTarget(answer: (msg: Buffer) => Buffer | undefined): Promise<{ port: number; peers: Set<number>; close(): void }> {
  const s = dgram.createSocket('udp4');
  const peers = new Set<number>();
  s.on('message', (msg, rinfo) => {
    peers.add(rinfo.port);
    const a = answer(msg);
    if (a) s.send(a, rinfo.port, rinfo.address);
  });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return { port: (s.address() as AddressInfo).port, peers, close: () => s.close() };
}

/** Datagrams arriving on a stream the test opened, decoded from capsules. */
function datagrams(req: ClientHttp2Stream): Buffer[] {
  const got: Buffer[] = [];
  const d = new CapsuleDecoder({ onDatagram: (p) => got.push(p) });
  req.on('data', (c: Buffer) => d.push(c));
  return got;
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('agent stream kind udp', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  async function pairTo(opts: Omit<UdpKindOptions, 'counters'>, counters: KindCounters, outcomes: UdpOutcome[] = []): Promise<H2Pair> {
    const pair = await startH2Pair((stream) => void carryUdp(h2Carrier(stream), { ...opts, counters }).then((o) => outcomes.push(o)));
    cleanups.push(() => pair.close());
    return pair;
  }

  it('carries many small datagrams both ways as capsules, counting each', async () => {
    const t = await udpTarget((m) => Buffer.concat([Buffer.from('re:'), m]));
    cleanups.push(t.close);
    const counters = newKindCounters();
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } }, counters);
    const { req, answer } = await pair.open();
    assert.deepEqual(answer, { open: true });
    const got = datagrams(req);
    // In rounds, so loopback buffers never overflow on a busy machine: loss here is a bug.
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 20; i++) req.write(encodeDatagram(Buffer.from(`d${round * 20 + i}`)));
      await until(() => got.length >= (round + 1) * 20, `round ${round}`);
    }
    assert.deepEqual(new Set(got.map(String)), new Set(Array.from({ length: 200 }, (_, i) => `re:d${i}`)));
    assert.equal(counters.datagramsToTarget, 200);
    assert.equal(counters.datagramsFromTarget, 200);
    assert.deepEqual(counters.drops, {});
  });

  it('drops and counts datagrams over the limit, either way, and carries the rest', async () => {
    const t = await udpTarget((m) => (m.toString() === 'big please' ? Buffer.alloc(2000) : Buffer.from('small')));
    cleanups.push(t.close);
    const counters = newKindCounters();
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port }, maxDatagram: 1000 }, counters);
    const { req } = await pair.open();
    const got = datagrams(req);
    req.write(encodeDatagram(Buffer.alloc(1500)));
    req.write(encodeDatagram(Buffer.from('big please')));
    await until(() => counters.drops.oversize === 2, 'two oversize drops');
    req.write(encodeDatagram(Buffer.from('hello')));
    await until(() => got.length === 1, 'the small answer');
    assert.equal(got[0]!.toString(), 'small');
    assert.equal(counters.datagramsToTarget, 2, 'the 1500-byte datagram never reached the target');
  });

  it('gives each flow its own socket, so answers go back to the flow that asked', async () => {
    const t = await udpTarget((m) => m);
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } }, newKindCounters());
    const a = await pair.open();
    const b = await pair.open();
    const gotA = datagrams(a.req);
    const gotB = datagrams(b.req);
    a.req.write(encodeDatagram(Buffer.from('from a')));
    b.req.write(encodeDatagram(Buffer.from('from b')));
    await until(() => gotA.length === 1 && gotB.length === 1, 'both answers');
    assert.equal(String(gotA[0]), 'from a');
    assert.equal(String(gotB[0]), 'from b');
    assert.equal(t.peers.size, 2);
  });

  it('ends a flow with no datagram either way for the idle timeout', async () => {
    const t = await udpTarget(() => undefined);
    cleanups.push(t.close);
    const outcomes: UdpOutcome[] = [];
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port }, idleTimeoutMs: 300 }, newKindCounters(), outcomes);
    const { req } = await pair.open();
    req.write(encodeDatagram(Buffer.from('one')));
    // Generous ceiling: what matters is that the flow ends by itself.
    await until(() => outcomes.length === 1, 'the flow to idle out');
    assert.deepEqual(outcomes, ['idle']);
    await until(() => req.closed, 'the stream to close');
  });

  it('refuses with a typed reason when the target host does not resolve', async () => {
    const pair = await pairTo({ target: { host: 'nowhere.invalid', port: 53 }, resolve: () => Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' })) }, newKindCounters());
    const { answer } = await pair.open();
    assert.deepEqual(answer, { open: false, refusal: { reason: 'target_unreachable', message: 'cannot resolve nowhere.invalid: ENOTFOUND' } });
  });
});
