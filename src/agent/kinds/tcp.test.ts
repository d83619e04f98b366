import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, describe, it } from 'node:test';
import { readAll } from '../../../test/support/read-all.ts';
import { tcpTarget } from '../../../test/support/tcp-target.ts';
import { startH2Pair, type H2Pair } from '../../../test/support/h2-pair.ts';
import { freePort } from '../../../test/support/ports.ts';
import { parseProxyV2, PP2_TYPE_TUNN_EMAIL, proxyTlvText, tunnProxyHeader } from '../../lib/proxy-v2.ts';
import { h2Carrier, newKindCounters } from './carrier.ts';
import { carryTcp, type TcpKindOptions, type TcpOutcome } from './tcp.ts';

/** Resolves when `e` emits 'close' (events.once would reject on the 'error' that comes first). */
function closed(e: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => e.once('close', () => resolve()));
}

describe('agent stream kind tcp', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const outcomes: TcpOutcome[] = [];
  const counters = newKindCounters();
  async function pairTo(opts: Omit<TcpKindOptions, 'counters'>): Promise<H2Pair> {
    const pair = await startH2Pair((stream) => void carryTcp(h2Carrier(stream), { ...opts, counters }).then((o) => outcomes.push(o)));
    cleanups.push(() => pair.close());
    return pair;
  }

  it('carries the opener\'s end to the target as a FIN, and the target\'s answer and FIN back', async () => {
    const t = await tcpTarget((s) => {
      // The target answers only after it saw the end of the request: that needs the half-close.
      void readAll(s).then((got) => s.end(`got:${got}`));
    });
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } });
    const { req, answer } = await pair.open();
    assert.deepEqual(answer, { open: true });
    const reply = readAll(req);
    req.end('hello');
    assert.equal(await reply, 'got:hello');
    assert.ok(counters.bytesToTarget >= 5 && counters.bytesFromTarget >= 9);
  });

  it('carries the target\'s shutdown(SHUT_WR) to the opener while the opener can still send', async () => {
    let later: Promise<string> | undefined;
    const t = await tcpTarget((s) => {
      later = readAll(s);
      s.end('banner\n');
    });
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } });
    const { req } = await pair.open();
    assert.equal(await readAll(req), 'banner\n');
    req.end('sent after the target finished');
    assert.equal(await later, 'sent after the target finished');
  });

  it('refuses with a typed reason at once when nothing listens on the target port', async () => {
    const port = await freePort();
    const pair = await pairTo({ target: { host: '127.0.0.1', port } });
    const { answer } = await pair.open();
    assert.equal(answer.open, false);
    assert.equal(!answer.open && answer.refusal.reason, 'target_refused');
    assert.match(!answer.open ? answer.refusal.message : '', new RegExp(`127\\.0\\.0\\.1:${port} \\(connection refused\\): is the service running\\?`));
  });

  it('sends the PROXY v2 header first, with the email TLV, when asked', async () => {
    let first: Promise<Buffer> | undefined;
    const t = await tcpTarget((s) => {
      first = new Promise((resolve) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => resolve(Buffer.concat(parts)));
      });
      s.end();
    });
    cleanups.push(t.close);
    const proxyHeader = tunnProxyHeader({ transport: 'tcp', source: { address: '203.0.113.7', port: 50000 }, destination: { address: '127.0.0.1', port: 443 }, email: 'ann@example.com' });
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port }, proxyHeader });
    const { req } = await pair.open();
    req.end('payload');
    const got = await first!;
    const parsed = parseProxyV2(got);
    assert.ok(parsed);
    assert.deepEqual(parsed.header.source, { address: '203.0.113.7', port: 50000 });
    assert.equal(proxyTlvText(parsed.header, PP2_TYPE_TUNN_EMAIL), 'ann@example.com');
    assert.equal(got.subarray(parsed.length).toString(), 'payload');
  });

  it('resets the stream when the target resets the connection', async () => {
    const t = await tcpTarget((s) => s.once('data', () => s.resetAndDestroy()));
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } });
    const { req } = await pair.open();
    req.write('x');
    await closed(req);
    assert.equal(req.rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
  });

  it('closes a connection idle both ways for the idle timeout, and the target sees it close', async () => {
    let targetClosed: Promise<unknown> | undefined;
    const t = await tcpTarget((s) => {
      targetClosed = closed(s);
      s.on('error', () => {});
      s.resume();
    });
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port }, idleTimeoutMs: 300 });
    const before = outcomes.length;
    const { req } = await pair.open();
    // Generous ceiling: the machine is shared; the point is that it ends, not when exactly.
    await Promise.race([closed(req), new Promise((_, rej) => setTimeout(() => rej(new Error('not closed within 20 s')), 20_000).unref())]);
    await targetClosed;
    while (outcomes.length === before) await new Promise((r) => setTimeout(r, 10));
    assert.equal(outcomes.at(-1), 'idle');
  });

  it('closes the target connection when the opener resets the stream', async () => {
    let targetClosed: Promise<unknown> | undefined;
    const t = await tcpTarget((s) => {
      targetClosed = closed(s);
      s.on('error', () => {});
      s.resume();
    });
    cleanups.push(t.close);
    const pair = await pairTo({ target: { host: '127.0.0.1', port: t.port } });
    const { req } = await pair.open();
    req.write('x');
    while (!targetClosed) await new Promise((r) => setTimeout(r, 10));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await targetClosed;
  });
});
