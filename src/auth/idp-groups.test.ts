import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import type { GateDecision, TunnelPolicy } from './gate.ts';
import { groupsFromClaims, type GroupDirectory } from './idp-groups.ts';
import { parseAllowEntry } from './policy.ts';
import { account, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';

// IdP groups through the real gate, store and token service; the directory is a map the test
// edits (the LDAP implementation behind the same interface is tested against slapd in
// ldap.test.ts). Time moves with the fixture's manual clock.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const HOST = 'app.tunn.localhost:8080';
const HTML = 'text/html,application/xhtml+xml';

/** A directory the test controls: email → groups; `down` makes every lookup fail like an unreachable server. */
class TestDirectory implements GroupDirectory {
  readonly label = 'the LDAP directory ldap.corp.internal:636';
  members = new Map<string, string[]>();
  down = false;
  /** Emails that match two entries (the LDAP source then throws a user-specific error naming its base DN). */
  twins = new Set<string>();
  calls = 0;
  async groupsOf(email: string): Promise<string[]> {
    this.calls++;
    if (this.down) throw new Error('connect ECONNREFUSED 10.0.0.7:636');
    if (this.twins.has(email)) throw Object.assign(new Error(`more than one entry under ou=people,dc=corp,dc=internal has mail=${email}`), { userSpecific: true });
    return this.members.get(email) ?? [];
  }
}

/** What a visitor must never see of the relay's directory: its host, port, address, base DN, error. */
const DIRECTORY_DETAILS = /ldap\.corp\.internal|636|10\.0\.0\.7|ECONNREFUSED|dc=corp|ou=people/;

/** A relay session for `email` handed off to HOST, as the login pages and hand-off create them; returns the host cookie and the root session id. */
async function signIn(id: Id, email: string, groups?: string[]): Promise<{ cookie: string; root: string }> {
  const a = await account(id, email);
  const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
  if (groups) await id.idpGroups.recordLogin(session.id, 'oidc', groups);
  const url = new URL(await id.handoff.start(session, new URL(`http://${HOST}/`)));
  const d = await id.gate.check(gateRequest({ host: HOST, path: url.pathname + url.search }), { tunnelId: 'x', ownerAccountId: a.id, ownerEmail: a.email, allow: [], public: false });
  const set = d.kind === 'respond' ? d.headers.find(([n]) => n === 'set-cookie')?.[1] : undefined;
  return { cookie: set!.split(';')[0]!, root: session.id };
}

function status(d: GateDecision): number {
  return d.kind === 'allow' ? 200 : d.status;
}

function body(d: GateDecision): string {
  return d.kind === 'respond' ? String(d.body) : '';
}

describe('groups from claims', () => {
  it('reads a claim of strings, a dotted path, and objects with a name; normalises case and drops junk', () => {
    assert.deepEqual(groupsFromClaims({ groups: ['Engineering', 'ops', 'ops'] }, 'groups'), ['engineering', 'ops']);
    assert.deepEqual(groupsFromClaims({ realm_access: { roles: ['admin'] } }, 'realm_access.roles'), ['admin']);
    assert.deepEqual(groupsFromClaims({ groups: [{ name: 'SRE', id: 1 }, { displayName: 'Design' }, 42, null, 'bad,name'] }, 'groups'), ['design', 'sre']);
    assert.deepEqual(groupsFromClaims({ 'https://corp/groups': ['x'] }, 'https://corp/groups'), ['x'], 'a claim whose name has dots is read as is');
    assert.equal(groupsFromClaims({ email: 'a@b.c' }, 'groups'), undefined);
    assert.equal(groupsFromClaims({ realm_access: 'x' }, 'realm_access.roles'), undefined);
    assert.deepEqual(groupsFromClaims({ groups: [] }, 'groups'), []);
  });

  it('parses -a idp:<name>, refusing an empty name or a comma with a message that shows the form', () => {
    assert.deepEqual(parseAllowEntry('idp:Engineering'), { kind: 'idp', name: 'engineering' });
    assert.deepEqual(parseAllowEntry('IDP:Domain Admins'), { kind: 'idp', name: 'domain admins' });
    for (const bad of ['idp:', 'idp:a,b']) assert.throws(() => parseAllowEntry(bad), (e) => isTunnError(e, 'INVALID_INPUT') && /idp:engineering/.test(e.message), bad);
  });
});

describe('IdP groups from an OIDC sign-in', () => {
  let id: Id;
  let t: TunnelPolicy;
  before(async () => {
    id = await identityFixture({ providers: [{ type: 'oidc', issuer: 'http://127.0.0.1:1', clientId: 'c', clientSecret: 's', groupsClaim: 'groups', name: 'Corp SSO' }], idp: { refreshMs: 60_000 } });
    const owner = await account(id, 'owner@example.com');
    t = { tunnelId: 'app', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['idp:engineering'], public: false };
  });
  after(() => id.close());

  it('lets a member in with the groups in the assertion; refuses a non-member and a sign-in that brought no groups', async () => {
    const alice = await signIn(id, 'alice@corp.example', ['engineering', 'staff']);
    const d = await id.gate.check(gateRequest({ accept: HTML, cookie: alice.cookie }), t);
    assert.equal(status(d), 200);
    const jwt = d.kind === 'allow' ? d.setHeaders.find(([n]) => n === 'tunn-jwt-assertion')![1] : '';
    const { payload } = await jwtVerify(jwt, createLocalJWKSet(id.tokens.jwks()), { issuer: RELAY_URL, currentDate: new Date(id.manualClock.now()) });
    assert.deepEqual(payload.groups, ['engineering', 'staff'], 'the service behind the tunnel sees the groups as a top-level claim');

    const bob = await signIn(id, 'bob@corp.example', ['sales']);
    const denied = await id.gate.check(gateRequest({ accept: HTML, cookie: bob.cookie }), t);
    assert.equal(status(denied), 403);
    assert.match(body(denied), /bob@corp\.example/);

    // Guards: a sign-in through another method (magic link, GitHub) never carries IdP groups.
    const carol = await signIn(id, 'carol@corp.example');
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: carol.cookie }), t)), 403);
  });

  it('lapses at the refresh bound: the member then gets a 403 that says to sign in again, not access on stale groups', async () => {
    // Guards: membership older than --idp-refresh is not trusted (a user removed at the IdP loses access within the bound).
    const dave = await signIn(id, 'dave@corp.example', ['engineering']);
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: dave.cookie }), t)), 200);
    id.manualClock.advance(61_000);
    const d = await id.gate.check(gateRequest({ accept: HTML, cookie: dave.cookie }), t);
    assert.equal(status(d), 403);
    assert.match(body(d), /could not confirm/);
    assert.match(body(d), /sign in again with Corp SSO/);
    const api = await id.gate.check(gateRequest({ accept: 'application/json', cookie: dave.cookie }), t);
    assert.equal(status(api), 403);
    assert.match(body(api), /sign out and sign in again/);
    // A new sign-in confirms them again.
    await id.idpGroups.recordLogin(dave.root, 'oidc', ['engineering']);
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: dave.cookie }), t)), 200);
  });
});

