import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { startH2Pair, type H2Pair } from '../../test/support/h2-pair.ts';
import { CapsuleDecoder, encodeDatagram } from '../protocol/capsules.ts';
import { DATA_HEADERS, MAX_STREAM_IDLE_MS } from '../protocol/messages.ts';
import { kindStreamHandlers, type KindTunnel } from './kind-handlers.ts';
import { readDataStream } from './stream-handlers.ts';

// The idle limit the relay sends with each tcp/udp stream (DATA_HEADERS.idleMs, the relay's
// --tcp-idle / --udp-flow-idle): the agent reads it strictly and its udp flows follow it, with the
// agent's own default only when the relay says nothing usable. Real HTTP/2 pair, real UDP echo.

const base = { [DATA_HEADERS.tunnel]: 't1', [DATA_HEADERS.client]: '192.0.2.7', [DATA_HEADERS.kind]: 'udp' };

describe('agent: the relay-sent idle limit of a data stream', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('reads the idle limit only as whole milliseconds in range', () => {
    assert.equal(readDataStream({ ...base, [DATA_HEADERS.idleMs]: '1500' }).idleMs, 1500);
    assert.equal(readDataStream({ ...base, [DATA_HEADERS.idleMs]: String(MAX_STREAM_IDLE_MS) }).idleMs, MAX_STREAM_IDLE_MS);
    assert.equal(readDataStream(base).idleMs, undefined, 'a relay before the header: the agent default applies');
    // (security) Whatever arrives, the agent never arms a timer Node would cut to 1 ms (values over
    // MAX_STREAM_IDLE_MS) or treat 0, a negative, a fraction, an exponent or padding as a limit.
    for (const bad of ['0', '-5', '1.5', '1e3', ' 100', '100 ', '0x10', 'abc', '', String(MAX_STREAM_IDLE_MS + 1), '99999999999999999999']) {
      assert.equal(readDataStream({ ...base, [DATA_HEADERS.idleMs]: bad }).idleMs, undefined, JSON.stringify(bad));
    }
  });

  async function udpEcho(): Promise<number> {
    const s = dgram.createSocket('udp4');
    s.on('message', (m, r) => s.send(m, r.port, r.address));
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    cleanups.push(() => s.close());
    return (s.address() as AddressInfo).port;
  }

  /** An agent-side pair whose udp handler is the agent's, with `agentDefaultMs` as the agent's own default. */
  async function pair(port: number, agentDefaultMs: number): Promise<H2Pair> {
    const handlers = kindStreamHandlers<KindTunnel>({ udpFlowIdleMs: agentDefaultMs });
    const tunnel: KindTunnel = { id: 't1', target: { host: '127.0.0.1', port } };
    const p = await startH2Pair((stream, headers) => handlers.udp!(stream, tunnel, readDataStream(headers)));
    cleanups.push(() => p.close());
    return p;
  }

  /** Opens a flow, checks the echo answers through it, and says whether the agent ended it within `ms`. */
  async function flowEndsWithin(p: H2Pair, headers: Record<string, string>, ms: number): Promise<boolean> {
    const { req, answer } = await p.open(headers);
    assert.deepEqual(answer, { open: true });
    const got: Buffer[] = [];
    const d = new CapsuleDecoder({ onDatagram: (x) => got.push(x) });
    req.on('data', (c: Buffer) => d.push(c));
    const closed = new Promise<true>((r) => req.once('close', () => r(true)));
    req.write(encodeDatagram(Buffer.from('hello')));
    for (const end = Date.now() + 10_000; got.length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got.map(String), ['hello']);
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([closed, new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    if (!ended) req.close();
    return ended;
  }

  it("keeps a silent flow while the relay's limit is longer than the agent's own default", async () => {
    const p = await pair(await udpEcho(), 200);
    // The agent alone would end it after 200 ms; the relay says 60 s: still open 2 s later.
    assert.equal(await flowEndsWithin(p, { ...base, [DATA_HEADERS.idleMs]: '60000' }, 2_000), false);
  });

  it("ends a silent flow after the relay's limit when it is shorter than the agent's own default", async () => {
    const p = await pair(await udpEcho(), 600_000);
    assert.equal(await flowEndsWithin(p, { ...base, [DATA_HEADERS.idleMs]: '300' }, 15_000), true);
  });

  it("falls back to the agent's own default when the relay sends no limit", async () => {
    const p = await pair(await udpEcho(), 300);
    assert.equal(await flowEndsWithin(p, base, 15_000), true);
  });
});
