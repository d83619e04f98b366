import assert from 'node:assert/strict';
import { once } from 'node:events';
import { appendFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { halfHead, mountSmallFs, silentConnection, steadyLoad, visit, type HalfHead, type SmallFs } from '../support/faults.ts';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { createToken, startAgent, startCli, startRelay, until, type AgentHandle, type Proc, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The fault matrix of issue 9 (rows without ACME; the ACME rows are faults-acme.test.ts): real
// relay, agent, origin and PostgreSQL processes on loopback. Each test breaks one part, checks
// what visitors see meanwhile, repairs it and ends in a clear state with nothing lost. Waits
// use generous ceilings, never tight timings (the machines are shared).

const relayAgentConnects = (relay: RelayHandle): number => relay.proc.lines.filter((l) => l.msg === 'agent connected').length;

async function bothSessions(agent: AgentHandle): Promise<void> {
  await until(() => agent.proc.lines.some((l) => /online \(2\/2 sessions\)/.test(String(l.detail ?? l.message ?? ''))), 20_000, 'both agent sessions online');
}

const httpUrlOf = (ready: Record<string, unknown>): string => (ready.urls as string[]).find((u) => u.startsWith('http:'))!;

function rejectsWithCode(code: string): (e: Error & { code?: string }) => boolean {
  return (e) => e.code === code;
}

/** A plain origin on `port` (0 = any) answering "<tag> <path>". */
async function tagOrigin(tag: string, port = 0): Promise<http.Server> {
  const server = http.createServer((req, res) => res.end(`${tag} ${req.url}`));
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

describe('fault matrix', { timeout: 600_000 }, () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => {
    await origin?.close();
  });

  // Property: a relay restart loses nothing an agent or visitor holds: the agent reconnects by
  // itself (no operator), the tunnel serves again, and the name stays the owner's.
  it('relay restart: the agent reconnects by itself and the tunnel serves again under its name', async () => {
    let relay = await startRelay();
    const alice = await createToken(relay, 'alice@example.com');
    const bob = await createToken(relay, 'bob@example.com');
    const agent = await startAgent(relay, alice, origin.port, ['-n', 'steady', '--public', '--quiet']);
    try {
      await bothSessions(agent);
      assert.equal((await visit(`${agent.httpUrl}/echo`)).status, 200);
      const { dataDir, httpsPort, httpPort } = relay;
      await relay.stop();
      await agent.proc.waitFor((l) => l.event === 'state' && l.state === 'reconnecting');
      relay = await startRelay({ dataDir, httpsPort, httpPort });
      await until(async () => (await visit(`${agent.httpUrl}/echo`).catch(() => ({ status: 0 }))).status === 200, 30_000, 'the tunnel to serve again');
      await until(() => relayAgentConnects(relay) >= 2, 20_000, 'both agent sessions back at the new relay');
      assert.equal(agent.proc.child.exitCode, null, 'the agent kept running');
      assert.deepEqual(
        agent.proc.lines.filter((l) => l.event === 'ready').map((l) => l.url),
        [agent.url],
        'the agent came back under the same URL',
      );
      // The name is still alice's after the restart.
      await assert.rejects(startAgent(relay, bob, origin.port, ['-n', 'steady', '--public', '--quiet']), rejectsWithCode('NAME_TAKEN'));
      const r = await visit(`${agent.httpUrl}/echo?after=restart`);
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.text).url, '/echo?after=restart');
    } finally {
      await agent.stop();
      await relay.stop();
      rmSync(relay.dataDir, { recursive: true, force: true });
    }
  });

  // Property: a killed agent never leaves visitors hanging: in-flight and new requests get an
  // answer promptly (the offline page), and the owner's restarted agent takes the name back.
  it('agent SIGKILL: visitors get the offline page promptly; a restarted agent takes the name back', async () => {
    const relay = await startRelay();
    const alice = await createToken(relay, 'alice@example.com');
    let agent = await startAgent(relay, alice, origin.port, ['-n', 'victim', '--public', '--quiet']);
    try {
      await bothSessions(agent);
      assert.equal((await visit(`${agent.httpUrl}/echo`)).status, 200);
      // A response in progress when the agent dies (the origin never finishes /hang).
      const hangSeen = new Promise<void>((resolve) => {
        const onRequest = (req: http.IncomingMessage): void => {
          if (req.url !== '/hang') return;
          origin.server.off('request', onRequest);
          resolve();
        };
        origin.server.on('request', onRequest);
      });
      const inflight = visit(`${agent.httpUrl}/hang`, { withinMs: 30_000 }).then(
        (r) => `answered ${r.status}`,
        (e: Error) => e.message,
      );
      await hangSeen;
      agent.proc.child.kill('SIGKILL');
      await agent.proc.exited;
      assert.doesNotMatch(await inflight, /would hang/, 'the in-flight response was ended, not left hanging');
      // Right after the kill the relay may still be noticing the closed link (a 502 "connection
      // lost"); every answer comes promptly, and settles on the offline page.
      const first = await visit(`${agent.httpUrl}/echo`, { withinMs: 20_000 });
      assert.ok([502, 503].includes(first.status), `got ${first.status}`);
      await until(async () => (await visit(`${agent.httpUrl}/echo`, { withinMs: 20_000 })).status === 503, 20_000, 'the offline page');
      const offline = await visit(`${agent.httpUrl}/echo`);
      assert.equal(offline.status, 503);
      assert.match(offline.text, /Tunnel offline/);
      assert.ok(offline.headers['retry-after'], 'the offline page says when to retry');

      const url = agent.url;
      agent = await startAgent(relay, alice, origin.port, ['-n', 'victim', '--public', '--quiet']);
      assert.equal(agent.url, url, 'the restarted agent got its name back');
      const back = await visit(`${agent.httpUrl}/echo?back=1`);
      assert.equal(back.status, 200);
      assert.equal(JSON.parse(back.text).url, '/echo?back=1');
    } finally {
      await agent.stop();
      await relay.stop();
      rmSync(relay.dataDir, { recursive: true, force: true });
    }
  });

  // Property: the agent survives its origin going away (a 502 for visitors meanwhile, never a
  // hang) and serves again as soon as the origin is back, with no restart.
  it('origin down and back: 502 while down, the same agent serves once the origin is back', async () => {
    const relay = await startRelay();
    const alice = await createToken(relay, 'alice@example.com');
    let server = await tagOrigin('first');
    const port = (server.address() as AddressInfo).port;
    const agent = await startAgent(relay, alice, port, ['-n', 'flaky', '--public', '--quiet']);
    try {
      assert.equal((await visit(`${agent.httpUrl}/a`)).text, 'first /a');
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      for (let i = 0; i < 3; i++) assert.equal((await visit(`${agent.httpUrl}/down-${i}`)).status, 502);
      server = await tagOrigin('second', port);
      const r = await visit(`${agent.httpUrl}/b`);
      assert.equal(r.status, 200);
      assert.equal(r.text, 'second /b');
      assert.equal(agent.proc.child.exitCode, null, 'the agent kept running');
      assert.equal(agent.proc.lines.filter((l) => l.event === 'ready').length, 1, 'no reconnect was needed');
    } finally {
      server.closeAllConnections();
      server.close();
      await agent.stop();
      await relay.stop();
      rmSync(relay.dataDir, { recursive: true, force: true });
    }
  });

  describe('PostgreSQL restarted under load', () => {
    let postgres: Postgres;
    before(async () => {
      postgres = await startPostgres();
    });
    after(async () => {
      await postgres?.stop();
    });

    // Properties: (1) live tunnels do not need the database per request: a public tunnel serves
    // every request while PostgreSQL is down; (2) what needs the database fails clearly (503
    // saying the database is unreachable, never "invalid token", never a crash); (3) the relay
    // reconnects by itself once PostgreSQL is back, and an agent that came meanwhile gets in.
    it('keeps serving live tunnels, fails database requests clearly, and reconnects', async () => {
      const url = await postgres.createDatabase();
      // Test-only: identity answers are reused from cache for 2 s of an outage (default 30 s), then 503.
      const relay = await startRelay({ extra: ['--store', url], env: { TUNN_TEST_IDENTITY_OUTAGE_MS: '2000' } });
      const tokenCli = startCli(['relay', 'token', 'create', '--email', 'alice@example.com', '--store', url, '--data-dir', relay.dataDir, '--json']);
      const token = String((await tokenCli.waitFor((l) => l.event === 'token')).token);
      const pub = await startAgent(relay, token, origin.port, ['-n', 'pgpub', '--public', '--quiet']);
      const priv = await startAgent(relay, token, origin.port, ['-n', 'pgpriv', '--quiet']);
      const bearer = { authorization: `Bearer ${token}` };
      const api = `http://${relay.domain}:${relay.httpPort}/v1/tokens`;
      let late: Proc | undefined;
      const load = steadyLoad(`${pub.httpUrl}/echo`, 8, (body) => (JSON.parse(body) as { url: string }).url.startsWith('/echo?'));
      try {
        await bothSessions(pub);
        assert.equal((await visit(`${priv.httpUrl}/echo`, { headers: bearer })).status, 200);
        assert.equal((await visit(api, { headers: bearer })).status, 200);
        await until(() => load.ok >= 50, 30_000, 'load running');

        await postgres.stopServer();
        const okAtStop = load.ok;
        // What needs the database says so, with a status a client retries (the identity-gated
        // tunnel once its cached answer is over the window old).
        let gated = await visit(`${priv.httpUrl}/echo`, { headers: bearer });
        await until(async () => (gated = await visit(`${priv.httpUrl}/echo`, { headers: bearer })).status !== 200, 20_000, 'the identity cache window to pass');
        assert.equal(gated.status, 503, gated.text);
        assert.match(gated.text, /cannot reach its database to check who you are; try again shortly/);
        const apiDown = await visit(api, { headers: bearer });
        assert.equal(apiDown.status, 503, apiDown.text);
        assert.equal(JSON.parse(apiDown.text).error.code, 'UNAVAILABLE');
        assert.match(JSON.parse(apiDown.text).error.message, /database/);
        // An agent that connects now is told why it cannot get in, and keeps trying.
        late = startCli([String(origin.port), '--relay', relay.url, '--token', token, '--relay-ca', relay.caPath, '--json', '-n', 'pglate', '--public', '--quiet']);
        const notice = await late.waitFor((l) => l.event === 'notice' && /database/.test(String(l.message)), 30_000);
        assert.match(String(notice.message), /database/);
        // The live tunnel kept serving meanwhile.
        await until(() => load.ok >= okAtStop + 200, 60_000, 'requests through the live tunnel while PostgreSQL is down');

        await postgres.startServer();
        await until(async () => (await visit(`${priv.httpUrl}/echo`, { headers: bearer })).status === 200, 30_000, 'the private tunnel to check access again');
        assert.equal((await visit(api, { headers: bearer })).status, 200);
        const ready = await late.waitFor((l) => l.event === 'ready', 30_000);
        assert.equal((await visit(`${httpUrlOf(ready)}/echo`)).status, 200);
      } finally {
        await load.stop();
        await late?.kill();
        await pub.stop();
        await priv.stop();
        await relay.stop();
        rmSync(relay.dataDir, { recursive: true, force: true });
      }
      assert.deepEqual(load.failures, [], 'no request through the live tunnel failed');
      assert.ok(load.ok > 250);
      assert.equal(relay.proc.lines.filter((l) => l.event === 'fatal' || Number(l.level) >= 60).length, 0, 'the relay never hit a fatal error');
    });
  });

  // Properties: a full disk under the data dir gives a clear error (what is full, what to do),
  // never a crash or a corrupt database; live tunnels keep serving; once space returns, the
  // relay works again and the database passes PRAGMA integrity_check.
  it('disk full for the data dir: a clear error, live tunnels keep serving, no corrupt database', async (t) => {
    const fs = mountSmallFs(16 * 1024 * 1024);
    if (typeof fs === 'string') {
      t.skip(fs);
      return;
    }
    try {
      await diskFullScenario(fs, origin);
    } finally {
      fs.remove();
    }
  });

  // Property: half-sent request heads (slowloris) cannot starve a tunnel: other visitors are
  // served normally while 1,000 are held open, and every half-sent one gets the head timeout,
  // also one that keeps trickling header lines (the timeout counts from the head's first byte).
  it('slowloris: 1,000 half-sent heads do not starve other visitors and all get the head timeout', async () => {
    const HEAD_TIMEOUT_S = 8;
    const relay = await startRelay({ extra: ['--head-timeout', String(HEAD_TIMEOUT_S)] });
    const alice = await createToken(relay, 'alice@example.com');
    const agent = await startAgent(relay, alice, origin.port, ['-n', 'loris', '--public', '--quiet']);
    const heads: HalfHead[] = [];
    const silent: Awaited<ReturnType<typeof silentConnection>>[] = [];
    let trickle: NodeJS.Timeout | undefined;
    try {
      await bothSessions(agent);
      const host = agent.host;
      for (let i = 0; i < 1000; i += 100) heads.push(...(await Promise.all(Array.from({ length: 100 }, () => halfHead(relay.httpPort, host)))));
      // And 100 connections that never send a byte: they get the head timeout too (closed).
      silent.push(...(await Promise.all(Array.from({ length: 100 }, () => silentConnection(relay.httpPort)))));
      const openedAt = Date.now();
      // A tenth of them keep sending a header line every second, as a slowloris does.
      let n = 0;
      trickle = setInterval(() => {
        n++;
        for (let i = 0; i < heads.length; i += 10) if (!heads[i]!.socket.destroyed) heads[i]!.socket.write(`X-Trickle-${n}: 1\r\n`);
      }, 1000);

      // Other visitors meanwhile: sequential and concurrent, all answered (generous ceiling).
      for (let i = 0; i < 20; i++) {
        const r = await visit(`${agent.httpUrl}/echo?seq=${i}`, { withinMs: 20_000 });
        assert.equal(r.status, 200);
      }
      const parallel = await Promise.all(Array.from({ length: 50 }, (_, i) => visit(`${agent.httpUrl}/echo?par=${i}`, { withinMs: 20_000 })));
      assert.deepEqual(
        parallel.map((r) => r.status),
        parallel.map(() => 200),
      );
      const stillOpen = heads.filter((h) => !h.socket.destroyed && h.received() === '').length;
      assert.ok(stillOpen > 900 || Date.now() - openedAt > HEAD_TIMEOUT_S * 1000, `the half-sent heads were held open while others were served (${stillOpen} open)`);

      // Every half-sent head ends with the 408 page, trickling or not.
      await until(() => heads.every((h) => h.socket.destroyed), HEAD_TIMEOUT_S * 10_000, 'every half-sent head to be closed by the relay');
      const answers = heads.map((h) => h.received().split('\r\n')[0]);
      assert.deepEqual(
        answers.filter((a) => a !== 'HTTP/1.1 408 Request Timeout'),
        [],
      );
      await until(() => silent.every((c) => c.destroyed), HEAD_TIMEOUT_S * 10_000, 'every silent connection to be closed by the relay');
      assert.equal((await visit(`${agent.httpUrl}/echo?after=1`)).status, 200);
    } finally {
      clearInterval(trickle);
      for (const h of heads) h.socket.destroy();
      for (const c of silent) c.destroy();
      await agent.stop();
      await relay.stop();
      rmSync(relay.dataDir, { recursive: true, force: true });
    }
  });
});

