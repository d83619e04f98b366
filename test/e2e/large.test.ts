import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { createToken, startAgent, startRelay, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// 1 GiB each way through one tunnel: bodies are streamed, never buffered, so the relay's and
// the agent's peak memory stays far below the size of what passed through them.

const GiB = 1024 ** 3;
/** Peak resident set of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('large bodies', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    agent = await startAgent(relay, await createToken(relay, 'alice@example.com'), origin.port, ['-n', 'bulk', '--public', '--quiet']);
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
  });

  it('downloads and uploads 1 GiB with bounded memory on relay and agent', async () => {
    const downloaded = await new Promise<number>((resolve, reject) => {
      http
        .get(`${agent.httpUrl}/download?size=${GiB}`, { lookup: localhostAwareLookup as never, agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(downloaded, GiB);

    const uploaded = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${agent.httpUrl}/upload`, { method: 'POST', headers: { 'content-length': String(GiB) }, lookup: localhostAwareLookup as never, agent: false }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(1024 * 1024, 0x62);
      let sent = 0;
      const pump = (): void => {
        while (sent < GiB) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.deepEqual(JSON.parse(uploaded), { received: GiB });

    const limit = 400 * 1024 * 1024;
    for (const [who, pid] of [['relay', relay.proc.child.pid!], ['agent', agent.proc.child.pid!]] as const) {
      const peak = peakRss(pid);
      assert.ok(peak < limit, `${who} peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB after 2 GiB passed through`);
    }
  });
});
