import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { readAll } from '../../test/support/read-all.ts';
import { MemoryDirectory, Session, type Tunnel, type TunnelInit } from '../../test/fixtures/memory-directory.ts';
import { freePort } from '../../test/support/ports.ts';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { systemClock } from '../lib/clock.ts';
import { isTunnError, TunnError } from '../lib/errors.ts';
import { silentLogger } from '../lib/logger.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { startClusterNode, type ClusterNode } from './node.ts';
import { clusterStatus } from './status.ts';

// Two relays' cluster parts on one PostgreSQL, put together as phase 2 will: a visitor
// connection reaching relay A for a tunnel whose agent is on relay B is carried to B.

const SECRET = 'node-test-cluster-secret-0123456789abcdefghij';

describe('a cluster node (PostgreSQL, loopback)', () => {
  let pg: Postgres;
  let url: string;
  const stores: Store[] = [];
  const box = new SecretBox(randomBytes(32));
  const nodes: ClusterNode<Tunnel, Session, TunnelInit>[] = [];

  const start = async (name: string, keyBox = box, port?: number, ttlMs?: number) => {
    const store = await openStore(url);
    stores.push(store);
    const local = new MemoryDirectory();
    let self: ClusterNode<Tunnel, Session, TunnelInit> | undefined;
    const node = await startClusterNode({
      store,
      storeUrl: url,
      box: keyBox,
      ttlMs,
      clock: systemClock,
      logger: silentLogger(),
      version: 'test',
      nodeUrl: `https://127.0.0.1:${port ?? (await freePort())}`,
      listen: '127.0.0.1',
      credentials: { secret: SECRET },
      directory: local,
      leaseOf: () => ({ kind: 'http', port: null }),
      onForwardedStream: (host, _kind, client, stream) => {
        if (!self?.directory.get(host)) throw new TunnError('NOT_FOUND', `no agent for ${host} here`);
        void readAll(stream).then((got) => stream.end(`${name} serves ${host} for ${client}: ${got}`));
      },
    });
    self = node;
    nodes.push(node);
    return node;
  };

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
  });
  after(async () => {
    for (const n of nodes) await n.close().catch(() => {});
    for (const s of stores) await s.close();
    await pg.stop();
  });

  it("carries a visitor from the relay without the agent to the relay with it, and forgets a relay that leaves", async () => {
    const a = await start('A');
    const b = await start('B');
    b.directory.attach({ id: 't1', host: 'grafana.tunn.example.com', name: 'grafana', accountId: 'acc', agentId: 'ag' }, new Session('s1'), Date.now());
    await b.directory.settled();
    assert.equal(a.directory.get('grafana.tunn.example.com'), undefined, 'A has no local session for it');
    const s = await a.forwarder.forward('grafana.tunn.example.com', 'http', '203.0.113.7:4000');
    s.end('GET /');
    assert.equal(await readAll(s), 'B serves grafana.tunn.example.com for 203.0.113.7:4000: GET /');
    assert.deepEqual([a.counters.forwardedOk, b.counters.receivedAccepted], [1, 1]);

    await b.heartbeat.beat();
    const status = await clusterStatus(stores[0]!, systemClock);
    assert.deepEqual(status.nodes.map((n) => [n.id, n.alive, n.tunnels]).sort(), [[a.nodeId, true, 0], [b.nodeId, true, 1]].sort());
    assert.deepEqual(status.leases.map((l) => [l.host, l.nodeId]), [['grafana.tunn.example.com', b.nodeId]]);
    // A's /metrics: what it carried, and the database and the cluster as its last heartbeat saw them.
    await a.heartbeat.beat();
    const registry = new Registry();
    a.registerMetrics(registry);
    const text = await registry.metrics();
    assert.match(text, /^tunn_cluster_forwarded_total\{result="ok"\} 1$/m);
    assert.match(text, /^tunn_cluster_database_reachable 1$/m);
    assert.match(text, /^tunn_cluster_nodes_alive 2$/m);

    await b.close();
    await assert.rejects(a.forwarder.forward('grafana.tunn.example.com', 'http', '203.0.113.7:4000'), (e) => isTunnError(e, 'NOT_FOUND'));
    assert.equal(a.counters.forwardedNotFound, 1);
    assert.deepEqual((await clusterStatus(stores[0]!, systemClock)).nodes.map((n) => n.id), [a.nodeId]);
  });

  it('a take-over on another relay is applied here within 2 s, before any heartbeat (LISTEN/NOTIFY)', async () => {
    // A minute's TTL: the heartbeat (every 20 s) cannot be what moves the tunnel.
    const a = await start('A', box, undefined, 60_000);
    const b = await start('B', box, undefined, 60_000);
    const old = new Session('s-old');
    a.directory.attach({ id: 't1', host: 'moved.tunn.example.com', name: 'moved', accountId: 'acc', agentId: 'ag1' }, old, Date.now());
    await a.directory.settled();
    b.directory.attach({ id: 't2', host: 'moved.tunn.example.com', name: 'moved', accountId: 'acc', agentId: 'ag2' }, new Session('s-new'), Date.now());
    await b.directory.settled();
    const deadline = Date.now() + 2000 * 3; // 2 s asked; a generous ceiling on a shared machine
    while (a.directory.get('moved.tunn.example.com') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(a.directory.get('moved.tunn.example.com'), undefined);
    assert.deepEqual(old.told, ['replaced t1: the tunnel moved.tunn.example.com was taken over by another agent on another relay']);
    await a.close();
    await b.close();
  });

  it('a relay with another sealing key refuses to start, and opens no port', async () => {
    // Security: a relay whose key cannot open the cluster's secrets never joins (nor listens for other relays).
    const port = await freePort();
    await assert.rejects(start('X', new SecretBox(randomBytes(32)), port), (e) => isTunnError(e, 'CONFIG_INVALID') && /sealing key cannot open/.test(e.message));
    await new Promise<void>((resolve, reject) => {
      const probe = net.createServer().once('error', reject);
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  });
});
