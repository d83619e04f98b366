import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { leaseClaim } from '../../test/fixtures/lease-claim.ts';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { openStore, type Dialect, type Store } from '../store/store.ts';
import { StoreLeaseTable, type LeaseClaim } from './leases.ts';
import { NodeRegistry } from './nodes.ts';

// Node registry and lease table, run against both real databases (SQLite for one relay,
// PostgreSQL for a cluster), with an injected clock for every expiry.

const DIALECTS: Dialect[] = ['sqlite', 'postgres'];
const T0 = Date.parse('2026-03-01T12:00:00Z');
const TTL = 10_000;

const claim = (over: Partial<LeaseClaim> = {}): LeaseClaim => leaseClaim('nA', over);

for (const dialect of DIALECTS) {
  describe(`cluster nodes and leases on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-cluster-${dialect}-`));
    let pg: Postgres | undefined;
    let n = 0;
    const fresh = async (): Promise<Store> => openStore(dialect === 'postgres' ? await pg!.createDatabase() : join(dir, `s${++n}`, 'tunn.db'));

    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
    });
    after(async () => {
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a node is alive while it beats within the TTL; only a live node row yields a URL to dial', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const nodes = new NodeRegistry({ store, clock, ttlMs: TTL });
      try {
        await nodes.join({ id: 'nA', url: 'https://10.0.0.11:7443', version: '0.1.0' });
        assert.equal(await nodes.liveUrl('nA'), 'https://10.0.0.11:7443');
        // Security: a node id nobody registered is never dialled (no URL comes back).
        assert.equal(await nodes.liveUrl('nX'), undefined);
        clock.advance(TTL - 1);
        assert.equal(await nodes.liveUrl('nA'), 'https://10.0.0.11:7443');
        assert.equal(await nodes.heartbeat('nA', { agents: 2, tunnels: 3 }), true);
        clock.advance(TTL - 1);
        const [row] = await nodes.list();
        assert.deepEqual({ alive: row!.alive, agents: row!.agents, tunnels: row!.tunnels, startedAt: row!.startedAt }, { alive: true, agents: 2, tunnels: 3, startedAt: T0 });
        clock.advance(1);
        // Security: a node that stopped beating is not dialled, though its row (and URL) remain.
        assert.equal(await nodes.liveUrl('nA'), undefined);
        assert.equal((await nodes.list())[0]!.alive, false);
      } finally {
        await store.close();
      }
    });

    it('a relay restarted at the same URL replaces its old row and drops the old leases', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const nodes = new NodeRegistry({ store, clock, ttlMs: TTL });
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await nodes.join({ id: 'nOld', url: 'https://10.0.0.11:7443', version: '0.1.0' });
        await nodes.join({ id: 'nB', url: 'https://10.0.0.12:7443', version: '0.1.0' });
        await leases.acquire(claim({ nodeId: 'nOld' }), clock.now());
        await leases.acquire(claim({ nodeId: 'nB', sessionId: 's2' }), clock.now());
        await nodes.join({ id: 'nNew', url: 'https://10.0.0.11:7443', version: '0.1.0' });
        assert.deepEqual((await nodes.list()).map((x) => x.id).sort(), ['nB', 'nNew']);
        assert.deepEqual((await leases.holders('grafana.tunn.example.com', clock.now())).map((l) => l.nodeId), ['nB']);
        assert.equal(await nodes.liveUrl('nOld'), undefined);
      } finally {
        await store.close();
      }
    });

    it('leave drops the node and its leases; prune removes long-dead nodes; a pruned node learns it from its heartbeat', async () => {
      const store = await fresh();
      const clock = new ManualClock(T0);
      const nodes = new NodeRegistry({ store, clock, ttlMs: TTL });
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await nodes.join({ id: 'nA', url: 'https://a:7443', version: '0.1.0' });
        await nodes.join({ id: 'nB', url: 'https://b:7443', version: '0.1.0' });
        await leases.acquire(claim({ nodeId: 'nA' }), clock.now());
        await nodes.leave('nA');
        assert.deepEqual(await leases.all(clock.now()), []);
        clock.advance(3_600_000);
        assert.equal(await nodes.prune(), 1);
        assert.deepEqual(await nodes.list(), []);
        assert.equal(await nodes.heartbeat('nB', { agents: 0, tunnels: 0 }), false);
      } finally {
        await store.close();
      }
    });

    it('leases: one agent may hold a host through sessions on several relays; hosts compare normalised', async () => {
      const store = await fresh();
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        const a = await leases.acquire(claim(), T0);
        assert.deepEqual(a.replaced, []);
        assert.equal(a.lease.expiresAt, T0 + TTL);
        const b = await leases.acquire(claim({ nodeId: 'nB', sessionId: 's9', host: 'Grafana.TUNN.example.com.' }), T0 + 5);
        assert.deepEqual(b.replaced, []);
        assert.equal(b.lease.host, 'grafana.tunn.example.com');
        const held = await leases.holders('GRAFANA.tunn.example.com', T0 + 10);
        assert.deepEqual(held.map((l) => [l.nodeId, l.sessionId]), [['nA', 's1'], ['nB', 's9']]);
        // Acquiring again keeps `since` and extends the expiry.
        const again = await leases.acquire(claim(), T0 + 1000);
        assert.equal(again.lease.since, T0);
        assert.equal(again.lease.expiresAt, T0 + 1000 + TTL);
      } finally {
        await store.close();
      }
    });

    it('take-over: another agent of the same account takes the host and is told whom it replaced', async () => {
      const store = await fresh();
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await leases.acquire(claim(), T0);
        await leases.acquire(claim({ nodeId: 'nB', sessionId: 's2' }), T0);
        const r = await leases.acquire(claim({ nodeId: 'nC', sessionId: 's3', agentId: 'agent2' }), T0 + 1);
        assert.deepEqual(r.replaced.map((l) => [l.nodeId, l.agentId]).sort(), [['nA', 'agent1'], ['nB', 'agent1']]);
        assert.deepEqual((await leases.holders('grafana.tunn.example.com', T0 + 2)).map((l) => l.agentId), ['agent2']);
        // The replaced nodes learn it at their next renewal: they hold nothing any more.
        assert.deepEqual(await leases.renew('nA', T0 + 3), []);
      } finally {
        await store.close();
      }
    });

    it("a live lease of another account is a conflict; once it expires the host can be taken", async () => {
      const store = await fresh();
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await leases.acquire(claim(), T0);
        // Security: a lease row is no way around name ownership: another account cannot take a live host.
        await assert.rejects(leases.acquire(claim({ accountId: 'acc2', agentId: 'x', nodeId: 'nB' }), T0 + TTL - 1), (e) => isTunnError(e, 'CONFLICT') && /another account/.test(e.message));
        const r = await leases.acquire(claim({ accountId: 'acc2', agentId: 'x', nodeId: 'nB' }), T0 + TTL);
        assert.deepEqual(r.replaced, []);
        assert.deepEqual((await leases.holders('grafana.tunn.example.com', T0 + TTL)).map((l) => l.accountId), ['acc2']);
      } finally {
        await store.close();
      }
    });

    it('renew extends only the node\'s own leases; expired leases are invisible and swept; release drops a session', async () => {
      const store = await fresh();
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await leases.acquire(claim(), T0);
        await leases.acquire(claim({ host: 'b.tunn.example.com', name: 'b', sessionId: 's1' }), T0);
        await leases.acquire(claim({ nodeId: 'nB', sessionId: 's2' }), T0);
        const renewed = await leases.renew('nA', T0 + 8000);
        assert.deepEqual(renewed.map((l) => [l.host, l.expiresAt]).sort(), [['b.tunn.example.com', T0 + 8000 + TTL], ['grafana.tunn.example.com', T0 + 8000 + TTL]]);
        // nB stopped renewing: after its expiry it is gone for routing.
        assert.deepEqual((await leases.holders('grafana.tunn.example.com', T0 + TTL)).map((l) => l.nodeId), ['nA']);
        assert.equal(await leases.sweep(T0 + TTL), 1);
        await leases.release('nA', 's1', 'b.tunn.example.com');
        assert.deepEqual((await leases.all(T0 + TTL)).map((l) => l.host), ['grafana.tunn.example.com']);
        await leases.release('nA', 's1');
        assert.deepEqual(await leases.all(T0 + TTL), []);
      } finally {
        await store.close();
      }
    });

    it('a public port is held by one host at a time', async () => {
      const store = await fresh();
      const leases = new StoreLeaseTable({ store, ttlMs: TTL });
      try {
        await leases.acquire(claim({ host: 'db.tunn.example.com', name: 'db', kind: 'tcp', port: 5432 }), T0);
        await assert.rejects(leases.acquire(claim({ host: 'other.tunn.example.com', name: 'other', kind: 'tcp', port: 5432 }), T0 + 1), (e) => isTunnError(e, 'CONFLICT') && /port 5432/.test(e.message));
        assert.deepEqual((await leases.byPort(5432, T0 + 1)).map((l) => l.host), ['db.tunn.example.com']);
        assert.deepEqual(await leases.byPort(5432, T0 + TTL), []);
      } finally {
        await store.close();
      }
    });

    if (dialect === 'postgres') {
      it('two relays acquiring one host for two agents at once end with exactly one agent holding it', async () => {
        const url = await pg!.createDatabase();
        const stores = [await openStore(url), await openStore(url)];
        try {
          for (let round = 0; round < 10; round++) {
            const host = `race${round}.tunn.example.com`;
            const results = await Promise.all(stores.map((s, i) => new StoreLeaseTable({ store: s, ttlMs: TTL }).acquire(claim({ host, nodeId: `n${i}`, sessionId: `s${i}`, agentId: `agent${i}` }), T0)));
            const held = await new StoreLeaseTable({ store: stores[0]!, ttlMs: TTL }).holders(host, T0);
            assert.equal(held.length, 1, `one holder of ${host}`);
            // Whoever came second replaced the first, and says so.
            assert.equal(results.reduce((k, r) => k + r.replaced.length, 0), 1);
          }
        } finally {
          for (const s of stores) await s.close();
        }
      });
    }
  });
}
