import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { StoreLeaseTable } from '../../src/cluster/leases.ts';
import { NodeRegistry } from '../../src/cluster/nodes.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { openStore } from '../../src/store/store.ts';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { leaf, rawRequest, testCa } from '../../src/agent/tls/testing.ts';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import tls from 'node:tls';
import { startOrigin } from './origin.ts';
import { request, startAgent, startCli, startRelay, type RelayHandle, until } from './harness.ts';
import { freePort } from '../support/ports.ts';
import { startCluster, type TestCluster } from '../support/cluster.ts';

// Issue 14 through the real CLI: `tunn relay status` on a PostgreSQL database that relays
// share, and below, three relays on one database carrying visitors to each other.

describe('cluster commands (real CLI, PostgreSQL)', () => {
  let pg: Postgres;
  let url: string;
  const dir = mkdtempSync(join(tmpdir(), 'tunn-e2e-cluster-'));
  const storeFile = join(dir, 'store-url');

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
    writeFileSync(storeFile, url + '\n', { mode: 0o600 });
    const store = await openStore(url);
    try {
      await new NodeRegistry({ store, clock: systemClock }).join({ id: 'na', url: 'https://127.0.0.1:7443', version: '0.1.0' });
      await new StoreLeaseTable({ store }).acquire({ host: 'grafana.tunn.example.com', nodeId: 'na', sessionId: 's1', tunnelId: 't1', name: 'grafana', accountId: 'acc', agentId: 'ag', kind: 'http', port: null }, Date.now());
    } finally {
      await store.close();
    }
  });
  after(async () => {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tunn relay status --store-file FILE lists the node and its lease; --json too', async () => {
    const human = startCli(['relay', 'status', '--store-file', storeFile]);
    assert.equal(await human.exited, 0, human.stderr.join('\n'));
    const text = human.lines.map((l) => String(l.raw ?? JSON.stringify(l))).join('\n');
    assert.match(text, /1 of 1 relay alive/);
    assert.match(text, /na +https:\/\/127\.0\.0\.1:7443 +yes/);
    assert.match(text, /grafana\.tunn\.example\.com +na +s1 +ag +http/);

    const json = startCli(['relay', 'status', '--json'], { env: { TUNN_STORE_FILE: storeFile } });
    assert.equal(await json.exited, 0, json.stderr.join('\n'));
    const line = json.lines.find((l) => l.event === 'cluster_status') as { nodes: { id: string; alive: boolean }[]; leases: { host: string }[] };
    assert.deepEqual(line.nodes.map((n) => [n.id, n.alive]), [['na', true]]);
    assert.deepEqual(line.leases.map((l) => l.host), ['grafana.tunn.example.com']);
  });

  it('tunn relay status on a database it cannot reach says so', async () => {
    const p = startCli(['relay', 'status', '--store', 'postgres://tunn:hunter2-password@127.0.0.1:1/none']);
    assert.equal(await p.exited, 1);
    const err = p.stderr.join('\n');
    assert.match(err, /^tunn: error: reading the cluster status from the database at 127\.0\.0\.1:1\/none: .*unreachable.*; check --store \(or --store-file, TUNN_STORE\) and that the database is running/m);
    assert.ok(!err.includes('hunter2-password'), 'the password is not echoed');
  });
});


