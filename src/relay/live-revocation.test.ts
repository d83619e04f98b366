import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, type DatabaseConnection } from 'kysely';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lostDomainReason } from '../domains/resolution.ts';
import { principalKey, type Principal } from '../auth/revocation.ts';
import { IDENTITY_OUTAGE_WINDOW_MS } from '../auth/outage-cache.ts';
import { tokenKid } from '../auth/tokens.ts';
import { account, gateRequest, identityFixture } from '../../test/fixtures/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { createDomain, deleteDomain, markDomainVerified, setDomainShares } from '../domains/records.ts';
import { silentLogger } from '../lib/logger.ts';
import { accountById } from '../store/accounts.ts';
import type { Database } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { LiveConnection } from './gateway.ts';
import { AGENT_KEY_RETIRED, AGENT_TOKEN_REVOKED, DEFAULT_SWEEP_MS, LiveRevocation, type AgentLink, type ConnectionTable } from './live-revocation.ts';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry, type SessionRef, type Tunnel } from './registry.ts';

// Security property: a revocation reaches connections that no longer pass through the gate.
// One sweep cuts every live public connection whose session or token was revoked or whose
// visitor left the allow-list, ends agent sessions whose token was revoked, and takes offline
// the tunnels on a custom domain that was deleted or unshared — and nothing else. The store,
// tokens, sessions, groups and registry are the relay's own; the connection table and agent
// links stand in for sockets (the e2e test test/e2e/revocation.test.ts runs them for real).

type Id = Awaited<ReturnType<typeof identityFixture>>;
const RELAY = 'tunn.localhost';

class Conn implements LiveConnection {
  cut = false;
  readonly tunnel: Tunnel | undefined;
  readonly principals: Principal[];
  constructor(tunnel: Tunnel | undefined, principal: Principal | Principal[] | undefined) {
    this.tunnel = tunnel;
    this.principals = principal === undefined ? [] : Array.isArray(principal) ? principal : [principal];
  }
}

class Table implements ConnectionTable {
  readonly open = new Set<Conn>();
  add(t: Tunnel | undefined, p: Principal | Principal[] | undefined): Conn {
    const c = new Conn(t, p);
    this.open.add(c);
    return c;
  }
  cut(match: (c: LiveConnection) => boolean): number {
    let n = 0;
    for (const c of this.open) {
      if (!match(c)) continue;
      c.cut = true;
      this.open.delete(c);
      n++;
    }
    return n;
  }
}

class Agent implements AgentLink, SessionRef {
  readonly id = Math.random().toString(36).slice(2);
  readonly agentId = 'agent-1';
  readonly openStream = (): never => {
    throw new Error('no data streams in this test');
  };
  alive = true;
  ended: { code: string; message: string } | undefined;
  refused: { tunnelId: string; code: string; message: string }[] = [];
  readonly tokenJti: string | undefined;
  readonly account: { id: string; email: string } | undefined;
  readonly tokenKid: string | undefined;
  constructor(tokenJti: string | undefined, account: { id: string; email: string } | undefined, tokenKid?: string) {
    this.tokenJti = tokenJti;
    this.account = account;
    this.tokenKid = tokenKid;
  }
  end(code: string, message: string): void {
    this.ended = { code, message };
  }
  replaced(): void {}
  send(): void {}
  refuse(tunnelId: string, code: string, message: string): void {
    this.refused.push({ tunnelId, code, message });
  }
}

