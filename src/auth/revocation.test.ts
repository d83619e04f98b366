import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TunnelPolicy } from './gate.ts';
import { findRevoked, principalKey, type Principal } from './revocation.ts';
import { account, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';

// Security property: a credential that was revoked, expired or deleted is reported as such
// (so the relay cuts the live connections it opened), and one that still holds never is
// (so the sweep does not cut innocent visitors). The principal the gate names on allow is
// exactly the credential the request came with.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const HOST = 'app.tunn.localhost:8080';

describe('revocation: which live credentials no longer hold', () => {
  let id: Id;
  let owner: { id: string; email: string };
  let t: TunnelPolicy;
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
    t = { tunnelId: 't1', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['bob@example.com'], public: false };
  });
  after(() => id.close());

  async function hostSession(email: string): Promise<{ cookie: string; principal: Principal; relaySessionId: string }> {
    const a = await account(id, email);
    const relay = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
    const { cookieValue, session } = await id.sessions.create({ accountId: a.id, email: a.email, host: HOST, parent: relay.session });
    return { cookie: `tunn=${cookieValue}`, principal: { via: 'session', sessionId: session.id, rootSessionId: relay.session.id, accountId: a.id, email: a.email }, relaySessionId: relay.session.id };
  }

  it('names the session or token a request was allowed with, and none on a public tunnel', async () => {
    const s = await hostSession('bob@example.com');
    const bySession = await id.gate.check(gateRequest({ cookie: s.cookie }), t);
    assert.equal(bySession.kind, 'allow');
    assert.deepEqual(bySession.kind === 'allow' && bySession.principal, s.principal);
    const bob = await account(id, 'bob@example.com');
    const pat = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const byToken = await id.gate.check(gateRequest({ authorization: `Bearer ${pat.token}` }), t);
    assert.deepEqual(byToken.kind === 'allow' && byToken.principal, { via: 'token', jti: pat.jti, accountId: bob.id, email: bob.email, kid: id.tokens.signingKid }, 'with the key that signed it: retiring the key cuts the connection');
    const pub = await id.gate.check(gateRequest({ cookie: s.cookie }), { ...t, public: true });
    assert.equal(pub.kind === 'allow' && pub.principal, undefined);
  });

  it('reports sessions signed out (the whole family), expired or unknown; not the live ones', async () => {
    const signedOut = await hostSession('bob@example.com');
    const live = await hostSession('bob@example.com');
    const gone: Principal = { via: 'session', sessionId: 'no-such-session', accountId: owner.id, email: owner.email };
    // Sign-out anywhere (relay or tunnel host) revokes the family: the host session goes with it.
    await id.sessions.revokeFamily({ id: signedOut.relaySessionId, parentId: null });
    const r = await findRevoked(id.store, id.clock, [signedOut.principal, live.principal, gone]);
    assert.deepEqual([...r].sort(), [principalKey(signedOut.principal), principalKey(gone)].sort());

    const bob = await account(id, 'bob@example.com');
    assert.equal(await id.sessions.revokeAccount(bob.id) > 0, true);
    assert.ok((await findRevoked(id.store, id.clock, [live.principal])).has(principalKey(live.principal)), 'a revoked account takes its sessions with it');

    const later = await hostSession('carol@example.com');
    assert.equal((await findRevoked(id.store, id.clock, [later.principal])).size, 0);
    id.manualClock.advance(id.sessions.ttlSeconds * 1000 + 1);
    assert.ok((await findRevoked(id.store, id.clock, [later.principal])).has(principalKey(later.principal)), 'an expired session no longer holds');
  });

  it('reports tokens revoked, expired or unknown; not the live ones', async () => {
    const bob = await account(id, 'bob@example.com');
    const p = (jti: string): Principal => ({ via: 'token', jti, accountId: bob.id, email: bob.email });
    const revoked = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    const live = await id.tokens.issue({ accountId: bob.id, kind: 'agent', email: bob.email });
    const shortLived = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email, ttlSeconds: 60 });
    assert.equal(await id.tokens.revoke(revoked.jti, bob.id), true);
    let r = await findRevoked(id.store, id.clock, [p(revoked.jti), p(live.jti), p(shortLived.jti), p('forged-jti')]);
    assert.deepEqual([...r].sort(), ['t:forged-jti', `t:${revoked.jti}`].sort());
    id.manualClock.advance(61_000);
    r = await findRevoked(id.store, id.clock, [p(live.jti), p(shortLived.jti)]);
    assert.deepEqual([...r], [`t:${shortLived.jti}`]);
  });

  it('checks more credentials than one query can bind', async () => {
    const bob = await account(id, 'bob@example.com');
    const many: Principal[] = [];
    for (let i = 0; i < 1203; i++) many.push({ via: 'token', jti: `unknown-${i}`, accountId: bob.id, email: bob.email });
    const live = await id.tokens.issue({ accountId: bob.id, kind: 'pat', email: bob.email });
    many.push({ via: 'token', jti: live.jti, accountId: bob.id, email: bob.email });
    const r = await findRevoked(id.store, id.clock, many);
    assert.equal(r.size, 1203);
    assert.equal(r.has(`t:${live.jti}`), false);
  });
});
