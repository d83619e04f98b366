import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Dialect, type Store } from '../store/store.ts';
import { PublicPorts, type PublicPortsConfig } from './public-ports.ts';

// Run against both real databases, like src/store/store.test.ts: the allocation's SQL (ranges,
// conflicts, ordering by text timestamps) must mean the same on each.

const DAY = 86_400_000;

for (const dialect of ['sqlite', 'postgres'] as Dialect[]) {
  describe(`public ports on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-ports-${dialect}-`));
    let pg: Postgres | undefined;
    let url = '';
    let store: Store;
    let ann = '';
    let bob = '';
    const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
    const ports = (c: Partial<PublicPortsConfig>): PublicPorts => new PublicPorts(store, { reserved: {}, ...c }, clock);

    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
      url = pg ? await pg.createDatabase() : join(dir, 'tunn.db');
      store = await openStore(url);
      ann = (await ensureAccount(store, 'ann@example.com')).id;
      bob = (await ensureAccount(store, 'bob@example.com')).id;
    });
    after(async () => {
      await store?.close();
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('hands out the lowest free port, never one the relay listens on, and the same one to the same name after a restart', async () => {
      const p = ports({ tcp: { low: 20000, high: 20009 }, reserved: { tcp: [20000, 20001] } });
      assert.equal(await p.assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'mc', accountId: ann }), 20002);
      assert.equal(await p.assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'db', accountId: ann }), 20003);
      // UDP ports are a separate space: the same number may serve another name there.
      const u = ports({ udp: { low: 20000, high: 20009 } });
      assert.equal(await u.assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'wg', accountId: ann }), 20000);
      await store.close();
      store = await openStore(url);
      const again = ports({ tcp: { low: 20000, high: 20009 }, reserved: { tcp: [20000, 20001] } });
      assert.equal(await again.assign({ protocol: 'tcp', domain: 'TUNN.example.com.', name: 'MC', accountId: ann }), 20002);
      assert.deepEqual(await again.holder('tcp', 20003), { protocol: 'tcp', port: 20003, domain: 'tunn.example.com', name: 'db', accountId: ann });
      assert.equal(await again.holder('tcp', 20004), undefined);
    });

    it('says which flag turns public ports on when the relay has none of that protocol', async () => {
      await assert.rejects(ports({ tcp: { low: 20000, high: 20009 } }).assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'wg2', accountId: ann }), (e: Error) => isTunnError(e, 'FORBIDDEN') && /no public UDP ports: .*`tunn relay --udp-ports LOW-HIGH`/.test(e.message));
    });

    it('keeps a name\'s port to its account', async () => {
      await assert.rejects(ports({ tcp: { low: 20000, high: 20009 } }).assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'mc', accountId: bob }), (e: Error) => isTunnError(e, 'NAME_TAKEN'));
    });

    it('holds an account to its quota, naming the ports it holds', async () => {
      const p = ports({ tcp: { low: 20000, high: 20009 }, perAccount: 3 });
      // ann holds mc, db (tcp) and wg (udp): a fourth is refused, an old name still gets its port.
      await assert.rejects(p.assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'new', accountId: ann }), (e: Error) => isTunnError(e, 'FORBIDDEN') && /holds 3 public ports, this relay's limit: .*mc \(tcp 20002\)/.test(e.message));
      assert.equal(await p.assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'db', accountId: ann }), 20003);
    });

    it('moves a name whose port left the range when the operator narrowed it', async () => {
      const p = ports({ tcp: { low: 20003, high: 20009 } });
      assert.equal(await p.assign({ protocol: 'tcp', domain: 'tunn.example.com', name: 'mc', accountId: ann }), 20004);
      assert.equal(await p.holder('tcp', 20002), undefined);
    });

    // Two relays of a cluster (or two registrations at once) picking the same free port: one
    // insert loses on the primary key and takes the next port; the same name racing gets one port.
    it('hands different names racing for the same port different ports, and one name one port', async () => {
      const a = ports({ tcp: { low: 40000, high: 40009 } });
      const b = ports({ tcp: { low: 40000, high: 40009 } });
      const got = await Promise.all([a.assign({ protocol: 'tcp', domain: 'race.test', name: 'x', accountId: bob }), b.assign({ protocol: 'tcp', domain: 'race.test', name: 'y', accountId: bob })]);
      assert.deepEqual([...got].sort(), [40000, 40001]);
      const same = await Promise.all([a.assign({ protocol: 'tcp', domain: 'race.test', name: 'z', accountId: bob }), b.assign({ protocol: 'tcp', domain: 'race.test', name: 'z', accountId: bob })]);
      assert.equal(same[0], same[1]);
      for (const n of ['x', 'y', 'z']) await a.release('tcp', 'race.test', n);
      assert.equal(await a.holder('tcp', 40000), undefined);
    });

    it('when the range is full, takes back only a port unused for the reclaim period and not live', async () => {
      const p = ports({ udp: { low: 30000, high: 30001 } });
      assert.equal(await p.assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'a', accountId: bob }), 30000);
      clock.advance(DAY);
      assert.equal(await p.assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'b', accountId: bob }), 30001);
      await assert.rejects(p.assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'c', accountId: bob }), (e: Error) => isTunnError(e, 'UNAVAILABLE') && /UDP ports of this relay \(30000-30001\) are taken: ask its operator for a larger --udp-ports range/.test(e.message));
      clock.advance(31 * DAY);
      // "a" is the least recently used, but live: "b" is taken back instead.
      assert.equal(await p.assign({ protocol: 'udp', domain: 'tunn.example.com', name: 'c', accountId: bob }, (_d, n) => n === 'a'), 30001);
      assert.equal((await p.holder('udp', 30000))?.name, 'a');
      assert.equal((await p.holder('udp', 30001))?.name, 'c');
    });
  });
}
