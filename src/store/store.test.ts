import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { DeviceLogin } from '../auth/device.ts';
import { EventLog } from '../auth/events.ts';
import { GroupService } from '../auth/groups.ts';
import { LoginCodes } from '../auth/login-codes.ts';
import { findRevoked, type Principal } from '../auth/revocation.ts';
import { SessionService } from '../auth/sessions.ts';
import { TokenService } from '../auth/tokens.ts';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { applyCertEventPatch, createDomain, deleteDomain, domainByName, domainsForAccount, listDomains, markDomainVerified, setDomainShares, updateDomainShares, updateDomainTls } from '../domains/records.ts';
import { listCertEvents, recordCertEvent } from '../certs/events.ts';
import { KyselyAcmeAccounts } from '../certs/kysely-acme-accounts.ts';
import { KyselyCertStorage } from '../certs/kysely-storage.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { accountByEmail, accountById, claimName, ensureAccount } from './accounts.ts';
import { migrations } from './migrations.ts';
import { openStore, type Dialect, type Store } from './store.ts';

// ONE store test suite, run against both real databases (DESIGN decision 4): SQLite (a WAL
// file, as the relay uses it) and PostgreSQL (a throwaway cluster, test/support/postgres.ts).
// Every test goes through the concerns' own functions, so a dialect difference anywhere in
// the SQL they build shows up here.

const DIALECTS: Dialect[] = ['sqlite', 'postgres'];
const T0 = Date.parse('2026-03-01T12:00:00Z');
const TABLES = ['accounts', 'names', 'tokens', 'signing_keys', 'groups', 'sessions', 'device_codes', 'login_codes', 'security_events', 'domains', 'certificates', 'cert_events', 'acme_accounts'];

async function countRows(store: Store, table: 'accounts' | 'names' | 'tokens' | 'groups'): Promise<number> {
  const r = await store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
  // pg returns count(*) (a bigint) as a string, SQLite as a number.
  return Number(r.n);
}

