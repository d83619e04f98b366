import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../support/cluster.ts';
import type { Postgres } from '../support/postgres.ts';
import { request, startAgent, type RelayHandle, until } from './harness.ts';

// Issue 14: the database restarting or unreachable. Two relays on one PostgreSQL (real
// processes); PostgreSQL is stopped for longer than the identity cache window and started
// again while visitors keep requesting a public tunnel through both relays.

// Test-only: the identity cache window during a database outage (default 30 s), short here.
const WINDOW_MS = 3000;


describe('a relay cluster while PostgreSQL restarts (real processes)', () => {
  let cluster: TestCluster;
  let pg: Postgres;
  const relays: RelayHandle[] = [];
  const procs: { stop(): Promise<void> }[] = [];
  let origin: http.Server;
  let originPort: number;

  before(async () => {
    origin = http.createServer((req, res) => {
      if (req.url === '/stream') return void res.writeHead(200).write('start\n'); // stays open
      res.end(`origin saw ${req.url}`);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as AddressInfo).port;
    cluster = await startCluster({ relays: 2, prefix: 'tunn-e2e-outage-', env: { TUNN_TEST_IDENTITY_OUTAGE_MS: String(WINDOW_MS) } });
    pg = cluster.pg;
    relays.push(...cluster.relays);
  });
  after(async () => {
    for (const p of procs) await p.stop();
    origin?.closeAllConnections();
    origin?.close();
    await cluster?.stop();
  });

  const token = (email: string): Promise<string> => cluster.token(email);

  it('public tunnels serve without a failed request, identity-gated ones answer 503 after the window, and the relays reconnect', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const pub = await startAgent(a, await token('ann@example.com'), originPort, ['-n', 'open', '--public']);
    procs.push(pub);
    const gated = await startAgent(a, await token('ann@example.com'), originPort, ['-n', 'closed']);
    procs.push(gated);
    const visitor = await token('ann@example.com');
    const gatedGet = () => request(`https://${gated.host}:${a.httpsPort}/me`, { ca: a.ca, headers: { authorization: `Bearer ${visitor}`, accept: 'application/json' } });
    for (const r of [a, b]) await until(async () => (await request(`https://${pub.host}:${r.httpsPort}/`, { ca: r.ca })).status === 200, 10_000, `${r.url} to route ${pub.host}`);
    assert.equal((await gatedGet()).status, 200, 'the identity-gated tunnel lets its owner in while the database answers');

    // Load: visitors keep requesting the public tunnel through both relays the whole time.
    const failures: string[] = [];
    let phase = 'database up';
    let ok = 0;
    let loading = true;
    const loop = async (r: RelayHandle): Promise<void> => {
      while (loading) {
        try {
          const res = await request(`https://${pub.host}:${r.httpsPort}/load`, { ca: r.ca });
          if (res.status === 200 && res.text === 'origin saw /load') ok++;
          else failures.push(`${phase}: ${r.url}: ${res.status} ${res.text.slice(0, 200)}`);
        } catch (err) {
          failures.push(`${phase}: ${r.url}: ${(err as Error).message}`);
        }
      }
    };
    const loads = [loop(a), loop(b), loop(a), loop(b)];
    // A signed-in live connection (a stream through B to the gated tunnel on A), open before the outage.
    let streamOpen = false;
    const streamClosed = new Promise<void>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: b.httpsPort, path: '/stream', servername: gated.host, ca: b.ca, headers: { host: `${gated.host}:${b.httpsPort}`, authorization: `Bearer ${visitor}`, accept: 'application/json' } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
        res.once('data', () => (streamOpen = true));
        res.on('close', () => ((streamOpen = false), resolve()));
        res.on('error', () => {});
      });
      req.on('error', () => ((streamOpen = false), resolve()));
      req.end();
    });
    await until(() => streamOpen, 10_000, 'the signed-in stream to open');
    try {
      await pg.stopServer();
      phase = 'database stopped';
      // Within the window the owner's last answer is reused (after it: fail closed).
      const early = await gatedGet();
      assert.ok(early.status === 200 || early.status === 503, `${early.status} ${early.text}`);
      await until(async () => a.proc.lines.some((l) => l.event === 'cluster_database_lost'), 20_000, 'A to log that it lost the database');
      await new Promise((r) => setTimeout(r, WINDOW_MS + 500));
      const late = await gatedGet();
      assert.equal(late.status, 503, late.text);
      // Past the window the live signed-in stream is cut too (fail closed), as A's log says.
      await until(() => !streamOpen, 10_000, 'the signed-in stream to be cut once its last answer is past the window');
      await streamClosed;
      assert.ok(a.proc.lines.some((l) => l.event === 'live_connections_failed_closed' && Number(l.windowMs) === WINDOW_MS), "A's log says why it cut the stream");
      assert.match(late.text, /the relay cannot reach its database to check who you are; try again shortly/);
      const okDuring = ok;
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(ok > okDuring, 'the public tunnel kept serving during the outage');
      phase = 'database starting';
      await pg.startServer();
      for (const r of [a, b]) await until(() => r.proc.lines.some((l) => l.event === 'cluster_database_back'), 30_000, `${r.url} to log that it reached the database again`);
    } finally {
      loading = false;
      await Promise.all(loads);
    }
    assert.deepEqual(failures, [], `${failures.length} failed requests to the public tunnel (of ${ok + failures.length}; A is ${a.url}, B ${b.url}); relay events: ${[a, b].map((r) => r.proc.lines.filter((l) => String(l.event ?? '').startsWith('cluster_') || l.event === 'live_connections_failed_closed').map((l) => `${r === a ? 'A' : 'B'} ${String(l.event)} ${String(l.time ?? '')}`).join(', ')).join(' | ')}`);
    assert.ok(ok > 0);
    for (const r of [a, b]) {
      const metrics = (await request(`http://${r.domain}:${r.httpPort}/metrics`)).text;
      assert.match(metrics, /^tunn_cluster_database_events_total\{event="lost"\} [1-9]/m);
      assert.match(metrics, /^tunn_cluster_database_events_total\{event="back"\} [1-9]/m);
      assert.match(metrics, /^tunn_cluster_database_reachable 1$/m);
    }
    // Back: the identity-gated tunnel answers from the database again.
    await until(async () => (await gatedGet()).status === 200, 15_000, 'the gated tunnel to let its owner in again');
  });
});