/** The disk-full row on a small filesystem `fs` (see the test for the properties). */
async function diskFullScenario(fs: SmallFs, origin: Origin): Promise<void> {
  const dataDir = join(fs.path, 'relay');
  const relay = await startRelay({ dataDir });
  const filler = join(fs.path, 'filler');
  let late: Proc | undefined;
  let agent: AgentHandle | undefined;
  try {
    const alice = await createToken(relay, 'alice@example.com');
    agent = await startAgent(relay, alice, origin.port, ['-n', 'before-full', '--public', '--quiet']);
    assert.equal((await visit(`${agent.httpUrl}/echo`)).status, 200);

    // Fill the filesystem to the last block.
    const block = Buffer.alloc(64 * 1024, 1);
    for (;;) {
      try {
        appendFileSync(filler, fs.free() >= block.length ? block : block.subarray(0, Math.max(1, fs.free())));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        break;
      }
    }
    // A new name must be written down: refused with an error that says the disk is full.
    late = startCli([String(origin.port), '--relay', relay.url, '--token', alice, '--relay-ca', relay.caPath, '--json', '-n', 'after-full', '--public', '--quiet']);
    const notice = await late.waitFor((l) => l.event === 'notice', 30_000);
    assert.match(String(notice.message), /disk holding its database is full.*try again later/);
    const logged = await relay.proc.waitFor((l) => l.msg === 'control message failed');
    assert.match(String(logged.err), /disk holding its database is full/, 'the relay log tells the operator');
    // The operator's command too.
    const cli = startCli(['relay', 'token', 'create', '--email', 'bob@example.com', '--data-dir', dataDir, '--json']);
    assert.notEqual(await cli.exited, 0);
    assert.match(cli.stderr.join('\n'), /disk holding its database is full.*free space in the data dir/);
    // The live tunnel does not write per request.
    for (let i = 0; i < 20; i++) assert.equal((await visit(`${agent.httpUrl}/echo?full=${i}`)).status, 200);
    assert.equal(relay.proc.child.exitCode, null, 'the relay is still running');

    // Space returns: the waiting agent gets in, the operator's command works.
    rmSync(filler);
    const ready = await late.waitFor((l) => l.event === 'ready', 30_000);
    assert.equal((await visit(`${httpUrlOf(ready)}/echo`)).status, 200);
    assert.equal(String(await createToken(relay, 'bob@example.com')).split('.').length, 3);
  } finally {
    await late?.kill();
    await agent?.stop();
    await relay.stop();
  }
  // The relay has stopped: its database is whole, and holds what was saved before and after.
  const db = new DatabaseSync(join(dataDir, 'tunn.db'));
  try {
    assert.deepEqual(db.prepare('PRAGMA integrity_check').all().map((r) => r.integrity_check), ['ok']);
    assert.deepEqual(
      db.prepare('SELECT name FROM names ORDER BY name').all().map((r) => r.name),
      ['after-full', 'before-full'],
    );
  } finally {
    db.close();
  }
}

