import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { GroupService } from '../auth/groups.ts';
import { TokenService } from '../auth/tokens.ts';
import { IDENTITY_CHANNEL } from '../cluster/node.ts';
import { PgListener } from '../cluster/pg-listener.ts';
import { createDomain, markDomainVerified, setDomainShares } from '../domains/records.ts';
import { systemClock } from '../lib/clock.ts';
import { silentLogger } from '../lib/logger.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { IdentityChanges } from './identity-changes.ts';

// Issue 14: identity and policy changes reach every relay at once. The database announces them
// (migration 0010's triggers NOTIFY tunn_identity with the table, whoever writes: a relay, the
// CLI, psql), only for the changes that decide access (a token's last use is no news), and a
// relay applies them once per burst: caches dropped, keys reloaded when they changed, then a
// live-revocation pass.

async function until(cond: () => boolean, what: string, ceilingMs = 10_000): Promise<void> {
  const end = Date.now() + ceilingMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('IdentityChanges', () => {
  it('handles a burst once: caches dropped, keys reloaded only when they changed, then one pass', async () => {
    const calls: string[] = [];
    const changes = new IdentityChanges({
      logger: silentLogger(),
      reloadKeys: async () => void calls.push('keys'),
      forgetCaches: () => void calls.push('caches'),
      sweep: async () => void calls.push('sweep'),
    });
    changes.changed('groups');
    changes.changed('tokens');
    await changes.settled();
    assert.deepEqual(calls, ['caches', 'sweep'], 'two notifications, one pass; keys untouched');
    calls.length = 0;
    changes.changed('signing_keys');
    await changes.settled();
    assert.deepEqual(calls, ['caches', 'keys', 'sweep'], 'keys reloaded before the pass that cuts what a retired key signed');
    calls.length = 0;
    changes.changed('*');
    await changes.settled();
    assert.deepEqual(calls, ['caches', 'keys', 'sweep'], 'after the listener reconnects: everything');
  });

  it('a failing pass is logged and the next notification is handled', async () => {
    const lines: Record<string, unknown>[] = [];
    let fail = true;
    let swept = 0;
    const logger = { ...silentLogger(), warn: (o: Record<string, unknown>) => void lines.push(o) } as unknown as ReturnType<typeof silentLogger>;
    const changes = new IdentityChanges({ logger, reloadKeys: async () => {}, forgetCaches: () => {}, sweep: async () => { swept++; if (fail) throw new Error('store down'); } });
    changes.changed('tokens');
    await changes.settled();
    assert.equal(lines[0]?.event, 'identity_change_failed');
    fail = false;
    changes.changed('tokens');
    await changes.settled();
    assert.equal(swept, 2);
  });
});

describe('identity NOTIFY triggers (PostgreSQL, migration 0010)', () => {
  let pg: Postgres;
  let store: Store;
  let url: string;
  let listener: PgListener;
  const heard: string[] = [];

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
    store = await openStore(url);
    listener = new PgListener({ url, channels: [IDENTITY_CHANNEL], onNotify: (_c, table) => void heard.push(table), logger: silentLogger() });
    await listener.start();
  });
  after(async () => {
    await listener?.close();
    await store?.close();
    await pg?.stop();
  });

  it('announce revocations, key rotation and retirement, group edits, grants and domain shares; not a token being used', async () => {
    const tokens = new TokenService({ store, box: new SecretBox(randomBytes(32)), clock: systemClock, issuer: 'https://tunn.localhost' });
    await tokens.init(); // the first key: signing_keys
    await until(() => heard.includes('signing_keys'), 'the first key');
    heard.length = 0;
    const ann = await ensureAccount(store, 'ann@example.com');
    const t = await tokens.issue({ accountId: ann.id, kind: 'pat', email: ann.email });
    await tokens.touch(t.jti); // used: no news
    await tokens.revoke(t.jti, ann.id);
    await until(() => heard.length >= 1, 'the revocation');
    assert.deepEqual(heard, ['tokens'], 'issuing and using a token announce nothing; revoking it does');

    heard.length = 0;
    const old = tokens.signingKid!;
    await tokens.rotateKeys();
    await tokens.retireKey(old);
    await new GroupService({ store, clock: systemClock }).create(ann.id, 'ops', ['bob@example.com']);
    await createDomain(store, { accountId: ann.id, acmeId: ann.acme_id, domain: 'shop.example.test', relayDomain: 'tunn.localhost' });
    await store.db.updateTable('domains').set({ tls_last_checked_at: new Date().toISOString() }).where('domain', '=', 'shop.example.test').execute(); // certificate bookkeeping: no news
    await markDomainVerified(store, 'shop.example.test');
    await setDomainShares(store, 'shop.example.test', ['@example.com']);
    await until(() => heard.length >= 5, 'five announcements');
    await new Promise((r) => setTimeout(r, 200)); // nothing more arrives
    assert.deepEqual(heard, ['signing_keys', 'signing_keys', 'groups', 'domains', 'domains']);
  });
});
