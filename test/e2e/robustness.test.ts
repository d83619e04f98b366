import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createToken, request, startAgent, startRelay, until, type AgentHandle, type RelayHandle } from './harness.ts';

// Robustness of the data plane (issue 2): real relay and agent processes, a real origin on
// port 0, loopback only. Outcomes are asserted, never timings.
//
// The burst of 5,000 runs with at most BURST_IN_FLIGHT clients open at once. All 5,000 at once
// asks the origin for 5 GiB in one go: about 1.3 GB of it parks in kernel socket buffers
// (origin → agent) while the responses queue for the agent link, the kernel's tcp_mem
// pressure threshold (1.5 GiB here) is crossed, and the agent link itself starts losing
// packets — a kernel limit of the test machine, not of the tunnel's state (see bench/RESULTS.md).
// The 10,000 spread aborts run over a full minute, as the issue says.

const ABORT_BURST = 5_000;
const ABORTS_SPREAD = 10_000;
const BURST_IN_FLIGHT = 1_000;
const ABORT_SPREAD_MS = Number(process.env.TUNN_ABORT_SPREAD_MS ?? 60_000);
const KEEPALIVE_CONNS = 1_000;
const REQUESTS_PER_CONN = 5;

const BIG = Buffer.alloc(1024 * 1024, 'x');

interface Origin {
  server: http.Server;
  port: number;
}

async function startOrigin(): Promise<Origin> {
  const server = http.createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
      res.end(BIG);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`ok ${req.url}`);
  });
  server.keepAliveTimeout = 60_000;
  server.maxConnections = 20_000;
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** One public client: GET /big on the relay's plain HTTP port, hang up on the first bytes. */
function abortingClient(port: number, host: string, reset: boolean): Promise<'aborted' | string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let done = false;
    const finish = (r: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      s.destroy();
      finish('no response within 60 s');
    }, 60_000);
    s.on('connect', () => s.write(`GET /big HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
    let got = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      // Hang up once the status line's first 12 bytes are in (TCP may deliver fewer at first).
      got = Buffer.concat([got, chunk]);
      if (got.length < 12 || done) return;
      const d = got;
      const head = d.toString('latin1', 0, 12);
      if (reset) s.resetAndDestroy();
      else s.destroy();
      finish(head === 'HTTP/1.1 200' ? 'aborted' : `unexpected response: ${d.toString('latin1').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(-300)}`);
    });
    s.on('error', (err) => finish(`client error: ${err.message}`));
    s.on('close', () => finish('closed before any response byte'));
  });
}

/** Runs fn(0..n-1) with at most `limit` running at once. */
async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}

/** Both agent sessions registered (the agent says so as they come up). */
async function bothSessions(agent: AgentHandle): Promise<void> {
  await until(() => agent.proc.lines.some((l) => /online \(2\/2 sessions\)/.test(String(l.detail ?? l.message ?? ''))), 10_000, 'both agent sessions online');
}

function tally(results: string[]): { ok: number; failures: Map<string, number> } {
  const failures = new Map<string, number>();
  let ok = 0;
  for (const r of results) {
    if (r === 'aborted' || r === 'ok') ok++;
    else failures.set(r, (failures.get(r) ?? 0) + 1);
  }
  return { ok, failures };
}

/** Sequential plain GETs through the tunnel (new connection each), all must succeed. */
async function plainGets(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await request(`${url}/hello-${i}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, `ok /hello-${i}`);
  }
}

function sessionEvents(agent: AgentHandle): string[] {
  return agent.proc.lines.filter((l) => l.event === 'state' || l.event === 'notice' || l.event === 'fatal').map((l) => `${String(l.event)}: ${String(l.state ?? '')} ${String(l.detail ?? l.message ?? '')}`);
}

function relayAgentConnects(relay: RelayHandle): number {
  return relay.proc.lines.filter((l) => l.msg === 'agent connected').length;
}

