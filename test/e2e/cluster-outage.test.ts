import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { request, startAgent, startCli, startRelay, type RelayHandle, until } from './harness.ts';
import { freePort } from '../support/ports.ts';

// Issue 14: the database restarting or unreachable. Two relays on one PostgreSQL (real
// processes); PostgreSQL is stopped for longer than the identity cache window and started
// again while visitors keep requesting a public tunnel through both relays.

// Test-only: the identity cache window during a database outage (default 30 s), short here.
const WINDOW_MS = 3000;


describe('a relay cluster while PostgreSQL restarts (real processes)', () => {
  let pg: Postgres;
  const dir = mkdtempSync(join(tmpdir(), 'tunn-e2e-outage-'));
  const storeFile = join(dir, 'store-url');
  const secretFile = join(dir, 'cluster.key');
  const env = { TUNN_SECRET_KEY: randomBytes(32).toString('hex'), TUNN_TEST_IDENTITY_OUTAGE_MS: String(WINDOW_MS) };
  const relays: RelayHandle[] = [];
  const procs: { stop(): Promise<void> }[] = [];
  let origin: http.Server;
  let originPort: number;

  before(async () => {
    pg = await startPostgres();
    writeFileSync(storeFile, (await pg.createDatabase()) + '\n', { mode: 0o600 });
    writeFileSync(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    origin = http.createServer((req, res) => res.end(`origin saw ${req.url}`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as AddressInfo).port;
    for (let i = 0; i < 2; i++) {
      relays.push(await startRelay({ extra: ['--store-file', storeFile, '--node-url', `https://127.0.0.1:${await freePort()}`, '--cluster-secret-file', secretFile], env }));
    }
  });
  after(async () => {
    for (const p of procs) await p.stop();
    for (const r of relays) await r.stop();
    origin?.close();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function token(email: string): Promise<string> {
    const p = startCli(['relay', 'token', 'create', '--email', email, '--store-file', storeFile, '--data-dir', join(dir, 'token'), '--json'], { env });
    const line = await p.waitFor((l) => l.event === 'token');
    await p.exited;
    return String(line.token);
  }

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
    let ok = 0;
    let loading = true;
    const loop = async (r: RelayHandle): Promise<void> => {
      while (loading) {
        try {
          const res = await request(`https://${pub.host}:${r.httpsPort}/load`, { ca: r.ca });
          if (res.status === 200 && res.text === 'origin saw /load') ok++;
          else failures.push(`${r.url}: ${res.status} ${res.text.slice(0, 200)}`);
        } catch (err) {
          failures.push(`${r.url}: ${(err as Error).message}`);
        }
      }
    };
    const loads = [loop(a), loop(b), loop(a), loop(b)];
    try {
      await pg.stopServer();
      // Within the window the owner's last answer is reused (after it: fail closed).
      const early = await gatedGet();
      assert.ok(early.status === 200 || early.status === 503, `${early.status} ${early.text}`);
      await until(async () => a.proc.lines.some((l) => l.event === 'cluster_database_lost'), 20_000, 'A to log that it lost the database');
      await new Promise((r) => setTimeout(r, WINDOW_MS + 500));
      const late = await gatedGet();
      assert.equal(late.status, 503, late.text);
      assert.match(late.text, /the relay cannot reach its database to check who you are; try again shortly/);
      const okDuring = ok;
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(ok > okDuring, 'the public tunnel kept serving during the outage');
      await pg.startServer();
      for (const r of [a, b]) await until(() => r.proc.lines.some((l) => l.event === 'cluster_database_back'), 30_000, `${r.url} to log that it reached the database again`);
    } finally {
      loading = false;
      await Promise.all(loads);
    }
    assert.deepEqual(failures, [], `${failures.length} failed requests to the public tunnel (of ${ok + failures.length})`);
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
