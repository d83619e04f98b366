import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { EventLog } from '../auth/events.ts';
import { GrantService } from '../auth/grants.ts';
import { IdpGroups } from '../auth/idp-groups.ts';
import { SessionService } from '../auth/sessions.ts';
import { ManualClock } from '../lib/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from './accounts.ts';
import { openStore, type Dialect, type Store } from './store.ts';

// Grants and IdP session groups on both real databases (DESIGN decision 4): the upserts
// (ON CONFLICT … DO NOTHING / DO UPDATE), the time comparisons on ISO strings and the join
// behind `tunn whoami` must behave the same on SQLite and PostgreSQL.

const DIALECTS: Dialect[] = ['sqlite', 'postgres'];

for (const dialect of DIALECTS) {
  describe(`grants and IdP groups on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-idp-store-${dialect}-`));
    let pg: Postgres | undefined;
    let store: Store;
    const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
      store = await openStore(dialect === 'postgres' ? await pg!.createDatabase() : join(dir, 'tunn.db'));
    });
    after(async () => {
      await store?.close();
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('grants: --for rows are inserted once per registration, added grants are replaced, both end on the clock', async () => {
      const grants = new GrantService({ store, clock, cacheMs: 0 });
      const a = await ensureAccount(store, 'owner@example.com');
      const end = await grants.registerFor(a.id, 'demo.tunn.test', 'ref-aaaaaaaa', ['bob@client.com', '@client.com'], 600);
      clock.advance(60_000);
      assert.equal(await grants.registerFor(a.id, 'demo.tunn.test', 'ref-aaaaaaaa', ['bob@client.com', '@client.com'], 600), end);
      await grants.add(a.id, 'demo.tunn.test', 'carol@client.com', 60);
      const again = await grants.add(a.id, 'demo.tunn.test', 'carol@client.com', 120);
      assert.equal(Date.parse(again.expiresAt), clock.now() + 120_000);
      assert.equal((await grants.list(a.id, 'demo.tunn.test')).length, 3);
      assert.equal((await grants.live(a.id, 'demo.tunn.test', 'ref-aaaaaaaa')).length, 3);
      assert.equal((await grants.live(a.id, 'demo.tunn.test', 'ref-other')).length, 1);
      clock.advance(121_000);
      assert.deepEqual((await grants.live(a.id, 'demo.tunn.test', 'ref-aaaaaaaa')).map((e) => e.kind).sort(), ['domain', 'email']);
      clock.advance(600_000);
      assert.deepEqual(await grants.live(a.id, 'demo.tunn.test', 'ref-aaaaaaaa'), []);
      assert.deepEqual(await grants.list(a.id), []);
    });

    it('IdP session groups: upsert on sign-in, the latest live sign-in for whoami, sealed tokens, deleted on sign-out', async () => {
      const box = new SecretBox(randomBytes(32));
      const events = new EventLog({ store, clock });
      const idp = new IdpGroups({ store, clock, events, box, oidcSources: new Map([['oidc', 'Corp SSO']]), refreshMs: 60_000 });
      const sessions = new SessionService({ store, clock });
      const a = await ensureAccount(store, 'ivy@corp.example');
      const old = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.test' });
      await idp.recordLogin(old.session.id, 'oidc', ['sales'], { refreshToken: 'r1' });
      clock.advance(1000);
      const s = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.test' });
      await idp.recordLogin(s.session.id, 'oidc', ['ops'], { refreshToken: 'r2' });
      await idp.recordLogin(s.session.id, 'oidc', ['engineering'], { refreshToken: 'r3' });
      const row = await store.db.selectFrom('idp_session_groups').selectAll().where('session_id', '=', s.session.id).executeTakeFirstOrThrow();
      assert.equal(row.groups, '["engineering"]');
      assert.doesNotMatch(row.secrets_sealed ?? '', /r3/, 'the refresh token is not stored in the clear');
      assert.deepEqual(JSON.parse(box.open(row.secrets_sealed!, `idp:${s.session.id}`).toString()), { refreshToken: 'r3' });
      assert.deepEqual((await idp.knownFor(a.id, a.email)).groups, ['engineering'], 'the latest sign-in');
      await sessions.revokeFamily(s.session);
      assert.deepEqual((await idp.knownFor(a.id, a.email)).groups, ['sales'], 'the newest still-live sign-in');
    });
  });
}