describe('data plane robustness', { timeout: 240_000 }, () => {
  let origin: Origin;
  let relay: RelayHandle;
  let token: string;

  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    token = await createToken(relay, 'robust@example.com');
  });

  after(async () => {
    await relay?.stop();
    origin?.server.closeAllConnections();
    origin?.server.close();
  });

  it('survives a burst of 5,000 aborted downloads, then 10,000 spread aborts, and keeps serving on the same sessions', async () => {
    const agent = await startAgent(relay, token, origin.port, ['--quiet', '--public']);
    try {
      await bothSessions(agent);
      const connectsBefore = relayAgentConnects(relay);
      const eventsBefore = sessionEvents(agent).length;
      const host = new URL(agent.httpUrl).hostname;
      const port = relay.httpPort;
      await plainGets(agent.httpUrl, 5);

      // The burst: all at once. Half close normally, half with a TCP reset.
      const burst = await pool(ABORT_BURST, BURST_IN_FLIGHT, (i) => abortingClient(port, host, i % 2 === 1));
      const b = tally(burst);
      assert.equal(b.ok, ABORT_BURST, `burst: ${JSON.stringify([...b.failures])}`);
      await plainGets(agent.httpUrl, 20);

      // 10,000 more, spread evenly over ABORT_SPREAD_MS.
      const spread: Promise<string>[] = [];
      const start = Date.now();
      for (let i = 0; i < ABORTS_SPREAD; i++) {
        const due = start + (i * ABORT_SPREAD_MS) / ABORTS_SPREAD;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        spread.push(abortingClient(port, host, i % 2 === 1));
      }
      const s = tally(await Promise.all(spread));
      assert.equal(s.ok, ABORTS_SPREAD, `spread: ${JSON.stringify([...s.failures])}`);

      // Still up and serving, on the same sessions: no reconnect on either side.
      await plainGets(agent.httpUrl, 50);
      const concurrent = await Promise.all(Array.from({ length: 200 }, (_, i) => request(`${agent.httpUrl}/c-${i}`)));
      assert.deepEqual(
        concurrent.map((r) => r.status),
        concurrent.map(() => 200),
      );
      assert.equal(agent.proc.child.exitCode, null, 'agent exited');
      assert.deepEqual(sessionEvents(agent).slice(eventsBefore), [], 'agent changed state or lost a session');
      assert.equal(relayAgentConnects(relay), connectsBefore, 'an agent session reconnected');
    } finally {
      await agent.stop();
    }
  });

  it('serves 1,000 concurrent keep-alive connections with zero errors', async () => {
    const agent = await startAgent(relay, token, origin.port, ['--quiet', '--public']);
    try {
      await bothSessions(agent);
      const url = new URL(agent.httpUrl);
      const agents = Array.from({ length: KEEPALIVE_CONNS }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
      const errors: string[] = [];
      let reused = 0;
      const one = (a: http.Agent, i: number, j: number): Promise<void> =>
        new Promise((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: url.port, path: `/k-${i}-${j}`, headers: { host: url.host }, agent: a }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const body = Buffer.concat(chunks).toString();
              if (res.statusCode !== 200 || body !== `ok /k-${i}-${j}`) errors.push(`${res.statusCode} ${body.slice(0, 80)}`);
              resolve();
            });
            res.on('error', (e) => {
              errors.push(e.message);
              resolve();
            });
          });
          req.on('socket', () => {
            if (req.reusedSocket) reused++;
          });
          req.on('error', (e) => {
            errors.push(e.message);
            resolve();
          });
        });
      // First request on every connection, all at once; then, with all 1,000 open, the rest.
      await Promise.all(agents.map((a, i) => one(a, i, 0)));
      const open = agents.reduce((n, a) => n + Object.values(a.freeSockets).reduce((m, l) => m + (l?.length ?? 0), 0), 0);
      assert.equal(open, KEEPALIVE_CONNS, 'every connection stayed open');
      await Promise.all(
        agents.map(async (a, i) => {
          for (let j = 1; j < REQUESTS_PER_CONN; j++) await one(a, i, j);
        }),
      );
      for (const a of agents) a.destroy();
      assert.deepEqual(errors, []);
      assert.equal(reused, KEEPALIVE_CONNS * (REQUESTS_PER_CONN - 1), 'later requests reused their keep-alive connection');
      assert.deepEqual(sessionEvents(agent).filter((e) => !/^state: (connecting|online)|^notice: {2}session \d online/.test(e)), []);
    } finally {
      await agent.stop();
    }
  });

  it('notices a session that dies and replaces it, with no failed requests meanwhile', async () => {
    // The agent reaches the relay through a TCP proxy in this process, so the test can cut
    // one of its sessions the way a network drop would (a reset on both ends).
    const links: { a: net.Socket; b: net.Socket }[] = [];
    const proxy = net.createServer((a) => {
      const b = net.connect({ port: relay.httpsPort, host: '127.0.0.1' });
      a.pipe(b).pipe(a);
      a.on('error', () => b.destroy());
      b.on('error', () => a.destroy());
      a.on('close', () => b.destroy());
      b.on('close', () => a.destroy());
      links.push({ a, b });
    });
    proxy.listen(0, '127.0.0.1');
    await new Promise((r) => proxy.once('listening', r));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    const viaProxy: RelayHandle = { ...relay, url: `https://${relay.domain}:${proxyPort}` };
    const agent = await startAgent(viaProxy, token, origin.port, ['--quiet', '--public', '--sessions', '2']);
    try {
      await bothSessions(agent);
      assert.equal(links.filter((l) => !l.a.destroyed).length, 2);
      const connectsBefore = relayAgentConnects(relay);
      await until(() => connectsBefore >= 2, 10_000, 'relay saw both sessions');
      await plainGets(agent.httpUrl, 10);

      // Sequential requests, each on a new public connection; one session is cut between two
      // of them (a request in flight on a cut session is lost with it, as with any tunnel).
      let failed = 0;
      let ok = 0;
      const why: string[] = [];
      const kill = links.find((l) => !l.a.destroyed)!;
      for (let i = 0; i < 300; i++) {
        if (i === 50) {
          kill.a.resetAndDestroy();
          kill.b.resetAndDestroy();
        }
        try {
          const r = await request(`${agent.httpUrl}/during-${i}`);
          if (r.status === 200 && r.text === `ok /during-${i}`) ok++;
          else {
            failed++;
            why.push(`#${i}: ${r.status} ${r.text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(-160)}`);
          }
        } catch (err) {
          failed++;
          why.push(`#${i}: ${(err as Error).message}`);
        }
      }
      const relayWarnings = relay.proc.lines.filter((l) => Number(l.level) >= 40 || /session|tunnel/.test(String(l.msg))).slice(-12);
      assert.equal(failed, 0, `failed requests: ${failed} (${why.slice(0, 3).join('; ')}); agent: ${JSON.stringify(sessionEvents(agent))}; relay: ${JSON.stringify(relayWarnings)}`);
      assert.equal(ok, 300);
      await until(() => relayAgentConnects(relay) > connectsBefore, 10_000, 'a replacement session at the relay');
      const events = sessionEvents(agent);
      assert.ok(
        events.some((e) => /session \d lost/.test(e)),
        `agent logged the lost session: ${JSON.stringify(events)}`,
      );
      const lostAt = events.findIndex((e) => /session \d lost/.test(e));
      await until(() => sessionEvents(agent).slice(lostAt).some((e) => /session \d online \(2\/2 sessions\)/.test(e)), 10_000, 'the agent to log the replacement session');
      assert.ok(!events.some((e) => e.startsWith('state: reconnecting')), 'the tunnel as a whole never went offline');
      await plainGets(agent.httpUrl, 20);
    } finally {
      await agent.stop();
      proxy.close();
      for (const l of links) l.a.destroy();
    }
  });
});
