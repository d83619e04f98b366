import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore } from '../store/store.ts';
import { SessionService } from './sessions.ts';

describe('SessionService', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-sessions-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));

  it('keeps sessions across a relay restart, and expires them by the clock', async () => {
    const file = join(dir, 'tunn.db');
    let store = await openStore(file);
    const a = await ensureAccount(store, 'a@example.com');
    const { cookieValue } = await new SessionService({ store, clock, ttlSeconds: 3600 }).create({ accountId: a.id, email: a.email, host: 'Tunn.Localhost:8080' });
    await store.close();
    store = await openStore(file);
    const sessions = new SessionService({ store, clock, ttlSeconds: 3600 });
    const s = await sessions.lookup(cookieValue, 'tunn.localhost:8080');
    assert.equal(s?.email, 'a@example.com');
    clock.advance(3601_000);
    assert.equal(await sessions.lookup(cookieValue, 'tunn.localhost:8080'), undefined);
    await store.close();
  });

  it('revokes a family: the relay session and the tunnel-host sessions handed off from it', async () => {
    const store = await openStore(':memory:');
    const sessions = new SessionService({ store, clock });
    const a = await ensureAccount(store, 'a@example.com');
    const relay = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost' });
    const h1 = await sessions.create({ accountId: a.id, email: a.email, host: 'x.tunn.localhost', parent: relay.session });
    const h2 = await sessions.create({ accountId: a.id, email: a.email, host: 'y.tunn.localhost', parent: h1.session });
    assert.equal(h2.session.parentId, relay.session.id);
    const other = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost' });
    await sessions.revokeFamily(h2.session);
    for (const [c, h] of [[relay.cookieValue, 'tunn.localhost'], [h1.cookieValue, 'x.tunn.localhost'], [h2.cookieValue, 'y.tunn.localhost']] as const) {
      assert.equal(await sessions.lookup(c, h), undefined);
    }
    assert.ok(await sessions.lookup(other.cookieValue, 'tunn.localhost'));
    await store.close();
  });
});
