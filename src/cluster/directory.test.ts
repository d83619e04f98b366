import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { silentLogger } from '../lib/logger.ts';
import { openStore, type Store } from '../store/store.ts';
import { MemoryDirectory, Session, type TunnelInit as Init } from '../../test/fixtures/memory-directory.ts';
import { ClusterDirectory } from './directory.ts';
import { ClusterHeartbeat } from './heartbeat.ts';
import { StoreLeaseTable, type LeaseKind } from './leases.ts';
import { NodeRegistry } from './nodes.ts';

// The cluster directory: two relays' in-memory directories on one PostgreSQL, each mirrored
// into the lease table, and what the table says applied back to them.

const T0 = Date.parse('2026-03-01T12:00:00Z');

describe('cluster directory (PostgreSQL)', () => {
  let pg: Postgres;
  let stores: Store[];
  const clock = new ManualClock(T0);
  const relay = (store: Store, nodeId: string, leaseOf: () => { kind: LeaseKind; port: number | null } = () => ({ kind: 'http', port: null })) => {
    const leases = new StoreLeaseTable({ store });
    const dir = new ClusterDirectory(new MemoryDirectory(), { nodeId, leases, clock, logger: silentLogger(), leaseOf });
    const heartbeat = new ClusterHeartbeat({ nodeId, url: `https://${nodeId}:7443`, version: 'test', nodes: new NodeRegistry({ store, clock }), leases, clock, logger: silentLogger(), held: () => dir.held(), onLost: (c) => dir.lost(c) });
    return { dir, leases, heartbeat };
  };
  const tunnel = (over: Partial<Init> = {}): Init => ({ id: 't1', host: 'grafana.tunn.example.com', name: 'grafana', accountId: 'acc1', agentId: 'agent1', ...over });

  before(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
    stores = [await openStore(url), await openStore(url)];
  });
  after(async () => {
    for (const s of stores) await s.close();
    await pg.stop();
  });

  it('mirrors attach and detach into leases; one agent on two relays holds two leases', async () => {
    const a = relay(stores[0]!, 'na');
    const b = relay(stores[1]!, 'nb');
    const s1 = new Session('s1');
    const s2 = new Session('s2');
    a.dir.attach(tunnel(), s1, clock.now());
    b.dir.attach(tunnel(), s2, clock.now());
    await Promise.all([a.dir.settled(), b.dir.settled()]);
    assert.deepEqual((await a.leases.holders('grafana.tunn.example.com', clock.now())).map((l) => [l.nodeId, l.sessionId]), [['na', 's1'], ['nb', 's2']]);
    assert.deepEqual(a.dir.held().map((c) => [c.host, c.sessionId]), [['grafana.tunn.example.com', 's1']]);
    a.dir.detach(s1);
    b.dir.detachTunnel(s2, 't1');
    await Promise.all([a.dir.settled(), b.dir.settled()]);
    assert.deepEqual(await a.leases.holders('grafana.tunn.example.com', clock.now()), []);
  });

  // Security: other relays route raw TLS (never decrypting it) by the lease's kind, so the lease
  // must follow the agent reporting that TLS ends there (relay.ts: AgentTlsRelay onEndsChanged).
  it('rewrite writes the lease again with what leaseOf says now (http → tls-at-agent)', async () => {
    let kind: LeaseKind = 'http';
    const a = relay(stores[0]!, 'na', () => ({ kind, port: null }));
    const s = new Session('s9');
    a.dir.attach(tunnel({ host: 'e2ee.tunn.example.com', name: 'e2ee' }), s, clock.now());
    await a.dir.settled();
    assert.deepEqual((await a.leases.holders('e2ee.tunn.example.com', clock.now())).map((l) => l.kind), ['http']);
    kind = 'tls-at-agent';
    a.dir.rewrite('e2ee.tunn.example.com');
    await a.dir.settled();
    assert.deepEqual((await a.leases.holders('e2ee.tunn.example.com', clock.now())).map((l) => [l.sessionId, l.kind]), [['s9', 'tls-at-agent']]);
    a.dir.rewrite('nobody.tunn.example.com');
    a.dir.detach(s);
    await a.dir.settled();
    assert.deepEqual(await a.leases.holders('e2ee.tunn.example.com', clock.now()), []);
  });

  it('a detach right after an attach leaves no lease behind (writes per session stay in order)', async () => {
    const a = relay(stores[0]!, 'na');
    const s = new Session('s3');
    a.dir.attach(tunnel({ host: 'quick.tunn.example.com', name: 'quick' }), s, clock.now());
    a.dir.detach(s);
    await a.dir.settled();
    assert.deepEqual(await a.leases.holders('quick.tunn.example.com', clock.now()), []);
  });

  it('a take-over on another relay reaches this one at its next heartbeat: the session is told, the tunnel leaves', async () => {
    const a = relay(stores[0]!, 'na');
    const b = relay(stores[1]!, 'nb');
    const old = new Session('s4');
    a.dir.attach(tunnel({ host: 'moved.tunn.example.com', name: 'moved' }), old, clock.now());
    await a.dir.settled();
    b.dir.attach(tunnel({ host: 'moved.tunn.example.com', name: 'moved', agentId: 'agent2', id: 't9' }), new Session('s5'), clock.now());
    await b.dir.settled();
    assert.ok(a.dir.get('moved.tunn.example.com'), 'still listed until the heartbeat');
    await a.heartbeat.beat();
    assert.equal(a.dir.get('moved.tunn.example.com'), undefined);
    assert.deepEqual(old.told, ['replaced t1: the tunnel moved.tunn.example.com was taken over by another agent on another relay']);
  });

  it("another account's live lease: the registration is refused and not served here", async () => {
    // Security: a relay that missed the names table's decision still cannot serve another account's live host.
    const a = relay(stores[0]!, 'na');
    const b = relay(stores[1]!, 'nb');
    a.dir.attach(tunnel({ host: 'owned.tunn.example.com', name: 'owned' }), new Session('s6'), clock.now());
    await a.dir.settled();
    const intruder = new Session('s7');
    b.dir.attach(tunnel({ host: 'owned.tunn.example.com', name: 'owned', accountId: 'acc2', agentId: 'agentX' }), intruder, clock.now());
    await b.dir.settled();
    assert.equal(b.dir.get('owned.tunn.example.com'), undefined);
    assert.match(intruder.told[0]!, /^NAME_TAKEN t1: owned\.tunn\.example\.com is served by another account's tunnel/);
    assert.deepEqual((await a.leases.holders('owned.tunn.example.com', clock.now())).map((l) => l.accountId), ['acc1']);
  });

  it('the heartbeat drops a lease this relay no longer serves (a release lost in an outage)', async () => {
    const a = relay(stores[0]!, 'na');
    // A row for a session the directory does not have.
    await a.leases.acquire({ host: 'stale.tunn.example.com', nodeId: 'na', sessionId: 'gone', tunnelId: 't', name: 'stale', accountId: 'acc1', agentId: 'agent1', kind: 'http', port: null }, clock.now());
    await a.heartbeat.beat();
    assert.deepEqual(await a.leases.holders('stale.tunn.example.com', clock.now()), []);
  });
});