describe('LiveRevocation: the sweep cuts what lost its right', () => {
  let id: Id;
  let alice: { id: string; email: string };
  let bob: { id: string; email: string };
  const metrics = new RelayMetrics();

  before(async () => {
    id = await identityFixture();
    alice = await account(id, 'alice@example.com');
    bob = await account(id, 'bob@example.com');
  });
  after(() => id.close());

  function tunnel(registry: TunnelRegistry, session: SessionRef, host: string, domain: string, allow: string[] = ['bob@example.com']): Tunnel {
    const name = host.slice(0, host.indexOf('.'));
    return registry.attach({ id: `id-${name}`, host, name, domain, accountId: alice.id, email: alice.email, agentId: session.agentId, options: { id: `id-${name}`, allow, public: false }, metrics: metrics.forTunnel(host) }, session);
  }

  function sweeper(table: Table, registry: TunnelRegistry, agents: Agent[], intervalMs?: number, store: Store = id.store): LiveRevocation {
    return new LiveRevocation({
      store,
      clock: id.clock,
      logger: silentLogger(),
      gateways: [table],
      agents: () => agents,
      directory: registry,
      allows: (t, who) => id.policy.allows({ ownerAccountId: t.accountId, ownerEmail: t.email, allow: t.options.allow, public: t.options.public }, who.email),
      domainLost: (t) => lostDomainReason(id.store, RELAY, t),
      intervalMs,
    });
  }

  async function bobSession(): Promise<{ principal: Principal; relayId: string }> {
    const relay = await id.sessions.create({ accountId: bob.id, email: bob.email, host: RELAY });
    const host = await id.sessions.create({ accountId: bob.id, email: bob.email, host: 'app.tunn.localhost', parent: relay.session });
    return { principal: { via: 'session', sessionId: host.session.id, accountId: bob.id, email: bob.email }, relayId: relay.session.id };
  }

  it('cuts connections of a signed-out session and a revoked token, and only those', async () => {
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'app.tunn.localhost', RELAY);
    const table = new Table();
    const signedOut = await bobSession();
    const stays = await bobSession();
    const pat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const otherPat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const cOut = table.add(t, signedOut.principal);
    const cStays = table.add(t, stays.principal);
    const cPat = table.add(t, { via: 'token', jti: pat.jti, accountId: bob.id, email: bob.email });
    const cOtherPat = table.add(t, { via: 'token', jti: otherPat.jti, accountId: bob.id, email: bob.email });
    const cPublic = table.add(t, undefined);
    const sweep = sweeper(table, registry, [agent]);

    assert.deepEqual(await sweep.sweep(), { connections: 0, agents: 0, tunnels: 0 }, 'nothing revoked: nothing cut');
    await id.sessions.revokeFamily({ id: signedOut.relayId, parentId: null }); // sign-out on the relay
    await id.tokens.revoke(pat.jti, bob.id); // tunn token revoke
    assert.deepEqual(await sweep.sweep(), { connections: 2, agents: 0, tunnels: 0 });
    assert.deepEqual([cOut.cut, cStays.cut, cPat.cut, cOtherPat.cut, cPublic.cut], [true, false, true, false, false]);
  });

  // Guards: a revocation made anywhere before a database outage still applies during it: the
  // sweep checks the gate's outage cache too, so a revoked token's cached "allow" is dropped
  // and, once the database is away, the gate answers 503 rather than letting it in.
  it("drops the gate's cached answer for a token revoked elsewhere before an outage", async () => {
    const own = await identityFixture();
    try {
      const carol = await account(own, 'carol@example.com');
      const pat = await own.tokens.issue({ accountId: carol.id, kind: 'pat', email: carol.email });
      const policy = { tunnelId: 't', ownerAccountId: carol.id, ownerEmail: carol.email, allow: [], public: false };
      const req = gateRequest({ authorization: `Bearer ${pat.token}`, accept: 'application/json' });
      assert.equal((await own.gate.check(req, policy)).kind, 'allow');
      await own.tokens.revoke(pat.jti, carol.id); // e.g. `tunn token revoke` through another relay
      const registry = new TunnelRegistry();
      const sweep = new LiveRevocation({ store: own.store, clock: own.clock, logger: silentLogger(), gateways: [new Table()], agents: () => [], directory: registry, cached: own.gate.outageCache });
      await sweep.sweep();
      own.store.db.selectFrom = (() => {
        throw new TunnError('UNAVAILABLE', "the relay's database is unreachable (connect ECONNREFUSED); try again shortly: the relay reconnects by itself");
      }) as never;
      const during = await own.gate.check(req, policy);
      assert.equal(during.kind === 'respond' && during.status, 503);
    } finally {
      await own.close().catch(() => {});
    }
  });

  // Security property: retiring a signing key acts like revoking every token it signed, for
  // what is already live too: the agent sessions and visitor connections whose tokens it signed
  // are cut on the next sweep (at once in a cluster: NOTIFY starts one), and nothing else is.
  it('retiring a signing key ends the agent sessions and cuts the connections whose tokens it signed, and only those', async () => {
    const registry = new TunnelRegistry();
    const oldKid = id.tokens.signingKid!;
    const oldAgentToken = await id.tokens.issue({ accountId: alice.id, kind: 'agent', email: alice.email });
    const oldPat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    assert.equal(tokenKid(oldAgentToken.token), oldKid);
    const newKid = await id.tokens.rotateKeys();
    const newAgentToken = await id.tokens.issue({ accountId: alice.id, kind: 'agent', email: alice.email });
    const newPat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    assert.equal(tokenKid(newPat.token), newKid);
    const oldAgent = new Agent(oldAgentToken.jti, alice, tokenKid(oldAgentToken.token));
    const newAgent = new Agent(newAgentToken.jti, alice, tokenKid(newAgentToken.token));
    const t = tunnel(registry, newAgent, 'keys.tunn.localhost', RELAY);
    const table = new Table();
    const cOld = table.add(t, { via: 'token', jti: oldPat.jti, accountId: bob.id, email: bob.email, kid: tokenKid(oldPat.token) });
    const cNew = table.add(t, { via: 'token', jti: newPat.jti, accountId: bob.id, email: bob.email, kid: tokenKid(newPat.token) });
    const cSession = table.add(t, (await bobSession()).principal);
    const heard: string[][] = [];
    const sweep = new LiveRevocation({ store: id.store, clock: id.clock, logger: silentLogger(), gateways: [table], agents: () => [oldAgent, newAgent], directory: registry, onRetiredKeys: (k) => heard.push([...k]) });

    assert.deepEqual(await sweep.sweep(), { connections: 0, agents: 0, tunnels: 0 }, 'rotating retires nothing: old tokens keep working');
    await id.tokens.retireKey(oldKid);
    assert.deepEqual(await sweep.sweep(), { connections: 1, agents: 1, tunnels: 0 });
    assert.deepEqual(oldAgent.ended, { code: 'AUTH_TOKEN_REVOKED', message: AGENT_KEY_RETIRED });
    assert.match(AGENT_KEY_RETIRED, /signing key .* was retired .*create a new token/);
    assert.equal(newAgent.ended, undefined, 'an agent whose token the new key signed stays');
    assert.deepEqual([cOld.cut, cNew.cut, cSession.cut], [true, false, false]);
    assert.deepEqual(heard, [[oldKid]], 'the relay is told which key was retired (it reloads its keys if it did not know)');
  });

  // Security property: a retired key ends an agent session on its own: with no other live
  // credential (no visitor connection, no `tunn connect`), the sweep must still reach the agents.
  it('retiring a signing key ends an agent session signed by it when it is the only live credential', async () => {
    const registry = new TunnelRegistry();
    const oldKid = id.tokens.signingKid!;
    const oldAgentToken = await id.tokens.issue({ accountId: alice.id, kind: 'agent', email: alice.email });
    await id.tokens.rotateKeys();
    const oldAgent = new Agent(oldAgentToken.jti, alice, tokenKid(oldAgentToken.token));
    const sweep = new LiveRevocation({ store: id.store, clock: id.clock, logger: silentLogger(), gateways: [new Table()], agents: () => [oldAgent], directory: registry });
    assert.deepEqual(await sweep.sweep(), { connections: 0, agents: 0, tunnels: 0 });
    assert.equal(oldAgent.ended, undefined);
    await id.tokens.retireKey(oldKid);
    assert.deepEqual(await sweep.sweep(), { connections: 0, agents: 1, tunnels: 0 });
    assert.deepEqual(oldAgent.ended, { code: 'AUTH_TOKEN_REVOKED', message: AGENT_KEY_RETIRED });
  });

  // Guards: a pipelined request does not hide an earlier one. A connection streaming the answer
  // to a request made with a leaked token T1 must be cut when T1 is revoked, even though a later
  // request on it came with a live token T2.
  it('cuts a connection when any credential it still acts for is revoked', async () => {
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'pipe.tunn.localhost', RELAY);
    const table = new Table();
    const p = (jti: string): Principal => ({ via: 'token', jti, accountId: bob.id, email: bob.email });
    const t1 = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const t2 = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const both = table.add(t, [p(t1.jti), p(t2.jti)]);
    const onlyT2 = table.add(t, [p(t2.jti)]);
    const sweep = sweeper(table, registry, [agent]);
    assert.deepEqual(await sweep.sweep(), { connections: 0, agents: 0, tunnels: 0 });
    await id.tokens.revoke(t1.jti, bob.id);
    assert.deepEqual(await sweep.sweep(), { connections: 1, agents: 0, tunnels: 0 });
    assert.deepEqual([both.cut, onlyT2.cut], [true, false]);
  });

  it('cuts the connections of a visitor removed from the allow-list (group), not the owner', async () => {
    await id.groups.create(alice.id, 'eng', ['bob@example.com']);
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'grp.tunn.localhost', RELAY, ['group:eng']);
    const table = new Table();
    const cBob = table.add(t, (await bobSession()).principal);
    const ownerPat = await id.tokens.issue({ accountId: alice.id, kind: 'pat', email: alice.email });
    const cOwner = table.add(t, { via: 'token', jti: ownerPat.jti, accountId: alice.id, email: alice.email });
    const sweep = sweeper(table, registry, [agent]);
    assert.equal((await sweep.sweep()).connections, 0);
    await id.groups.remove(alice.id, 'eng', ['bob@example.com']);
    assert.equal((await sweep.sweep()).connections, 1);
    assert.deepEqual([cBob.cut, cOwner.cut], [true, false]);
  });

  it('ends an agent session whose token was revoked, telling the agent what to do', async () => {
    const registry = new TunnelRegistry();
    const t1 = await id.tokens.issue({ accountId: alice.id, kind: 'agent', email: alice.email });
    const t2 = await id.tokens.issue({ accountId: alice.id, kind: 'agent', email: alice.email });
    const revokedAgent = new Agent(t1.jti, alice);
    const liveAgent = new Agent(t2.jti, alice);
    const helloPending = new Agent(undefined, undefined);
    const sweep = sweeper(new Table(), registry, [revokedAgent, liveAgent, helloPending]);
    assert.equal((await sweep.sweep()).agents, 0);
    await id.tokens.revoke(t1.jti, alice.id);
    assert.equal((await sweep.sweep()).agents, 1);
    assert.deepEqual(revokedAgent.ended, { code: 'AUTH_TOKEN_REVOKED', message: AGENT_TOKEN_REVOKED });
    assert.match(AGENT_TOKEN_REVOKED, /revoked.*tunn relay token create/);
    assert.equal(liveAgent.ended, undefined);
    assert.equal(helloPending.ended, undefined);
  });

  it('takes tunnels offline when their custom domain is unshared or deleted, cutting their connections', async () => {
    const carol = await account(id, 'carol@example.com');
    const carolAcct = (await accountById(id.store, carol.id))!;
    await createDomain(id.store, { accountId: carol.id, acmeId: carolAcct.acme_id, domain: 'shop.example.test', relayDomain: RELAY });
    await markDomainVerified(id.store, 'shop.example.test');
    await setDomainShares(id.store, 'shop.example.test', ['alice@example.com']);
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const onDomain = tunnel(registry, agent, 'app.shop.example.test', 'shop.example.test', []);
    const onRelay = tunnel(registry, agent, 'app2.tunn.localhost', RELAY, []);
    const table = new Table();
    const cDomain = table.add(onDomain, undefined); // a connection, signed in or not, on the domain's tunnel
    const cRelay = table.add(onRelay, undefined);
    const sweep = sweeper(table, registry, [agent]);
    assert.equal((await sweep.sweep()).tunnels, 0, 'shared and verified: stays up');

    await setDomainShares(id.store, 'shop.example.test', []);
    assert.deepEqual(await sweep.sweep(), { connections: 1, agents: 0, tunnels: 1 });
    assert.equal(registry.get('app.shop.example.test'), undefined, 'the tunnel is offline');
    assert.ok(registry.get('app2.tunn.localhost'), 'a tunnel on the relay domain stays');
    assert.deepEqual([cDomain.cut, cRelay.cut], [true, false]);
    assert.equal(agent.refused.length, 1);
    assert.equal(agent.refused[0]!.tunnelId, 'id-app');
    assert.match(agent.refused[0]!.message, /no longer shared with alice@example\.com.*tunn domain share shop\.example\.test alice@example\.com/);

    // Deleted: the owner's own tunnel goes too.
    const ownerAgent = new Agent(undefined, undefined);
    const reg2 = new TunnelRegistry();
    const own = reg2.attach({ id: 'own', host: 'www.shop.example.test', name: 'www', domain: 'shop.example.test', accountId: carol.id, email: carol.email, agentId: 'a', options: { id: 'own', allow: [], public: true }, metrics: metrics.forTunnel('www.shop.example.test') }, ownerAgent);
    const sweep2 = sweeper(new Table(), reg2, [ownerAgent]);
    assert.equal((await sweep2.sweep()).tunnels, 0);
    await deleteDomain(id.store, 'shop.example.test');
    assert.equal((await sweep2.sweep()).tunnels, 1);
    assert.equal(reg2.get(own.host), undefined);
    assert.match(ownerAgent.refused[0]!.message, /shop\.example\.test was deleted/);
  });

  it('runs by itself on its period (default well under 5 s)', async () => {
    assert.ok(DEFAULT_SWEEP_MS <= 2500, 'the period leaves room for the store query within 5 s');
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'timer.tunn.localhost', RELAY);
    const table = new Table();
    const s = await bobSession();
    const c = table.add(t, s.principal);
    const sweep = sweeper(table, registry, [agent], 20);
    sweep.start();
    try {
      await id.sessions.revokeFamily({ id: s.relayId, parentId: null });
      const end = Date.now() + 10_000; // generous ceiling on a shared machine
      while (!c.cut && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.equal(c.cut, true);
    } finally {
      sweep.stop();
    }
  });

  // Security property: a store that stops answering does not turn live revocation off. A
  // query that never resolves (a half-open PostgreSQL connection) used to hold the one running
  // sweep forever, so a token revoked after the store came back was never cut until restart.
  // Now each sweep is time-boxed and the next one starts afresh; while sweeps fail, a signed-in
  // connection is kept as long as its credential's last answer is within the identity outage
  // window (the gate's rule, 30 s), and cut after it (fail closed; public ones stay).
  it('survives a store query that never answers, and fails closed once the last answer is past the outage window', { timeout: 60_000 }, async () => {
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'hang.tunn.localhost', RELAY);
    const table = new Table();
    const pat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const cPat = table.add(t, { via: 'token', jti: pat.jti, accountId: bob.id, email: bob.email });
    const cPublic = table.add(t, undefined);
    // The relay's real store, except that while `hanging` every query waits forever.
    let hanging = true;
    const stuck = hangingDb();
    const store: Store = { dialect: id.store.dialect, close: async () => {}, get db() { return hanging ? stuck : id.store.db; } };
    const sweep = sweeper(table, registry, [agent], 20, store);

    await assert.rejects(sweep.sweep(), /took over 40 ms.*store did not answer/);
    assert.equal(sweep.failures, 1);
    assert.equal(cPat.cut, false, 'one failure is a blip: nothing cut yet');

    hanging = false; // the store answers again; the token is revoked meanwhile
    await id.tokens.revoke(pat.jti, bob.id);
    assert.deepEqual(await sweep.sweep(), { connections: 1, agents: 0, tunnels: 0 }, 'the next sweep runs afresh and cuts');
    assert.equal(cPat.cut, true);
    assert.equal(sweep.failures, 0);

    // The outage window (injected clock): the store last answered for pat2 at `answered`.
    const pat2 = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const cLive = table.add(t, { via: 'token', jti: pat2.jti, accountId: bob.id, email: bob.email });
    await sweep.sweep();
    const answered = id.manualClock.now();
    hanging = true;
    for (let i = 0; i < 5; i++) await assert.rejects(sweep.sweep());
    assert.equal(cLive.cut, false, 'five failed sweeps in a row (the old rule cut at three): kept, its last answer is seconds old');
    id.manualClock.set(answered + IDENTITY_OUTAGE_WINDOW_MS);
    await assert.rejects(sweep.sweep());
    assert.equal(cLive.cut, false, 'exactly the window old: kept, as the gate would still let it in');
    id.manualClock.set(answered + IDENTITY_OUTAGE_WINDOW_MS + 1);
    await assert.rejects(sweep.sweep());
    assert.equal(cLive.cut, true, 'past the window: cut (fail closed)');
    assert.equal(cPublic.cut, false, 'a public connection carries no credential to check: kept');
  });

  // Security property: a connection let in during an outage from the gate's cache is trusted only
  // as long as that cached answer (not from when the connection opened), and one nothing ever
  // answered for dates from the last good sweep.
  it("during an outage, a connection the gate let in from cache is cut when the cached answer passes the window", { timeout: 30_000 }, async () => {
    const registry = new TunnelRegistry();
    const agent = new Agent(undefined, undefined);
    const t = tunnel(registry, agent, 'cached.tunn.localhost', RELAY);
    const table = new Table();
    const windowMs = 5000;
    const start = id.manualClock.now();
    const viaCache: Principal = { via: 'token', jti: 'jti-cached', accountId: bob.id, email: bob.email };
    const unknown: Principal = { via: 'token', jti: 'jti-unknown', accountId: bob.id, email: bob.email };
    const store: Store = { dialect: id.store.dialect, close: async () => {}, get db() { return hangingDb(); } };
    const sweep = new LiveRevocation({
      store, clock: id.clock, logger: silentLogger(), gateways: [table], agents: () => [], directory: registry, intervalMs: 20, outageWindowMs: windowMs,
      // The gate answered "allow" for viaCache 3 s before the sweeper started (before the outage).
      cached: { principals: () => [], forget: () => {}, answeredAt: () => new Map([[principalKey(viaCache), start - 3000]]) },
    });
    const cCached = table.add(t, viaCache);
    const cUnknown = table.add(t, unknown);
    id.manualClock.set(start + 1500);
    await assert.rejects(sweep.sweep());
    assert.deepEqual([cCached.cut, cUnknown.cut], [false, false], 'both within the window');
    id.manualClock.set(start + 2001); // 5001 ms after the cached answer
    await assert.rejects(sweep.sweep());
    assert.deepEqual([cCached.cut, cUnknown.cut], [true, false], 'the cached answer is past the window: cut; the other dates from the sweeper start');
    id.manualClock.set(start + windowMs + 1);
    await assert.rejects(sweep.sweep());
    assert.equal(cUnknown.cut, true);
  });
});

/** A Kysely whose every query waits forever (a store connection that went silent). */
function hangingDb(): Kysely<Database> {
  const conn: DatabaseConnection = { executeQuery: () => new Promise(() => {}), streamQuery: () => { throw new Error('not used'); } };
  class Hanging extends DummyDriver {
    override async acquireConnection(): Promise<DatabaseConnection> {
      return conn;
    }
  }
  return new Kysely<Database>({
    dialect: { createAdapter: () => new SqliteAdapter(), createDriver: () => new Hanging(), createIntrospector: (db) => new SqliteIntrospector(db), createQueryCompiler: () => new SqliteQueryCompiler() },
  });
}