describe('IdP groups from a directory', () => {
  let id: Id;
  let t: TunnelPolicy;
  const dir = new TestDirectory();
  const errors: unknown[] = [];
  const logged: { requestId?: string; email: string; details: string[] }[] = [];
  before(async () => {
    id = await identityFixture({ idp: { refreshMs: 30_000, directory: dir, onDirectoryError: (e) => errors.push(e), onUnconfirmed: (e) => logged.push(e) } });
    const owner = await account(id, 'owner@example.com');
    t = { tunnelId: 'app', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['idp:engineering', 'friend@example.com'], public: false };
  });
  after(() => id.close());

  it('asks the directory by email for any login method, at most once per refresh bound', async () => {
    dir.members.set('erin@corp.example', ['Engineering']);
    const erin = await signIn(id, 'erin@corp.example');
    const calls = dir.calls;
    for (let i = 0; i < 3; i++) assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: erin.cookie }), t)), 200);
    assert.equal(dir.calls, calls + 1, 'one lookup serves the bound');
  });

  it('a user removed from the group loses access within the bound, and a security event names the user and the group', async () => {
    // Guards: removal at the IdP takes effect within --idp-refresh, and is recorded.
    dir.members.set('finn@corp.example', ['engineering']);
    const finn = await signIn(id, 'finn@corp.example');
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: finn.cookie }), t)), 200);
    dir.members.set('finn@corp.example', []);
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: finn.cookie }), t)), 200, 'within the bound the last answer holds');
    id.manualClock.advance(30_001);
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: finn.cookie }), t)), 403);
    await id.events.flush();
    const evs = await id.events.list({ kind: 'idp_group_removed' });
    assert.ok(evs.some((e) => e.email === 'finn@corp.example' && e.detail.includes('"engineering"')), JSON.stringify(evs));
  });

  it('fails closed with a clear page when the directory is down, lets other entries through, and recovers when it returns', async () => {
    // Guards: an access decision that needs the directory never fails open.
    dir.members.set('gus@corp.example', ['engineering']);
    const gus = await signIn(id, 'gus@corp.example');
    const friend = await signIn(id, 'friend@example.com');
    id.manualClock.advance(30_001);
    dir.down = true;
    const d = await id.gate.check(gateRequest({ accept: HTML, cookie: gus.cookie }), t);
    assert.equal(status(d), 403);
    assert.match(body(d), /cannot reach your organisation.{1,6}s directory to confirm your groups right now; try again in a minute/);
    assert.match(body(d), /does not let anyone in while it cannot check/);
    assert.ok(errors.length > 0, 'the failure is reported (logged and counted by the relay)');
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: friend.cookie }), t)), 200, 'an email entry needs no directory');
    dir.down = false;
    // A failed lookup is not retried for 5 s, so a dead directory does not hold every request for its timeout.
    const calls = dir.calls;
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: gus.cookie }), t)), 403);
    assert.equal(dir.calls, calls, 'answered from the recent failure');
    const other = await signIn(id, 'hank@corp.example');
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: other.cookie }), t)), 403);
    assert.equal(dir.calls, calls, 'the directory is down for everyone: no new attempt for another email either');
    id.manualClock.advance(5000);
    assert.equal(status(await id.gate.check(gateRequest({ accept: HTML, cookie: gus.cookie }), t)), 200);
  });

  // Property guarded: a refused visitor learns nothing of the relay's directory (host, port,
  // base DN, error): before the fix the page and the JSON answer named them. The cause goes to
  // the relay's log under the request id, and to the tunnel owner's security event.
  it('tells a refused visitor what to do, and only the relay log and the security event the cause', async () => {
    dir.members.set('ida@corp.example', ['engineering']);
    const ida = await signIn(id, 'ida@corp.example');
    id.manualClock.advance(30_001);
    dir.down = true;
    logged.length = 0;
    const page = await id.gate.check(gateRequest({ accept: HTML, cookie: ida.cookie, requestId: 'req-page-1' }), t);
    const api = await id.gate.check(gateRequest({ accept: 'application/json', cookie: ida.cookie, requestId: 'req-api-1' }), t);
    dir.down = false;
    assert.deepEqual([status(page), status(api)], [403, 403]);
    assert.doesNotMatch(body(page), DIRECTORY_DETAILS);
    assert.doesNotMatch(body(api), DIRECTORY_DETAILS);
    assert.match(JSON.parse(body(api)).error.message, /cannot reach your organisation's directory to confirm your groups right now; try again in a minute/);
    assert.deepEqual(logged.map((l) => l.requestId), ['req-page-1', 'req-api-1']);
    assert.match(logged[0]!.details.join(), /the LDAP directory ldap\.corp\.internal:636 could not confirm the groups of ida@corp\.example: connect ECONNREFUSED 10\.0\.0\.7:636/);
    await id.events.flush();
    const denied = (await id.events.list({ kind: 'visitor_denied' })).filter((e) => e.email === 'ida@corp.example');
    assert.ok(denied.some((e) => /ECONNREFUSED 10\.0\.0\.7:636/.test(e.detail) && /request req-page-1/.test(e.detail)), JSON.stringify(denied));

    // One email, two entries: the visitor is told to ask the administrator, not the base DN.
    id.manualClock.advance(5000);
    dir.twins.add('jo@corp.example');
    const jo = await signIn(id, 'jo@corp.example');
    const twin = await id.gate.check(gateRequest({ accept: 'application/json', cookie: jo.cookie, requestId: 'req-twin' }), t);
    assert.equal(status(twin), 403);
    assert.doesNotMatch(body(twin), DIRECTORY_DETAILS);
    assert.match(JSON.parse(body(twin)).error.message, /does not give one clear answer for your email.*ask its administrator, quoting the request id/);
    assert.match(logged.at(-1)!.details.join(), /more than one entry under ou=people,dc=corp,dc=internal/);
  });
});

describe('idp: entries need a group source', () => {
  it('a relay without --oidc-groups-claim or --ldap-url refuses -a idp:<name> at registration, saying how to enable it', async () => {
    const id = await identityFixture();
    try {
      const owner = await account(id, 'owner@example.com');
      await assert.rejects(id.policy.validate(owner.id, ['idp:engineering']), (e) => isTunnError(e, 'INVALID_INPUT') && /--oidc-groups-claim or --ldap-url/.test(e.message));
      await id.policy.validate(owner.id, ['alice@example.com']);
    } finally {
      await id.close();
    }
  });

  it('signing out deletes the sign-in’s groups and the provider tokens kept with them', async () => {
    const id = await identityFixture({ providers: [{ type: 'oidc', issuer: 'http://127.0.0.1:1', clientId: 'c', clientSecret: 's', groupsClaim: 'groups' }] });
    try {
      const a = await account(id, 'hal@corp.example');
      const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
      await id.idpGroups.recordLogin(session.id, 'oidc', ['engineering']);
      await id.sessions.revokeFamily(session);
      assert.equal(await id.store.db.selectFrom('idp_session_groups').selectAll().where('session_id', '=', session.id).executeTakeFirst(), undefined);
    } finally {
      await id.close();
    }
  });
});
