import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { leaseClaim } from '../../test/fixtures/lease-claim.ts';
import { readAll } from '../../test/support/read-all.ts';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError, TunnError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { openStore, type Store } from '../store/store.ts';
import { credentialsFromSecret } from './credentials.ts';
import { ClusterForwarder } from './forwarder.ts';
import { ClusterHeartbeat } from './heartbeat.ts';
import { ClusterCounters } from './metrics.ts';
import { StoreLeaseTable, type LeaseClaim } from './leases.ts';
import { LinkClient } from './link-client.ts';
import { LinkServer } from './link-server.ts';
import { NodeRegistry } from './nodes.ts';

// The dialling side of a cluster on a real PostgreSQL: which relay a visitor connection is
// carried to (live leases of live nodes only), and the heartbeat that keeps leases alive.

const SECRET = 'forwarder-test-cluster-secret-0123456789abcdef';
const T0 = Date.parse('2026-03-01T12:00:00Z');
const TTL = 10_000;

const claim = (over: Partial<LeaseClaim> = {}): LeaseClaim => leaseClaim('nb', over);

describe('cluster forwarder and heartbeat (PostgreSQL)', () => {
  let pg: Postgres;
  let url: string;
  let store: Store;
  const clock = new ManualClock(T0);
  let nodes: NodeRegistry;
  let leases: StoreLeaseTable;
  const servers: LinkServer[] = [];
  const streamsAt: Record<string, string[]> = {};
  /** Hosts the test nodes say they do not serve (any more). */
  const notHere = new Set<string>();
  let link: LinkClient;
  let forwarder: ClusterForwarder;

  /** A relay node's link server that echoes "<node>:" + what it reads; `gone.*` hosts are refused as not here. */
  const startNode = async (id: string): Promise<string> => {
    streamsAt[id] = [];
    const s = new LinkServer({
      credentials: await credentialsFromSecret(SECRET, id),
      onForwardedStream: (host, _kind, _client, stream) => {
        streamsAt[id]!.push(host);
        if (host.startsWith('gone.') || notHere.has(host)) throw new TunnError('NOT_FOUND', 'no agent session for it here');
        void readAll(stream).then((got) => stream.end(`${id}:${got}`));
      },
    });
    servers.push(s);
    return `https://127.0.0.1:${await s.listen(0, '127.0.0.1')}`;
  };

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
    store = await openStore(url);
    nodes = new NodeRegistry({ store, clock, ttlMs: TTL });
    leases = new StoreLeaseTable({ store, ttlMs: TTL });
    link = new LinkClient({ credentials: await credentialsFromSecret(SECRET, 'na'), timeoutMs: 5000 });
    forwarder = new ClusterForwarder({ nodeId: 'na', nodes, leases, link, clock });
    await nodes.join({ id: 'na', url: await startNode('na'), version: 'test' });
    await nodes.join({ id: 'nb', url: await startNode('nb'), version: 'test' });
  });
  after(async () => {
    link.close();
    for (const s of servers) await s.close();
    await store.close();
    await pg.stop();
  });

  it('carries a visitor connection to the relay holding the host', async () => {
    await leases.acquire(claim(), clock.now());
    const s = await forwarder.forward('Grafana.tunn.example.com', 'http', '203.0.113.9:5000');
    s.end('GET / HTTP/1.1\r\n\r\n');
    assert.equal(await readAll(s), 'nb:GET / HTTP/1.1\r\n\r\n');
    assert.deepEqual(streamsAt.nb, ['grafana.tunn.example.com']);
  });

  it('a holder whose link fails (network gone) is tried after the others for a while', async () => {
    // A "relay" that accepts TCP and never answers: what a relay cut off the network looks like
    // while its node row and lease are still alive. n0 sorts before nb, so it is tried first.
    let dials = 0;
    const held = new Set<Socket>();
    const blackhole = createNetServer((sock) => {
      dials++;
      held.add(sock);
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const quick = new LinkClient({ credentials: await credentialsFromSecret(SECRET, 'na'), timeoutMs: 300 });
    try {
      await nodes.join({ id: 'n0', url: `https://127.0.0.1:${(blackhole.address() as AddressInfo).port}`, version: 'test' });
      await leases.acquire(claim({ host: 'pair.tunn.example.com', name: 'pair', nodeId: 'n0', sessionId: 's0' }), clock.now());
      await leases.acquire(claim({ host: 'pair.tunn.example.com', name: 'pair', nodeId: 'nb', sessionId: 's9' }), clock.now());
      const f = new ClusterForwarder({ nodeId: 'na', nodes, leases, link: quick, clock });
      for (let i = 0; i < 3; i++) {
        const d = await f.forward('pair.tunn.example.com', 'http', '127.0.0.1:1');
        d.end(`v${i}`);
        assert.equal(await readAll(d), `nb:v${i}`);
      }
      assert.equal(dials, 1, 'the unreachable relay was dialled once, then put last');
    } finally {
      quick.close();
      for (const sock of held) sock.destroy();
      blackhole.close();
      await leases.releaseNode('n0');
      await nodes.leave('n0');
    }
  });

  it('reads where a host is at most once a second; a remembered holder that left is read again at once', async () => {
    let reads = 0;
    const counting = new (class extends StoreLeaseTable {
      override holders(h: string, now: number) {
        reads++;
        return super.holders(h, now);
      }
    })({ store, ttlMs: TTL });
    const f = new ClusterForwarder({ nodeId: 'na', nodes, leases: counting, link, clock });
    await leases.acquire(claim({ host: 'moving.tunn.example.com', name: 'moving' }), clock.now());
    for (let i = 0; i < 3; i++) (await f.forward('moving.tunn.example.com', 'http', '127.0.0.1:1')).end();
    assert.equal(reads, 1);
    clock.advance(1000);
    (await f.forward('moving.tunn.example.com', 'http', '127.0.0.1:1')).end();
    assert.equal(reads, 2);
    // The tunnel leaves nb: the remembered route is refused (NOT_HERE), read again, and none is left.
    notHere.add('moving.tunn.example.com');
    await leases.release('nb', 's1', 'moving.tunn.example.com');
    await assert.rejects(f.forward('moving.tunn.example.com', 'http', '127.0.0.1:1'), (e) => isTunnError(e, 'NOT_FOUND') && /no other relay of the cluster serves/.test(e.message));
    assert.equal(reads, 3);
  });

  it('keeps carrying to the last known holder while the database is away (a cached route)', async () => {
    const outageStore = await openStore(url, { connectMs: 1000, queryMs: 2000 });
    const f = new ClusterForwarder({ nodeId: 'na', nodes: new NodeRegistry({ store: outageStore, clock, ttlMs: TTL }), leases: new StoreLeaseTable({ store: outageStore, ttlMs: TTL }), link, clock });
    try {
      (await f.forward('grafana.tunn.example.com', 'http', '127.0.0.1:1')).end();
      // Past the route's second of freshness: the next forward asks the database, which is gone.
      clock.advance(1500);
      await pg.stopServer();
      try {
        const s = await f.forward('grafana.tunn.example.com', 'http', '127.0.0.1:2');
        s.end('cached');
        assert.equal(await readAll(s), 'nb:cached');
        // A host never looked up has no route to fall back on: the database error shows.
        await assert.rejects(f.forward('never.tunn.example.com', 'http', '127.0.0.1:3'), (e) => isTunnError(e, 'UNAVAILABLE'));
      } finally {
        await pg.startServer();
      }
    } finally {
      await outageStore.close();
    }
  });

  it('never forwards to itself; no other holder is NOT_FOUND', async () => {
    await leases.acquire(claim({ host: 'mine.tunn.example.com', name: 'mine', nodeId: 'na' }), clock.now());
    await assert.rejects(forwarder.forward('mine.tunn.example.com', 'http', '127.0.0.1:1'), (e) => isTunnError(e, 'NOT_FOUND') && /no other relay of the cluster serves mine\.tunn\.example\.com/.test(e.message));
    assert.deepEqual(streamsAt.na, []);
  });

  it('does not dial the URL of a node whose row stopped beating, or of a node with no row', async () => {
    // Security: a node URL read from the database is dialled only if it belongs to a live node row.
    const deadUrl = await startNode('nc');
    await nodes.join({ id: 'nc', url: deadUrl, version: 'test' });
    clock.advance(TTL);
    await nodes.heartbeat('na', { agents: 0, tunnels: 0 });
    await nodes.heartbeat('nb', { agents: 0, tunnels: 0 });
    // nc's lease is fresh, but its node row is not.
    await leases.acquire(claim({ host: 'dead.tunn.example.com', name: 'dead', nodeId: 'nc' }), clock.now());
    await leases.acquire(claim({ host: 'ghost.tunn.example.com', name: 'ghost', nodeId: 'nz' }), clock.now());
    await assert.rejects(forwarder.forward('dead.tunn.example.com', 'http', '127.0.0.1:1'), (e) => isTunnError(e, 'NOT_FOUND'));
    await assert.rejects(forwarder.forward('ghost.tunn.example.com', 'http', '127.0.0.1:1'), (e) => isTunnError(e, 'NOT_FOUND'));
    assert.deepEqual(streamsAt.nc, [], 'the dead node got no stream');
  });

  it("a holder's refusal is reported with its reason", async () => {
    await leases.acquire(claim({ host: 'gone.tunn.example.com', name: 'gone' }), clock.now());
    await assert.rejects(forwarder.forward('gone.tunn.example.com', 'tcp', '127.0.0.1:1'), (e) => isTunnError(e, 'UNAVAILABLE') && /no relay holding gone\.tunn\.example\.com took the connection: .*refused \(NOT_HERE\): gone\.tunn\.example\.com: no agent session for it here/.test(e.message));
  });

  it('the heartbeat renews, re-acquires a swept lease, reports a take-over, rejoins after a prune, and rides out a database outage', async () => {
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({ json: true, destination: new Writable({ write: (chunk, _e, cb) => (logs.push(JSON.parse(String(chunk))), cb()) }) });
    const outageStore = await openStore(url, { connectMs: 1000, queryMs: 2000 });
    const held = [claim({ host: 'hb1.tunn.example.com', name: 'hb1', nodeId: 'nh', sessionId: 'sh' }), claim({ host: 'hb2.tunn.example.com', name: 'hb2', nodeId: 'nh', sessionId: 'sh' })];
    const lost: LeaseClaim[][] = [];
    const hbNodes = new NodeRegistry({ store: outageStore, clock, ttlMs: TTL });
    const hbLeases = new StoreLeaseTable({ store: outageStore, ttlMs: TTL });
    const counters = new ClusterCounters();
    const hb = new ClusterHeartbeat({ nodeId: 'nh', url: 'https://127.0.0.1:1', version: 'test', nodes: hbNodes, leases: hbLeases, clock, logger, held: () => held, onLost: (c) => lost.push(c), counters });
    try {
      // No row yet: the first beat joins, and acquires what the node serves.
      await hb.beat();
      assert.equal(logs.filter((l) => l.event === 'cluster_rejoin').length, 1);
      assert.deepEqual((await leases.all(clock.now())).filter((l) => l.nodeId === 'nh').map((l) => l.host), ['hb1.tunn.example.com', 'hb2.tunn.example.com']);
      assert.deepEqual((await nodes.list()).find((n) => n.id === 'nh')?.tunnels, 2);
      // Swept (expired during an outage) and nobody took it: acquired again.
      clock.advance(TTL);
      await leases.sweep(clock.now());
      await hb.beat();
      assert.equal((await leases.holders('hb1.tunn.example.com', clock.now())).length, 1);
      // Another agent took hb2 on another relay: reported lost, not taken back.
      await leases.acquire(claim({ host: 'hb2.tunn.example.com', name: 'hb2', nodeId: 'nb', sessionId: 'sx', agentId: 'agent2' }), clock.now());
      await hb.beat();
      assert.deepEqual(lost.map((c) => c.map((x) => x.host)), [['hb2.tunn.example.com']]);
      assert.deepEqual((await leases.holders('hb2.tunn.example.com', clock.now())).map((l) => l.agentId), ['agent2']);
      // The database goes away: said once, and once that it is back.
      await pg.stopServer();
      await hb.beat();
      await hb.beat();
      await pg.startServer();
      await hb.beat();
      assert.deepEqual(logs.map((l) => l.event).filter((e) => e === 'cluster_database_lost' || e === 'cluster_database_back'), ['cluster_database_lost', 'cluster_database_back']);
      assert.equal(hb.databaseReachable, true);
      assert.deepEqual([counters.databaseLost, counters.databaseBack], [1, 1]);
    } finally {
      await outageStore.close();
    }
  });
});
