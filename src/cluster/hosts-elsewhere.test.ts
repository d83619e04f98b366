import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { createLogger } from '../lib/logger.ts';
import { openStore } from '../store/store.ts';
import { HostsElsewhere } from './hosts-elsewhere.ts';
import { StoreLeaseTable, type LeaseClaim } from './leases.ts';

// The synchronous view of hosts other relays serve (return URLs after sign-in, on-demand
// certificates), on a real database (SQLite here; the lease table's own suite runs both).

const T0 = Date.parse('2026-03-01T12:00:00Z');
const claim = (over: Partial<LeaseClaim>): LeaseClaim => ({ host: 'a.tunn.example.com', nodeId: 'nB', sessionId: 's1', tunnelId: 't1', name: 'a', accountId: 'acc', agentId: 'ag', kind: 'http', port: null, ...over });

describe('HostsElsewhere', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-hosts-elsewhere-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('knows the hosts of the other relays, not its own, and follows changes and expiry', async () => {
    const store = await openStore(join(dir, 'tunn.db'));
    try {
      const clock = new ManualClock(T0);
      const leases = new StoreLeaseTable({ store, ttlMs: 10_000 });
      const view = new HostsElsewhere({ nodeId: 'nA', leases, clock, logger: createLogger({ json: true, level: 'silent' }) });
      await leases.acquire(claim({ host: 'b.tunn.example.com', nodeId: 'nB' }), clock.now());
      await leases.acquire(claim({ host: 'mine.tunn.example.com', nodeId: 'nA', sessionId: 's2', tunnelId: 't2', agentId: 'ag2' }), clock.now());
      await view.refresh();
      assert.equal(view.has('B.tunn.example.com'), true, 'compared normalised');
      assert.equal(view.has('mine.tunn.example.com'), false, 'its own hosts are not "elsewhere"');
      assert.equal(view.has('nobody.tunn.example.com'), false);

      await leases.acquire(claim({ host: 'c.tunn.example.com', nodeId: 'nC', sessionId: 's3', tunnelId: 't3', agentId: 'ag3' }), clock.now());
      await view.changed('c.tunn.example.com');
      assert.equal(view.has('c.tunn.example.com'), true);
      await leases.release('nC', 's3');
      await view.changed('c.tunn.example.com');
      assert.equal(view.has('c.tunn.example.com'), false);

      // A relay that stops renewing is gone after the lease expires.
      clock.advance(11_000);
      await view.refresh();
      assert.equal(view.has('b.tunn.example.com'), false);
    } finally {
      await store.close();
    }
  });
});