describe('three relays on one PostgreSQL database (real processes)', () => {
  let cluster: TestCluster;
  // The cluster's (set in before): its folder, --store-file, and the relays' environment (TUNN_SECRET_KEY).
  let dir = '';
  let storeFile = '';
  let env: NodeJS.ProcessEnv = {};
  const relays: RelayHandle[] = [];
  const procs: { stop(): Promise<void> }[] = [];
  let origin: http.Server;
  let originPort: number;

  /** The arguments of one more relay on the cluster's database (with `secret` as its cluster secret). */
  const clusterArgs = async (secret = cluster.secretFile): Promise<string[]> => ['--store-file', storeFile, '--node-url', `https://127.0.0.1:${await freePort()}`, '--cluster-secret-file', secret, '--admin-email', 'ops@example.com'];

  before(async () => {
    origin = http.createServer((req, res) => res.end(`origin saw ${req.url} from ${String(req.headers['x-forwarded-for'])}`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as AddressInfo).port;
    cluster = await startCluster({ relays: 3, prefix: 'tunn-e2e-cluster3-', extra: ['--admin-email', 'ops@example.com'] });
    ({ dir, storeFile, env } = cluster);
    relays.push(...cluster.relays);
  });
  after(async () => {
    for (const p of procs) await p.stop();
    origin?.close();
    await cluster?.stop();
  });

  async function nodeIdAt(r: RelayHandle): Promise<string> {
    const p = startCli(['relay', 'status', '--store-file', storeFile, '--json']);
    await p.exited;
    const line = p.lines.find((l) => l.event === 'cluster_status') as { nodes: { id: string; url: string }[] };
    const node = line.nodes.find((n) => n.url === cluster.nodeUrls.get(r));
    assert.ok(node, `no node row for ${cluster.nodeUrls.get(r)}`);
    return node.id;
  }

  const token = (email: string): Promise<string> => cluster.token(email);

  it('a visitor on relay B or C reaches a tunnel whose agent is on relay A', async () => {
    const [a, b, c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const agent = await startAgent(a, await token('ann@example.com'), originPort, ['-n', 'carried', '--public']);
    procs.push(agent);
    // No waiting: the agent hears "registered" once its lease is written, so every relay routes to it.
    for (const r of [b, c, a]) {
      const res = await request(`https://${agent.host}:${r.httpsPort}/hello`, { ca: r.ca });
      assert.equal(res.status, 200, `through ${r.url}: ${res.text}`);
      assert.match(res.text, /^origin saw \/hello from 127\.0\.0\.1/);
    }
    // Not a lookup that says yes to everything: a name nobody holds is still 404 on B.
    const none = await request(`https://nobody.${b.domain}:${b.httpsPort}/`, { ca: b.ca });
    assert.equal(none.status, 404);
  });

  it('WebSockets, uploads and a 64 MiB download pass through a relay that does not hold the tunnel', async () => {
    const [a, b, c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const o = await startOrigin();
    procs.push({ stop: () => o.close() });
    const agent = await startAgent(a, await token('ann@example.com'), o.port, ['-n', 'media', '--public']);
    procs.push(agent);
    await until(async () => (await request(`https://${agent.host}:${c.httpsPort}/`, { ca: c.ca })).status === 200, 10_000, 'C to see the lease');
    const ws = new WebSocket(`wss://${agent.host}:${c.httpsPort}/ws`, { lookup: localhostAwareLookup as never, ca: c.ca });
    const msgs: string[] = [];
    ws.on('message', (m) => msgs.push(m.toString()));
    await once(ws, 'open');
    await until(() => msgs.length === 1, 5000, 'greeting');
    // The holder sees the visitor's address that C carried over the link.
    assert.equal(msgs[0], 'hello 127.0.0.1');
    ws.send('ping 1');
    ws.send(Buffer.alloc(100_000, 7));
    await until(() => msgs.length === 3, 5000, 'echoes');
    assert.equal(msgs[1], 'ping 1');
    assert.equal(msgs[2]!.length, 100_000);
    ws.close();
    await once(ws, 'close');

    const body = Buffer.alloc(3 * 1024 * 1024, 0x62);
    const up = await request(`https://${agent.host}:${b.httpsPort}/upload`, { ca: b.ca, method: 'POST', body });
    assert.equal(up.status, 200, up.text.slice(0, 300));
    assert.equal(JSON.parse(up.text).received, body.length);

    const size = 64 * 1024 * 1024;
    const down = await request(`https://${agent.host}:${b.httpsPort}/download?size=${size}`, { ca: b.ca });
    assert.equal(down.status, 200);
    assert.equal(down.body.length, size);
  });

  // Identity is decided by the relay holding the tunnel, for visitors on every relay alike.
  it('an identity-gated tunnel on A asks a visitor on B to sign in, and lets its owner through', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const t = await token('ann@example.com');
    const agent = await startAgent(a, t, originPort, ['-n', 'gated']);
    procs.push(agent);
    const anon = await request(`https://${agent.host}:${b.httpsPort}/`, { ca: b.ca, headers: { accept: 'application/json' } });
    assert.equal(anon.status, 401, anon.text);
    assert.match(anon.text, /AUTH_REQUIRED/);
    const owner = await request(`https://${agent.host}:${b.httpsPort}/me`, { ca: b.ca, headers: { authorization: `Bearer ${t}` } });
    assert.equal(owner.status, 200, owner.text);
    assert.match(owner.text, /^origin saw \/me/);
  });

  // Security: revocation is one fact in the shared database; the relay holding the tunnel
  // checks it for visitors arriving through any relay.
  it('a token revoked through the database is refused through A, B and C within 2 s', async () => {
    const [a, b, c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const agent = await startAgent(a, await token('cid@example.com'), originPort, ['-n', 'revoke-me']);
    procs.push(agent);
    const visitor = await token('cid@example.com');
    const through = (r: RelayHandle) => request(`https://${agent.host}:${r.httpsPort}/`, { ca: r.ca, headers: { authorization: `Bearer ${visitor}`, accept: 'application/json' } });
    for (const r of [a, b, c]) assert.equal((await through(r)).status, 200);
    const jti = String(JSON.parse(Buffer.from(visitor.split('.')[1]!, 'base64url').toString()).jti);
    const rev = startCli(['relay', 'token', 'revoke', jti, '--store-file', storeFile, '--data-dir', join(dir, 'token'), '--json'], { env });
    assert.equal(await rev.exited, 0, rev.stderr.join('\n'));
    const revokedAt = Date.now();
    for (const r of [c, b, a]) {
      await until(async () => (await through(r)).status === 401, 2_000 + 3_000, `${r.url} to refuse the revoked token`);
    }
    assert.ok(Date.now() - revokedAt <= 2_000 + 3_000, 'within 2 s (3 s of slack on a shared machine)');
  });

  // Security: a group edit made through one relay's API takes effect on visitors of every relay.
  it('a group edit on B is denied through C within 2 s', async () => {
    const [a, b, c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const dan = await token('dan@example.com');
    const groupCli = async (args: string[]): Promise<void> => {
      const p = startCli(['group', ...args, '--relay', b.url, '--relay-ca', b.caPath, '--token', dan, '--json'], { env: { TUNN_CONFIG_DIR: join(dir, 'cfg') } });
      assert.equal(await p.exited, 0, p.stderr.join('\n'));
    };
    await groupCli(['create', 'eng', 'eve@example.com']);
    const agent = await startAgent(a, dan, originPort, ['-n', 'eng-only', '-a', 'group:eng']);
    procs.push(agent);
    const eve = await token('eve@example.com');
    const through = (r: RelayHandle) => request(`https://${agent.host}:${r.httpsPort}/`, { ca: r.ca, headers: { authorization: `Bearer ${eve}`, accept: 'application/json' } });
    assert.equal((await through(c)).status, 200);
    await groupCli(['rm', 'eng', 'eve@example.com']);
    const editedAt = Date.now();
    await until(async () => (await through(c)).status === 403, 2_000 + 3_000, 'C to refuse eve');
    assert.ok(Date.now() - editedAt <= 2_000 + 3_000, 'within 2 s (3 s of slack on a shared machine)');
  });

  // Security: a tunnel whose TLS ends at its agent is never decrypted by a relay: once the agent
  // reports ready, its lease says `tls-at-agent` and B routes the visitor's SNI raw over the link
  // to A, which hands it to the agent. The visitor sees the agent's own certificate (pin equal to
  // the one the agent reports; no relay holds that key). Until the lease says so, B's terminated
  // HTTP is refused by A (503), never served in the clear between relays.
  it('an agent-terminated tunnel on A is reached through B with TLS ending at the agent', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const ca = await testCa();
    const own = await leaf(ca, [`e2ee.${a.domain}`]);
    const cert = join(dir, 'e2ee.pem');
    const key = join(dir, 'e2ee.key');
    writeFileSync(cert, own.chainPem);
    writeFileSync(key, own.keyPem);
    const agent = await startAgent(a, await token('ann@example.com'), originPort, ['-n', 'e2ee', '--public', '--terminate-at', 'agent', '--no-inspect', '--tls-cert', cert, '--tls-key', key]);
    procs.push(agent);
    const ev = await agent.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent');
    const visit = async (): Promise<string | undefined> => {
      const s = tls.connect({ host: '127.0.0.1', port: b.httpsPort, servername: agent.host, ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
      s.on('error', () => {});
      try {
        await once(s, 'secureConnect');
        return spkiPin(s.getPeerX509Certificate()!.toString());
      } catch {
        return undefined;
      } finally {
        s.destroy();
      }
    };
    // B learns the lease's new kind by NOTIFY (or its 2 s re-read); until then its handshake uses B's own certificate.
    await until(async () => (await visit()) === ev.pin, 20_000, "B to carry the raw TLS to the agent (pin equal to the agent's)");
    const s = tls.connect({ host: '127.0.0.1', port: b.httpsPort, servername: agent.host, ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    assert.equal(spkiPin(s.getPeerX509Certificate()!.toString()), ev.pin, 'the served key is the one the agent reported');
    const res = await rawRequest(s, `GET /secret HTTP/1.1\r\nHost: ${agent.host}\r\nConnection: close\r\n\r\n`);
    s.destroy();
    assert.equal(res.status, 200, res.body.slice(0, 200));
    assert.ok(res.body.includes('/secret'), 'the origin answered through the agent');
  });

  // A CA may validate TLS-ALPN-01 at any relay (DNS has every relay's address): the handshake
  // for an agent that ends TLS itself, reaching a relay its agent is not on, is carried to it.
  it('a TLS-ALPN-01 handshake through B reaches the agent on A that ends TLS itself', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const ca = await testCa();
    const own = await leaf(ca, [`alpn.${a.domain}`]);
    const cert = join(dir, 'alpn.pem');
    const key = join(dir, 'alpn.key');
    writeFileSync(cert, own.chainPem);
    writeFileSync(key, own.keyPem);
    const args = [String(originPort), '--relay', a.url, '--token', await token('ann@example.com'), '--relay-ca', a.caPath, '--json', '-n', 'alpn', '--public', '--terminate-at', 'agent', '--no-inspect', '--tls-cert', cert, '--tls-key', key];
    const agent = startCli(args, { env: { TUNN_DEBUG: '1' } });
    procs.push({ stop: () => agent.kill() });
    const ready = await agent.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
    assert.equal(ready.event, 'ready', JSON.stringify(ready));
    const host = String(ready.host);
    // No challenge is being presented at the agent, so it answers with its refusal: seeing it in
    // the agent's log proves the ClientHello (acme-tls/1, SNI = the host) was carried there from B.
    await until(async () => {
      const s = tls.connect({ host: '127.0.0.1', port: b.httpsPort, servername: host, ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false });
      await new Promise<void>((r) => {
        s.once('error', () => r());
        s.once('close', () => r());
        s.once('secureConnect', () => (s.destroy(), r()));
      });
      return agent.stderr.some((l) => l.includes(`no TLS-ALPN-01 challenge is being presented for "${host}" at this agent`));
    }, 20_000, "the agent's answer to a TLS-ALPN-01 handshake carried from B");
  });

  // Security: a passthrough connection carried between relays is never decrypted on the way:
  // the client verifies the target's own certificate (its own CA, which no relay holds), and
  // the holder applies the tunnel's --allow-ip to the visitor's address the link carries.
  it('a tunn tls --public passthrough whose agent is on A is reached raw through B', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const ca = await testCa();
    const own = await leaf(ca, [`shop.${a.domain}`, `office.${a.domain}`]);
    const target = tls.createServer({ key: own.keyPem, cert: own.chainPem }, (s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(`tls ends at the target (${s.servername}); you said ${d.toString()}`));
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    procs.push({ stop: async () => void target.close() });
    const t = await token('ann@example.com');
    const startTls = async (args: string[]): Promise<void> => {
      const p = startCli(['tls', String((target.address() as AddressInfo).port), ...args, '--relay', a.url, '--relay-ca', a.caPath, '--token', t, '--json']);
      procs.push({ stop: () => p.kill() });
      const ready = await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
      assert.equal(ready.event, 'ready', JSON.stringify(ready));
    };
    const ask = (r: RelayHandle, name: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: r.httpsPort, servername: `${name}.${a.domain}`, ca: ca.certPem });
        let got = '';
        s.on('secureConnect', () => s.write('hello'));
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
    await startTls(['-n', 'shop', '--public']);
    // B learns of the lease within its refresh (2 s) or at once from NOTIFY.
    await until(async () => (await ask(b, 'shop').catch(() => '')).startsWith('tls ends at the target'), 10_000, 'B to carry raw TLS to A');
    assert.equal(await ask(b, 'shop'), `tls ends at the target (shop.${a.domain}); you said hello`);
    assert.equal(await ask(a, 'shop'), `tls ends at the target (shop.${a.domain}); you said hello`);
    // --allow-ip is decided by the holder, on the visitor's address: 127.0.0.1 is not in 10/8.
    await startTls(['-n', 'office', '--public', '--allow-ip', '10.0.0.0/8']);
    await until(async () => {
      await ask(b, 'office').catch(() => '');
      return a.proc.lines.some((l) => l.event === 'cluster_link_refusal' && /not on the --allow-ip list/.test(String(l.reason)));
    }, 10_000, 'A to refuse the visitor B carried, by --allow-ip');
    const refused = await ask(b, 'office').then((text) => text, (err: Error) => `error: ${err.message}`);
    assert.ok(!refused.startsWith('tls ends at the target'), refused);
  });

  // Security: `tunn connect` through a relay that does not hold the tunnel is decided by the
  // holder (the tunnel's allow-list lives where its agent is): the user B authenticated is
  // carried with the stream, a user not on the list is refused with the holder's sentence.
  it('tunn connect through B reaches a private tcp tunnel whose agent is on A; others are refused', async () => {
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const echo = createNetServer((s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => s.write(`echo ${d.toString()}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    procs.push({ stop: async () => void echo.close() });
    const tokenFile = (email: string): Promise<string> => cluster.tokenFile(email);
    const owner = startCli(['tcp', String((echo.address() as AddressInfo).port), '-n', 'db', '-a', 'ann@example.com', '--relay', a.url, '--relay-ca', a.caPath, '--token-file', await tokenFile('owner@example.com'), '--json']);
    procs.push({ stop: () => owner.kill() });
    const ready = await owner.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
    assert.equal(ready.event, 'ready', JSON.stringify(ready));
    const host = `db.${a.domain}`;
    const env = { TUNN_CONFIG_DIR: join(dir, 'connect-cfg'), TUNN_RELAY: '', TUNN_TOKEN: '' };
    const annFile = await tokenFile('ann@example.com');
    // B learns of the lease within its refresh (2 s) or at once from NOTIFY.
    let port = 0;
    await until(async () => {
      const c = startCli(['connect', host, '--listen', '0', '--json', '--relay', b.url, '--relay-ca', b.caPath, '--token-file', annFile], { env });
      const up = await c.waitFor((l) => l.event === 'ready', 5_000).catch(() => undefined);
      if (!up) {
        await c.kill();
        return false;
      }
      procs.push({ stop: () => c.kill() });
      port = Number(String(up.listen).split(':')[1]);
      return true;
    }, 15_000, 'tunn connect through B to be ready');
    const sock = netConnect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString()));
    sock.write('hello');
    await until(() => got === 'echo hello', 10_000, 'the echo through B and A');
    sock.destroy();

    const bob = startCli(['connect', host, '--listen', '0', '--json', '--relay', b.url, '--relay-ca', b.caPath, '--token-file', await tokenFile('bob@example.com')], { env });
    assert.equal(await bob.exited, 1);
    assert.deepEqual(bob.stderr, [`tunn: error: bob@example.com is not on the allow-list of ${host}: ask its owner to add you (-a bob@example.com)`]);
  });

  it('tunn relay status shows the three relays and the lease', async () => {
    const p = startCli(['relay', 'status', '--store-file', storeFile, '--json']);
    assert.equal(await p.exited, 0, p.stderr.join('\n'));
    const line = p.lines.find((l) => l.event === 'cluster_status') as { nodes: { alive: boolean }[]; leases: { host: string }[] };
    assert.equal(line.nodes.filter((n) => n.alive).length, 3);
    assert.ok(line.leases.some((l) => l.host.startsWith('carried.')), JSON.stringify(line.leases));
    // The same for the relay's operators over the API, on any relay; not for other accounts.
    const [, , c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const ops = await request(`${c.url}/v1/cluster`, { ca: c.ca, headers: { authorization: `Bearer ${await token('ops@example.com')}` } });
    assert.equal(ops.status, 200, ops.text);
    const api = JSON.parse(ops.text) as { nodes: unknown[]; leases: { host: string }[] };
    assert.equal(api.nodes.length, 3);
    assert.ok(api.leases.some((l) => l.host.startsWith('carried.')));
    const other = await request(`${c.url}/v1/cluster`, { ca: c.ca, headers: { authorization: `Bearer ${await token('zed@example.com')}` } });
    assert.equal(other.status, 403);
    assert.match(other.text, /only the relay operators \(--admin-email\) can see the cluster/);
    // Each relay's /metrics shows its part: B carried visitors to A, A received them.
    const [a, b] = relays as [RelayHandle, RelayHandle];
    const metricsOf = async (r: RelayHandle) => (await request(`http://${r.domain}:${r.httpPort}/metrics`)).text;
    assert.match(await metricsOf(b), /^tunn_cluster_forwarded_total\{result="ok"\} [1-9]/m);
    assert.match(await metricsOf(a), /^tunn_cluster_received_total\{result="accepted"\} [1-9]/m);
    await until(async () => /^tunn_cluster_nodes_alive 3$/m.test(await metricsOf(a)), 10_000, 'A to count three relays alive');
  });

  // Security: the link between relays verifies both ends; a relay with another cluster
  // secret is refused by the others and cannot carry a visitor into the cluster.
  it('a relay with a wrong cluster secret is refused by its peers', async () => {
    const wrong = join(dir, 'wrong.key');
    writeFileSync(wrong, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const d = await startRelay({ extra: await clusterArgs(wrong), env });
    procs.push(d);
    const host = `carried.${d.domain}`;
    const res = await request(`https://${host}:${d.httpsPort}/`, { ca: d.ca });
    assert.notEqual(res.status, 200);
    assert.ok(!res.text.includes('origin saw'), res.text);
    await d.proc.waitFor((l) => l.event === 'cluster_forward_failed');
    // The holder (A) refused D's handshake: D's certificate is not from this cluster's CA.
    await relays[0]!.proc.waitFor((l) => l.event === 'cluster_link_refused');
  });

  it('a relay with another TUNN_SECRET_KEY refuses to start and says what to do', async () => {
    const p = startCli(['relay', '--dev', '--https-port', '0', '--http-port', '0', '--data-dir', join(dir, 'wrong-key'), '--json', ...(await clusterArgs())], { env: { TUNN_SECRET_KEY: randomBytes(32).toString('hex') } });
    assert.equal(await p.exited, 1);
    assert.match(p.stderr.join('\n'), /this relay's sealing key cannot open the secrets sealed in its database: every relay that shares a database must use the same key/);
  });

  // Losing a relay loses no tunnel: the agent keeps sessions on two relays, and when one is
  // SIGKILLed visitors on the others are served at once, under the same name.
  it('SIGKILL relay A: the tunnel of its agent is served through B and C within 5 s, name kept', async () => {
    const [a, b, c] = relays as [RelayHandle, RelayHandle, RelayHandle];
    const caFile = join(dir, 'cas.pem');
    writeFileSync(caFile, a.ca + b.ca + c.ca);
    const t = await token('bea@example.com');
    const agent = startCli([String(originPort), '-n', 'survivor', '--public', '--relay', [a.url, b.url, c.url].join(','), '--token', t, '--relay-ca', caFile, '--json']);
    procs.push({ stop: () => agent.kill() });
    const ready = await agent.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
    assert.equal(ready.event, 'ready', JSON.stringify(ready));
    const host = String(ready.host);
    const holders = async (): Promise<string[]> => {
      const p = startCli(['relay', 'status', '--store-file', storeFile, '--json']);
      await p.exited;
      const line = p.lines.find((l) => l.event === 'cluster_status') as { nodes: { id: string; alive: boolean }[]; leases: { host: string; nodeId: string }[] };
      const alive = new Set(line.nodes.filter((n) => n.alive).map((n) => n.id));
      return [...new Set(line.leases.filter((l) => l.host === host && alive.has(l.nodeId)).map((l) => l.nodeId))];
    };
    // Two sessions, on two different live relays.
    await until(async () => (await holders()).length === 2, 15_000, 'the agent to hold leases on two relays');
    const get = (r: RelayHandle) => request(`https://${host}:${r.httpsPort}/x`, { ca: r.ca }).catch((err: Error) => ({ status: 0, text: err.message }));
    for (const r of [a, b, c]) assert.equal((await get(r)).status, 200);

    const nodeOfA = await nodeIdAt(a);
    assert.ok((await holders()).includes(nodeOfA), 'one session was on A');
    const killedAt = Date.now();
    a.proc.child.kill('SIGKILL');
    await a.proc.exited;
    await until(async () => (await get(b)).status === 200 && (await get(c)).status === 200, 5_000, 'B and C to serve the tunnel after A died');
    const took = Date.now() - killedAt;
    assert.ok(took <= 5_000, `took ${took} ms`);
    // From then on, no new request fails.
    for (let i = 0; i < 20; i++) {
      const r = await get(i % 2 ? b : c);
      assert.equal(r.status, 200, `request ${i}: ${r.text}`);
      assert.match(r.text, /^origin saw \/x/);
    }
    // The session that was on A moves to C: two relays again, same name.
    // (A's node row counts as alive until it is 10 s old: the two must not include A then.)
    await until(async () => {
      const h = await holders();
      return h.length === 2 && !h.includes(nodeOfA);
    }, 30_000, 'the agent to be on two live relays again');
  });
});
