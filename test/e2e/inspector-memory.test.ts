import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { createToken, request, startAgent, startRelay, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Property guarded: the inspector's memory is bounded (500 requests or 64 MiB of captured
// bodies) however much passes, and a page that does not read its live events loses them, not
// the tunnel its traffic. 2,000 uploads of 1 MiB through a real relay and agent.

const MiB = 1024 * 1024;

describe('inspector memory bound', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  let inspect: URL;

  async function stats(): Promise<{ entries: number; retainedBytes: number; maxEntries: number; maxBytes: number; rss: number }> {
    const r = await request(`${inspect.origin}/api/stats`, { headers: { Authorization: `Bearer ${new URLSearchParams(inspect.hash.slice(1)).get('token')}` } });
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text);
  }

  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    agent = await startAgent(relay, await createToken(relay, 'alice@example.com'), origin.port, ['-n', 'bulk', '--public', '--inspect', '127.0.0.1:0', '--quiet']);
    inspect = new URL(String(agent.proc.lines.find((l) => l.event === 'ready')!.inspectUrl));
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
  });

  it('holds after 2,000 requests with 1 MiB bodies, with a stalled live page attached', { timeout: 600_000 }, async () => {
    const baseline = (await stats()).rss;
    // A page that never reads its event stream.
    const stalled = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${inspect.origin}/api/events`, { headers: { Authorization: `Bearer ${new URLSearchParams(inspect.hash.slice(1)).get('token')}` } }, resolve).on('error', reject);
    });
    stalled.pause();

    const body = Buffer.alloc(MiB, 0x61);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const url = new URL(`${agent.httpUrl}/upload`);
    let next = 0;
    let ok = 0;
    const one = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = http.request(url, { method: 'POST', agent: keepAlive, lookup: localhostAwareLookup as never, headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === 200 && JSON.parse(Buffer.concat(chunks).toString()).received === MiB) ok++;
            resolve();
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < 2000) {
          next++;
          await one();
        }
      }),
    );
    keepAlive.destroy();
    assert.equal(ok, 2000, 'every request went through');
    const s = await stats();
    assert.ok(s.entries <= 500, `${s.entries} entries kept`);
    assert.ok(s.retainedBytes <= 64 * MiB, `${s.retainedBytes} bytes retained`);
    assert.ok(s.retainedBytes >= 32 * MiB, `capture kept bodies (${s.retainedBytes} bytes)`);
    // Generous: the bound plus 256 MiB for buffers, the GC's slack and a loaded machine.
    assert.ok(s.rss <= baseline + 64 * MiB + 256 * MiB, `agent RSS ${Math.round(s.rss / MiB)} MiB (baseline ${Math.round(baseline / MiB)} MiB)`);
    // (Whether it was cut off depends on how much the kernel buffered; server.test.ts checks the cut-off.)
    stalled.destroy();
  });
});