for (const dialect of DIALECTS) {
  describe(`store on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-store-${dialect}-`));
    let pg: Postgres | undefined;
    let n = 0;
    /** A URL of an empty database of this dialect. */
    const freshUrl = async (): Promise<string> => (dialect === 'postgres' ? pg!.createDatabase() : join(dir, `s${++n}`, 'tunn.db'));
    let store: Store;
    const clock = new ManualClock(T0);
    const box = new SecretBox(randomBytes(32));

    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
      store = await openStore(await freshUrl());
    });
    after(async () => {
      await store?.close();
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('applies the migrations to an empty database, and reopening changes nothing', async () => {
      const url = await freshUrl();
      let s = await openStore(url);
      try {
        assert.equal(s.dialect, dialect);
        const tables = (await s.db.introspection.getTables()).map((t) => t.name);
        for (const t of TABLES) assert.ok(tables.includes(t), `table ${t} exists (got ${tables.join(', ')})`);
        const applied = async () => (await (s.db as any).selectFrom('kysely_migration').select('name').orderBy('name').execute()).map((r: { name: string }) => r.name);
        assert.deepEqual(await applied(), Object.keys(migrations));
        const a = await ensureAccount(s, 'keep@example.com');
        await s.close();
        s = await openStore(url);
        assert.deepEqual(await applied(), Object.keys(migrations));
        assert.equal((await accountByEmail(s, 'keep@example.com'))?.id, a.id);
      } finally {
        await s.close();
      }
      // Two processes starting on one new database at once (relays of a cluster): both come up.
      const url2 = await freshUrl();
      const both = await Promise.all([openStore(url2), openStore(url2)]);
      for (const b of both) await b.close();
    });

    it('accounts: one row per email under concurrent ensureAccount, emails normalised', async () => {
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => ensureAccount(store, i % 2 ? 'Race@Example.COM' : ' race@example.com ')));
      assert.equal(new Set(got.map((a) => a.id)).size, 1);
      const rows = await store.db.selectFrom('accounts').selectAll().where('email', '=', 'race@example.com').execute();
      assert.equal(rows.length, 1);
      assert.equal((await accountByEmail(store, 'RACE@example.com'))?.id, got[0]!.id);
      assert.equal((await accountById(store, got[0]!.id))?.email, 'race@example.com');
      // Text equality is case-sensitive on both databases: normalisation is the code's job.
      assert.equal(await store.db.selectFrom('accounts').select('id').where('email', '=', 'RACE@EXAMPLE.COM').executeTakeFirst(), undefined);
      assert.ok((await countRows(store, 'accounts')) >= 1);
    });

    it('names: the first account owns a name, another gets NAME_TAKEN, also when racing', async () => {
      const alice = await ensureAccount(store, 'alice@example.com');
      const bob = await ensureAccount(store, 'bob@example.com');
      await claimName(store, 'tunn.test', 'app', alice.id, T0);
      await claimName(store, 'tunn.test', 'app', alice.id, T0 + 5000);
      const row = await store.db.selectFrom('names').selectAll().where('domain', '=', 'tunn.test').where('name', '=', 'app').executeTakeFirstOrThrow();
      assert.equal(row.account_id, alice.id);
      assert.equal(row.created_at, '2026-03-01T12:00:00.000Z');
      assert.equal(row.last_used_at, '2026-03-01T12:00:05.000Z');
      await assert.rejects(claimName(store, 'tunn.test', 'app', bob.id), (e) => isTunnError(e, 'NAME_TAKEN'));
      // The same label under another domain is another name.
      await claimName(store, 'other.test', 'app', bob.id);
      // Both accounts race for a new name: exactly one wins, every call of the other fails.
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => claimName(store, 'tunn.test', 'race', i % 2 ? alice.id : bob.id)));
      const owner = (await store.db.selectFrom('names').select('account_id').where('domain', '=', 'tunn.test').where('name', '=', 'race').executeTakeFirstOrThrow()).account_id;
      results.forEach((r, i) => {
        const mine = (i % 2 ? alice.id : bob.id) === owner;
        if (mine) assert.equal(r.status, 'fulfilled');
        else assert.ok(r.status === 'rejected' && isTunnError(r.reason, 'NAME_TAKEN'), `call ${i}: ${r.status}`);
      });
    });

    it('tokens: issue, verify, revoke, rotate, and verify again after a reopen', async () => {
      const url = await freshUrl();
      let s = await openStore(url);
      let tokens = new TokenService({ store: s, box, clock, issuer: 'tunn' });
      await tokens.init();
      const a = await ensureAccount(s, 'tok@example.com');
      const b = await ensureAccount(s, 'other@example.com');
      const agent = await tokens.issue({ accountId: a.id, kind: 'agent', label: 'laptop — Jürgen’s 🚀' });
      const session = await tokens.issue({ accountId: a.id, kind: 'session', ttlSeconds: 60 });
      assert.equal((await tokens.verify(agent.token, ['agent'])).sub, a.id);
      const row = await s.db.selectFrom('tokens').selectAll().where('jti', '=', agent.jti).executeTakeFirstOrThrow();
      assert.deepEqual(
        { kind: row.kind, label: row.label, expires_at: row.expires_at, revoked_at: row.revoked_at, last_used_at: row.last_used_at },
        { kind: 'agent', label: 'laptop — Jürgen’s 🚀', expires_at: null, revoked_at: null, last_used_at: null },
      );
      assert.equal((await s.db.selectFrom('tokens').select('expires_at').where('jti', '=', session.jti).executeTakeFirstOrThrow()).expires_at, '2026-03-01T12:01:00.000Z');
      await tokens.touch(agent.jti);
      assert.equal((await s.db.selectFrom('tokens').select('last_used_at').where('jti', '=', agent.jti).executeTakeFirstOrThrow()).last_used_at, '2026-03-01T12:00:00.000Z');
      // revoke() reads numUpdatedRows (a bigint from both drivers).
      assert.equal(await tokens.revoke(agent.jti, b.id), false, 'not the owner');
      assert.equal(await tokens.revoke(agent.jti, a.id), true);
      assert.equal(await tokens.revoke(agent.jti, a.id), false, 'already revoked');
      await assert.rejects(tokens.verify(agent.token, ['agent']), (e) => isTunnError(e, 'AUTH_TOKEN_REVOKED'));
      const oldKid = JSON.parse(Buffer.from(session.token.split('.')[0]!, 'base64url').toString()).kid as string;
      await tokens.rotateKeys();
      const pat = await tokens.issue({ accountId: a.id, kind: 'pat' });
      assert.equal(tokens.jwks().keys.length, 2);
      await s.close();
      // A restarted relay loads the keys from the store: old and new tokens still verify.
      s = await openStore(url);
      try {
        tokens = new TokenService({ store: s, box, clock, issuer: 'tunn' });
        await tokens.init();
        assert.equal(tokens.jwks().keys.length, 2);
        await tokens.verify(session.token, ['session']);
        await tokens.verify(pat.token, ['pat']);
        await assert.rejects(tokens.verify(agent.token, ['agent']), (e) => isTunnError(e, 'AUTH_TOKEN_REVOKED'));
        await tokens.retireKey(oldKid);
        await assert.rejects(tokens.verify(session.token, ['session']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
        await tokens.verify(pat.token, ['pat']);
      } finally {
        await s.close();
      }
    });

    it('groups: create, conflict, list order, members (JSON), concurrent adds, delete', async () => {
      const groups = new GroupService({ store, clock, cacheTtlMs: 0 });
      const a = await ensureAccount(store, 'owner@example.com');
      const g = await groups.create(a.id, 'Eng', ['B@example.com', 'a@example.com', 'b@example.com']);
      assert.deepEqual(g.emails, ['a@example.com', 'b@example.com']);
      await assert.rejects(groups.create(a.id, 'eng', []), (e) => isTunnError(e, 'CONFLICT'));
      await groups.create(a.id, 'design', []);
      await groups.create(a.id, 'ops2', []);
      assert.deepEqual((await groups.list(a.id)).map((x) => x.name), ['design', 'eng', 'ops2']);
      assert.deepEqual((await groups.show(a.id, 'ENG')).emails, ['a@example.com', 'b@example.com']);
      // Concurrent adds to one group: each is a read-modify-write of the JSON list; none may be lost.
      await Promise.all(Array.from({ length: 8 }, (_, i) => groups.add(a.id, 'eng', [`m${i}@example.com`])));
      const members = await groups.members(a.id, 'eng');
      assert.equal(members?.size, 10, `members: ${[...(members ?? [])].join(', ')}`);
      await groups.remove(a.id, 'eng', ['a@example.com']);
      await assert.rejects(groups.remove(a.id, 'eng', ['a@example.com']), (e) => isTunnError(e, 'NOT_FOUND'));
      assert.equal((await groups.members(a.id, 'eng'))?.has('a@example.com'), false);
      await groups.delete(a.id, 'design');
      await assert.rejects(groups.delete(a.id, 'design'), (e) => isTunnError(e, 'UNKNOWN_GROUP'));
      assert.equal(await groups.members(a.id, 'design'), undefined);
    });

    it('sessions: create, host-bound lookup, family revocation, revoke an account', async () => {
      const sessions = new SessionService({ store, clock, ttlSeconds: 3600 });
      const a = await ensureAccount(store, 'sess@example.com');
      const relay = await sessions.create({ accountId: a.id, email: a.email, host: 'Tunn.Localhost:8080', ip: '127.0.0.1', userAgent: 'curl/8' });
      const child = await sessions.create({ accountId: a.id, email: a.email, host: 'app.tunn.localhost:8080', parent: relay.session });
      const other = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost:8080' });
      assert.equal((await sessions.lookup(relay.cookieValue, 'tunn.localhost:8080'))?.email, a.email);
      assert.equal(await sessions.lookup(relay.cookieValue, 'app.tunn.localhost:8080'), undefined, 'bound to its host');
      assert.equal((await sessions.lookup(child.cookieValue, 'app.tunn.localhost:8080'))?.parentId, relay.session.id);
      await sessions.revokeFamily(child.session);
      assert.equal(await sessions.lookup(relay.cookieValue, 'tunn.localhost:8080'), undefined);
      assert.equal(await sessions.lookup(child.cookieValue, 'app.tunn.localhost:8080'), undefined);
      assert.ok(await sessions.lookup(other.cookieValue, 'tunn.localhost:8080'));
      const n = await sessions.revokeAccount(a.id);
      assert.equal(n, 1);
      assert.equal(typeof n, 'number');
      assert.equal(await sessions.lookup(other.cookieValue, 'tunn.localhost:8080'), undefined);
    });

    it('revocation: live credentials checked in batches — revoked, expired and unknown ones reported', async () => {
      const sessions = new SessionService({ store, clock, ttlSeconds: 3600 });
      const tokens = new TokenService({ store, box, clock, issuer: 'tunn' });
      await tokens.init();
      const a = await ensureAccount(store, 'live@example.com');
      const s1 = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost' });
      const s2 = await sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost' });
      const t1 = await tokens.issue({ accountId: a.id, kind: 'pat', email: a.email });
      const t2 = await tokens.issue({ accountId: a.id, kind: 'agent', email: a.email, ttlSeconds: 60 });
      const ps: Principal[] = [
        { via: 'session', sessionId: s1.session.id, accountId: a.id, email: a.email },
        { via: 'session', sessionId: s2.session.id, accountId: a.id, email: a.email },
        { via: 'token', jti: t1.jti, accountId: a.id, email: a.email },
        { via: 'token', jti: t2.jti, accountId: a.id, email: a.email },
        ...Array.from({ length: 600 }, (_, i): Principal => ({ via: 'token', jti: `unknown-${i}`, accountId: a.id, email: a.email })),
      ];
      assert.equal((await findRevoked(store, clock, ps)).size, 600, 'only the unknown ones');
      await sessions.revokeFamily(s1.session);
      await tokens.revoke(t1.jti);
      const r = await findRevoked(store, clock, ps.slice(0, 4));
      assert.deepEqual([...r].sort(), [`s:${s1.session.id}`, `t:${t1.jti}`].sort());
      clock.advance(61_000);
      assert.ok((await findRevoked(store, clock, ps.slice(3, 4))).has(`t:${t2.jti}`), 'expired');
    });

    it('device codes and one-time login codes: good exactly once, also under concurrent use', async () => {
      const tokens = new TokenService({ store, box, clock, issuer: 'tunn' });
      await tokens.init();
      const device = new DeviceLogin({ store, clock, tokens, relayUrl: 'https://tunn.test' });
      const a = await ensureAccount(store, 'dev@example.com');
      const start = await device.start({ clientName: 'laptop', ip: '127.0.0.1' });
      assert.deepEqual(await device.poll(start.device_code), { ok: false, error: 'authorization_pending' });
      const row = await store.db.selectFrom('device_codes').select('interval_s').where('user_code', '=', start.user_code).executeTakeFirstOrThrow();
      assert.equal(row.interval_s, 5);
      assert.equal(typeof row.interval_s, 'number');
      assert.equal((await device.pending(start.user_code.toLowerCase()))?.clientName, 'laptop');
      assert.equal(await device.decide(start.user_code, 'approve', { accountId: a.id, email: a.email }), true);
      assert.equal(await device.decide(start.user_code, 'approve', { accountId: a.id, email: a.email }), false);
      clock.advance(6000);
      const polls = await Promise.all(Array.from({ length: 4 }, () => device.poll(start.device_code)));
      assert.equal(polls.filter((p) => p.ok).length, 1);
      const ok = polls.find((p) => p.ok)!;
      assert.ok(ok.ok);
      assert.equal((await tokens.verify(ok.token, ['pat'])).sub, a.id);

      const codes = new LoginCodes({ store, clock });
      const code = await codes.issue({ purpose: 'handoff', host: 'App.tunn.test', ttlSeconds: 30, accountId: a.id, email: a.email, data: { next: '/ä?x=1', n: 2, nested: { ok: true } } });
      assert.deepEqual((await codes.peek(code, 'handoff'))?.data, { next: '/ä?x=1', n: 2, nested: { ok: true } });
      assert.equal(await codes.consume(code, 'handoff', 'other.tunn.test'), undefined);
      const used = await Promise.all(Array.from({ length: 6 }, () => codes.consume(code, 'handoff', 'app.tunn.test')));
      assert.equal(used.filter(Boolean).length, 1);
      const expiring = await codes.issue({ purpose: 'magic', host: 'tunn.test', ttlSeconds: 30 });
      clock.advance(31_000);
      assert.equal(await codes.consume(expiring, 'magic'), undefined);
      clock.set(T0);
    });

    it('timestamps sort as time: security events and cert events, newest first, `since` filters', async () => {
      const log = new EventLog({ store, clock, windowMs: 60_000 });
      const a = await ensureAccount(store, 'events@example.com');
      const times = ['2026-01-01T00:00:00.000Z', '2025-12-31T23:59:59.999Z', '2026-01-01T00:00:00.001Z', '2025-02-01T00:00:00.000Z', '2026-10-01T00:00:00.000Z'];
      for (const [i, t] of times.entries()) {
        clock.set(Date.parse(t));
        await log.record({ kind: 'visitor_denied', email: `v${i}@example.com`, accountId: a.id, tunnel: 'app' });
      }
      // A burst: one row, counted.
      clock.set(Date.parse('2026-10-01T00:00:10.000Z'));
      for (let i = 0; i < 5; i++) await log.record({ kind: 'rate_limited', ip: '203.0.113.7', accountId: a.id });
      const all = await log.list({ accountId: a.id });
      assert.deepEqual(
        all.map((e) => e.at),
        ['2026-10-01T00:00:10.000Z', ...[...times].sort().reverse()],
      );
      const burst = all.find((e) => e.kind === 'rate_limited')!;
      assert.equal(burst.count, 5);
      assert.equal(typeof burst.count, 'number');
      assert.deepEqual(
        (await log.list({ accountId: a.id, since: '2026-01-01T00:00:00.000Z', kind: 'visitor_denied' })).map((e) => e.email),
        ['v4@example.com', 'v2@example.com', 'v0@example.com'],
      );
      // `until` and paging after an event (time, then id, both descending): the pages add up to the list.
      assert.deepEqual(
        (await log.list({ accountId: a.id, until: '2026-01-01T00:00:00.000Z', kind: 'visitor_denied' })).map((e) => e.email),
        ['v1@example.com', 'v3@example.com'],
      );
      const paged: string[] = [];
      let after: { at: string; id: string } | undefined;
      for (;;) {
        const page = await log.list({ accountId: a.id, limit: 2, after });
        paged.push(...page.map((e) => e.id));
        if (page.length < 2) break;
        after = { at: page.at(-1)!.at, id: page.at(-1)!.id };
      }
      assert.deepEqual(paged, all.map((e) => e.id));
      for (const [i, t] of times.entries()) await recordCertEvent(store, { domain: 'sort.example.com', kind: 'issued', message: `e${i}`, detail: { i, names: ['*.sort.example.com'], ok: true, none: null } }, Date.parse(t));
      const evs = await listCertEvents(store, 'sort.example.com');
      assert.deepEqual(evs.map((e) => e.at), [...times].sort().reverse());
      assert.deepEqual(evs[0]!.detail, { i: 4, names: ['*.sort.example.com'], ok: true, none: null });
      clock.set(T0);
    });

    it('domains, certificates and ACME accounts round-trip through their functions', async () => {
      const a = await ensureAccount(store, 'dom@example.com');
      const b = await ensureAccount(store, 'dom2@example.com');
      const d = await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'Tunn.MyCompany.com.', relayDomain: 'tunn.test' }, T0);
      assert.equal(d.domain, 'tunn.mycompany.com');
      assert.equal(d.tlsStatus, 'pending_issue');
      assert.deepEqual(d.shares, []);
      assert.equal((await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'tunn.mycompany.com', relayDomain: 'tunn.test' })).id, d.id);
      await assert.rejects(createDomain(store, { accountId: b.id, acmeId: b.acme_id, domain: 'tunn.mycompany.com', relayDomain: 'tunn.test' }), (e) => isTunnError(e, 'CONFLICT'));
      // Two accounts race for a new domain: one registers it, the other gets CONFLICT.
      const race = await Promise.allSettled([a, b].map((x) => createDomain(store, { accountId: x.id, acmeId: x.acme_id, domain: 'race.example.org', relayDomain: 'tunn.test' })));
      assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok(race.some((r) => r.status === 'rejected' && isTunnError(r.reason, 'CONFLICT')));
      await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'a-b.example.net', relayDomain: 'tunn.test', tlsMode: 'passthrough', failurePolicy: 'manual' });
      await setDomainShares(store, 'tunn.mycompany.com', ['@mycompany.com', 'ext@partner.com', '@mycompany.com']);
      // Concurrent shares do not lose each other's entries (read-modify-write in a transaction).
      await Promise.all(['c1@x.com', 'c2@x.com', 'c3@x.com', 'c4@x.com'].map((e) => updateDomainShares(store, 'tunn.mycompany.com', (cur) => [...cur, e])));
      assert.deepEqual((await domainByName(store, 'tunn.mycompany.com'))!.shares.slice(2).sort(), ['c1@x.com', 'c2@x.com', 'c3@x.com', 'c4@x.com']);
      await updateDomainShares(store, 'tunn.mycompany.com', (cur) => cur.filter((e) => !e.startsWith('c')));
      await markDomainVerified(store, 'tunn.mycompany.com', T0 + 1000);
      await markDomainVerified(store, 'tunn.mycompany.com', T0 + 9000);
      await updateDomainTls(store, 'tunn.mycompany.com', { tls_status: 'issued', tls_not_after: '2026-06-01T00:00:00.000Z', cert_failure_count: 2, cert_next_retry_at: null, tls_last_error: 'ünïcode ✓' });
      const got = (await domainByName(store, 'TUNN.mycompany.com'))!;
      assert.deepEqual(
        { shares: got.shares, verifiedAt: got.verifiedAt, tlsStatus: got.tlsStatus, tlsNotAfter: got.tlsNotAfter, count: got.certFailureCount, err: got.tlsLastError },
        { shares: ['@mycompany.com', 'ext@partner.com'], verifiedAt: '2026-03-01T12:00:01.000Z', tlsStatus: 'issued', tlsNotAfter: '2026-06-01T00:00:00.000Z', count: 2, err: 'ünïcode ✓' },
      );
      assert.equal(typeof got.certFailureCount, 'number');
      const pass = (await domainByName(store, 'a-b.example.net'))!;
      assert.deepEqual([pass.tlsMode, pass.tlsStatus, pass.certFailurePolicy], ['passthrough', 'passthrough_unverified', 'manual']);
      const mine = (await domainsForAccount(store, a.id)).map((x) => x.domain);
      assert.ok(mine.includes('tunn.mycompany.com') && mine.includes('a-b.example.net'));
      assert.deepEqual(mine, [...mine].sort());
      await deleteDomain(store, 'a-b.example.net');
      assert.equal(await domainByName(store, 'a-b.example.net'), undefined);
      assert.ok((await listDomains(store)).some((x) => x.domain === 'tunn.mycompany.com'));

      const ca = await createCa('tunn store test CA');
      const leaf1 = await issueLeaf(ca, ['*.tunn.mycompany.com', 'tunn.mycompany.com']);
      const leaf2 = await issueLeaf(ca, ['*.tunn.mycompany.com', 'tunn.mycompany.com']);
      const certs = new KyselyCertStorage(store, box);
      const issued = (leaf: typeof leaf1, notAfter: number) => ({ chainPem: leaf.certPem, keyPem: leaf.keyPem, issuer: 'self-signed', names: ['*.tunn.mycompany.com', 'tunn.mycompany.com'], notBefore: T0, notAfter });
      const first = await certs.save('*.tunn.mycompany.com', issued(leaf1, T0 + 90 * 86400_000), T0);
      // save() replaces the name's certificate (an upsert): one row, the new one.
      const second = await certs.save('*.tunn.mycompany.com', issued(leaf2, T0 + 91 * 86400_000), T0 + 1000);
      assert.notEqual(first.id, second.id);
      const loaded = (await certs.load('*.tunn.mycompany.com'))!;
      assert.deepEqual(
        { id: loaded.id, names: loaded.names, keyPem: loaded.keyPem, chainPem: loaded.chainPem, notBefore: loaded.notBefore, notAfter: loaded.notAfter, win: loaded.renewalWindow },
        { id: second.id, names: ['*.tunn.mycompany.com', 'tunn.mycompany.com'], keyPem: leaf2.keyPem, chainPem: leaf2.certPem, notBefore: T0, notAfter: T0 + 91 * 86400_000, win: undefined },
      );
      await certs.save('relay.tunn.test', { ...issued(leaf1, T0 + 1), names: ['relay.tunn.test'] }, T0);
      await certs.setRenewalWindow(second.name, second.id, { start: T0 + 60 * 86400_000, end: T0 + 61 * 86400_000 }, T0 + 5);
      const list = await certs.list();
      assert.deepEqual(list.map((c) => c.name), ['*.tunn.mycompany.com', 'relay.tunn.test']);
      assert.deepEqual(list[0]!.renewalWindow, { start: T0 + 60 * 86400_000, end: T0 + 61 * 86400_000 });
      assert.equal(list[0]!.ariCheckedAt, T0 + 5);
      await certs.delete('relay.tunn.test');
      assert.equal(await certs.load('relay.tunn.test'), undefined);

      // One ACME account key per directory, also when two calls race for it.
      const accounts = new KyselyAcmeAccounts(store, box, () => T0);
      const keys = await Promise.all([1, 2, 3].map(() => accounts.accountKey('https://acme.test/dir', 'ops@example.com')));
      assert.equal(new Set(keys).size, 1);
      assert.match(keys[0]!, /BEGIN PRIVATE KEY/);
      assert.equal(await new KyselyAcmeAccounts(store, box).accountKey('https://acme.test/dir', undefined), keys[0]);
    });

    // Security property: a captured signed cert event cannot be replayed after a restart or on
    // another relay, and an older event arriving late never overwrites a newer state. The last
    // applied signing time per domain lives in the store (it used to be a per-process set).
    it('cert events: applied in signing order, once per second per domain, across a reopen and two stores at once', async () => {
      const url = await freshUrl();
      let s = await openStore(url);
      const other = await openStore(url); // a second relay on the same database
      try {
        const a = await ensureAccount(s, 'ev@example.com');
        for (const d of ['ev.example.test', 'ev2.example.test']) await createDomain(s, { accountId: a.id, acmeId: a.acme_id, domain: d, relayDomain: 'tunn.test' });
        const t = 4_102_444_800; // 2100-01-01: past 2^31, so the column must be 64-bit
        assert.equal(await applyCertEventPatch(s, 'ev.example.test', { tls_status: 'issued' }, t), true);
        assert.equal(await applyCertEventPatch(s, 'ev.example.test', { tls_status: 'tls_error' }, t), false, 'the same second again (a replay)');
        assert.equal(await applyCertEventPatch(s, 'ev.example.test', { tls_status: 'tls_error' }, t - 60), false, 'an older event arriving late');
        assert.equal((await domainByName(s, 'ev.example.test'))?.tlsStatus, 'issued');
        assert.equal(await applyCertEventPatch(s, 'ev2.example.test', { tls_status: 'expiring' }, t - 60), true, 'per domain');
        assert.equal(await applyCertEventPatch(s, 'nope.example.test', { tls_status: 'issued' }, t + 1), false, 'no such domain');
        await s.close();
        s = await openStore(url); // a restart remembers
        assert.equal(await applyCertEventPatch(s, 'ev.example.test', { tls_status: 'tls_error' }, t), false);
        assert.equal(await applyCertEventPatch(s, 'ev.example.test', { tls_status: 'expiring' }, t + 1), true);
        const both = await Promise.all([s, other].map((x) => applyCertEventPatch(x, 'ev.example.test', { tls_status: 'tls_error' }, t + 2)));
        assert.deepEqual(both.sort(), [false, true], 'one captured request sent to two relays is applied once');
      } finally {
        await s.close();
        await other.close();
      }
    });

    it('deleting an account cascades to its names, tokens, groups and domains', async () => {
      const a = await ensureAccount(store, 'gone@example.com');
      const tokens = new TokenService({ store, box, clock, issuer: 'tunn' });
      await tokens.init();
      await claimName(store, 'tunn.test', 'gone', a.id);
      await tokens.issue({ accountId: a.id, kind: 'agent' });
      await new GroupService({ store, clock }).create(a.id, 'g', []);
      await createDomain(store, { accountId: a.id, acmeId: a.acme_id, domain: 'gone.example.com', relayDomain: 'tunn.test' });
      await store.db.deleteFrom('accounts').where('id', '=', a.id).execute();
      for (const t of ['names', 'tokens', 'groups', 'domains'] as const) {
        assert.equal((await store.db.selectFrom(t).select('account_id').where('account_id', '=', a.id).execute()).length, 0, t);
      }
    });

    if (dialect === 'postgres') {
      it('timestamps compare and sort as time under a non-C (ICU en-US) database collation too', async () => {
        const s = await openStore(await pg!.createDatabase({ icuLocale: 'en-US' }));
        try {
          const log = new EventLog({ store: s, clock });
          const times = ['2026-01-01T00:00:00.000Z', '2025-12-31T23:59:59.999Z', '2026-01-01T00:00:00.001Z', '2025-02-01T00:00:00.000Z'];
          for (const [i, t] of times.entries()) {
            clock.set(Date.parse(t));
            await log.record({ kind: 'login_failed', email: `u${i}@example.com` });
          }
          assert.deepEqual((await log.list()).map((e) => e.at), [...times].sort().reverse());
          assert.deepEqual((await log.list({ since: '2026-01-01T00:00:00.000Z' })).map((e) => e.email), ['u2@example.com', 'u0@example.com']);
          const codes = new LoginCodes({ store: s, clock });
          clock.set(Date.parse('2025-12-31T23:59:59.000Z'));
          const code = await codes.issue({ purpose: 'magic', host: 'tunn.test', ttlSeconds: 1 });
          clock.set(Date.parse('2025-12-31T23:59:59.999Z'));
          assert.ok(await codes.peek(code, 'magic'));
          clock.set(Date.parse('2026-01-01T00:00:00.000Z'));
          assert.equal(await codes.peek(code, 'magic'), undefined);
        } finally {
          clock.set(T0);
          await s.close();
        }
      });
    }
  });
}
