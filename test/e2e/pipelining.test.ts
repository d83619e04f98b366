import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createToken, request, startAgent, startRelay, until, type AgentHandle, type RelayHandle } from './harness.ts';

// Pipelined requests at the edge, with the real relay and agent processes (the in-process
// counterpart is src/relay/gateway.test.ts). Outcomes are asserted, never timings.

const MiB = 1024 * 1024;

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('pipelined requests', () => {
  let relay: RelayHandle;
  let agent: AgentHandle;
  // A target that accepts connections and never reads or answers.
  const deaf = net.createServer((c) => c.pause());
  const held: net.Socket[] = [];

  before(async () => {
    deaf.on('connection', (c) => held.push(c));
    deaf.listen(0, '127.0.0.1');
    await new Promise((r) => deaf.once('listening', r));
    relay = await startRelay();
    const port = (deaf.address() as net.AddressInfo).port;
    agent = await startAgent(relay, await createToken(relay, 'alice@example.com'), port, ['-n', 'deaf', '--public', '--inspect', '127.0.0.1:0', '--quiet']);
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    for (const c of held) c.destroy();
    deaf.close();
  });

  // Property (DoS): one connection pipelining requests to a target that never reads cannot grow
  // the relay's or the agent's memory with what it sends. Before the limit, 7 MB of `GET /`
  // grew them by ~200 MB; now the relay reads no further once 32 requests wait for a response.
  it('a client pipelining 7 MB of requests to a target that never reads does not grow relay or agent memory', { timeout: 120_000 }, async (t) => {
    const relayBefore = rss(relay.proc.child.pid!);
    const agentBefore = rss(agent.proc.child.pid!);
    const one = Buffer.from(`GET / HTTP/1.1\r\nHost: ${agent.host}\r\n\r\n`);
    const burst = Buffer.concat(Array(1000).fill(one));
    const total = Math.ceil((7 * MiB) / burst.length);
    const s = net.connect(relay.httpPort, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    let sent = 0;
    let stalledSince = Date.now();
    const pump = (): void => {
      while (sent < total && s.write(burst)) sent++;
      if (sent < total) {
        sent++;
        s.once('drain', () => {
          stalledSince = Date.now();
          pump();
        });
      }
    };
    stalledSince = Date.now();
    pump();
    // Until everything is sent or the relay has stopped reading for 5 s (kernel buffers full).
    await until(() => sent >= total || Date.now() - stalledSince > 5000, 60_000, 'the client to send or stall');
    const relayGrew = rss(relay.proc.child.pid!) - relayBefore;
    const agentGrew = rss(agent.proc.child.pid!) - agentBefore;
    s.destroy();
    t.diagnostic(`sent ${Math.round((sent * burst.length) / MiB)} MiB; relay RSS +${Math.round(relayGrew / MiB)} MiB, agent +${Math.round(agentGrew / MiB)} MiB`);
    // Generous: kernel-side bytes are not RSS; 48 MiB covers buffers, the GC's slack and a loaded machine.
    assert.ok(relayGrew < 48 * MiB, `relay RSS grew ${Math.round(relayGrew / MiB)} MiB (client sent ${Math.round((sent * burst.length) / MiB)} MiB)`);
    assert.ok(agentGrew < 48 * MiB, `agent RSS grew ${Math.round(agentGrew / MiB)} MiB`);
    // The relay still serves.
    const r = await request(`${relay.url}/v1/me`, { ca: relay.ca });
    assert.equal(r.status, 401);
  });

  // Property: a connection to the relay's own host gets every pipelined request served as
  // sent: the second is not lost, and the request inside its body is never served as one.
  it('the relay host serves each pipelined request, never one inside a body', async () => {
    const inner = `GET /v1/nope3-smuggled HTTP/1.1\r\nHost: ${relay.domain}\r\n\r\n`;
    const bytes = `GET /v1/nope1 HTTP/1.1\r\nHost: ${relay.domain}\r\n\r\nPOST /v1/nope2 HTTP/1.1\r\nHost: ${relay.domain}\r\nContent-Type: text/plain\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
    const s = net.connect(relay.httpPort, '127.0.0.1', () => s.write(bytes));
    s.on('error', () => {});
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const answered = (): string[] => relay.proc.lines.filter((l) => l.msg === 'answered by the relay' && String(l.path).startsWith('/v1/nope')).map((l) => String(l.path));
    await until(() => answered().length >= 2 && (got.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= 2, 15_000, 'two answers');
    // Anything more would arrive with these; give a stray third answer a moment to show.
    await new Promise((r) => setTimeout(r, 500));
    s.destroy();
    assert.deepEqual(answered(), ['/v1/nope1', '/v1/nope2']);
  });
});
