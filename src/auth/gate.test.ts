import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { after, before, describe, it } from 'node:test';
import type { GateDecision, TunnelPolicy } from './gate.ts';
import { account, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { TunnError } from '../lib/errors.ts';

type Id = Awaited<ReturnType<typeof identityFixture>>;

function hdr(d: GateDecision, name: string): string | undefined {
  if (d.kind !== 'respond') return undefined;
  return d.headers.find(([n]) => n === name)?.[1];
}
function set(d: GateDecision, name: string): string | undefined {
  return d.kind === 'allow' ? d.setHeaders.find(([n]) => n === name)?.[1] : undefined;
}
const HTML = 'text/html,application/xhtml+xml';
/** The form token in a page's sign-out form (it rides in the form's action URL). */
function logoutTokenIn(d: GateDecision): string {
  const m = d.kind === 'respond' ? /action="\/\.tunn\/logout\?csrf=([A-Za-z0-9_-]+)/.exec(String(d.body)) : null;
  assert.ok(m, 'no sign-out form on the page');
  return m[1]!;
}
const HOST = 'app.tunn.localhost:8080';

/** Signs `email` in on the relay and hands the session to HOST; returns the host cookie line. */
async function signIn(id: Id, email: string, host = HOST): Promise<string> {
  const a = await account(id, email);
  const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
  const url = new URL(await id.handoff.start(session, new URL(`http://${host}/dash?x=1`)));
  assert.equal(url.pathname, '/.tunn/auth/callback');
  const d = await id.gate.check(gateRequest({ host, path: url.pathname + url.search }), tunnelOf(id, a, []));
  assert.equal(d.kind, 'respond');
  assert.equal((d as { status: number }).status, 302);
  assert.equal(hdr(d, 'location'), '/dash?x=1');
  const cookie = hdr(d, 'set-cookie')!;
  assert.match(cookie, /^tunn=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
  return cookie.split(';')[0]!;
}

function tunnelOf(_id: Id, owner: { id: string; email: string }, allow: string[], over: Partial<TunnelPolicy> = {}): TunnelPolicy {
  return { tunnelId: 't1', ownerAccountId: owner.id, ownerEmail: owner.email, allow, public: false, ...over };
}

describe('Gate', () => {
  let id: Id;
  let owner: { id: string; email: string };
  let t: TunnelPolicy;
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
    t = tunnelOf(id, owner, ['friend@example.com', 'group:eng']);
  });
  after(() => id.close());

  it('sends a browser without a session to the relay login with the return URL; an API client gets 401', async () => {
    const d = await id.gate.check(gateRequest({ accept: HTML, path: '/a/b?c=d' }), t);
    assert.equal(d.kind === 'respond' && d.status, 302);
    assert.equal(hdr(d, 'location'), `${RELAY_URL}/login?return=${encodeURIComponent(`http://${HOST}/a/b?c=d`)}`);
    const api = await id.gate.check(gateRequest({ accept: 'application/json' }), t);
    assert.equal(api.kind === 'respond' && api.status, 401);
    assert.match(hdr(api, 'www-authenticate')!, /^Bearer/);
    assert.equal(JSON.parse(String((api as { body: string }).body)).error.code, 'AUTH_REQUIRED');
    const post = await id.gate.check(gateRequest({ accept: HTML, method: 'POST' }), t);
    assert.equal(post.kind === 'respond' && post.status, 401);
    // A path the relay would refuse as a return URL ("//host", "/\\host") comes back as this host's root.
    for (const path of ['//evil.example/x', '/\\evil.example/x', '/%2f%2fevil.example/']) {
      const odd = await id.gate.check(gateRequest({ accept: HTML, path }), t);
      assert.equal(hdr(odd, 'location'), `${RELAY_URL}/login?return=${encodeURIComponent(`http://${HOST}/`)}`, path);
    }
  });

  it('hands a relay session over to the tunnel host and allows, setting the identity headers', async () => {
    const cookie = await signIn(id, 'friend@example.com');
    const d = await id.gate.check(
      gateRequest({ accept: HTML, cookie: `a=1; ${cookie}; b=2`, headers: [['tunn-user-email', 'forged@x.com'], ['tunn-jwt-assertion', 'forged']] }),
      t,
    );
    assert.equal(d.kind, 'allow');
    assert.equal(d.kind === 'allow' && d.email, 'friend@example.com');
    // Forged identity headers and tunn's cookies are stripped by the gateway on every path
    // (src/relay/forward-headers.test.ts); the gate sets identity after them.
    assert.equal(set(d, 'tunn-user-email'), 'friend@example.com');
    // The assertion verifies with the relay's published JWKS, for this origin only.
    const { payload } = await jwtVerify(set(d, 'tunn-jwt-assertion')!, createLocalJWKSet(id.tokens.jwks()), { issuer: RELAY_URL, audience: `http://${HOST}`, currentDate: new Date(id.clock.now()) });
    assert.equal(payload.email, 'friend@example.com');
    assert.ok(payload.exp! - payload.iat! <= 60);
  });

  it('refuses a used, foreign-host or garbage hand-off code (security: codes are one-time and host-bound)', async () => {
    const a = await account(id, 'friend@example.com');
    const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost:8080' });
    const url = new URL(await id.handoff.start(session, new URL(`http://${HOST}/`)));
    const onOther = await id.gate.check(gateRequest({ host: 'evil.tunn.localhost:8080', path: url.pathname + url.search }), t);
    assert.equal(onOther.kind === 'respond' && onOther.status, 400);
    const first = await id.gate.check(gateRequest({ path: url.pathname + url.search }), t);
    assert.equal(first.kind === 'respond' && first.status, 302);
    const again = await id.gate.check(gateRequest({ path: url.pathname + url.search }), t);
    assert.equal(again.kind === 'respond' && again.status, 400);
    const junk = await id.gate.check(gateRequest({ path: '/.tunn/auth/callback?code=nope' }), t);
    assert.equal(junk.kind === 'respond' && junk.status, 400);
    // Expired after its few seconds.
    const late = new URL(await id.handoff.start(session, new URL(`http://${HOST}/`)));
    id.manualClock.advance(31_000);
    const expired = await id.gate.check(gateRequest({ path: late.pathname + late.search }), t);
    assert.equal(expired.kind === 'respond' && expired.status, 400);
    id.manualClock.advance(-31_000);
  });

  it('sends a tampered cookie, or one from another host, back to login and clears it', async () => {
    const cookie = await signIn(id, 'friend@example.com');
    const v = cookie.slice('tunn='.length);
    const tampered = `tunn=${v.slice(0, -1)}${v.endsWith('A') ? 'B' : 'A'}`;
    const d = await id.gate.check(gateRequest({ accept: HTML, cookie: tampered }), t);
    assert.equal(d.kind === 'respond' && d.status, 302);
    assert.match(hdr(d, 'location')!, /\/login\?return=/);
    assert.match(hdr(d, 'set-cookie')!, /^tunn=; .*Max-Age=0/);
    const other = await id.gate.check(gateRequest({ accept: HTML, host: 'other.tunn.localhost:8080', cookie }), t);
    assert.equal(other.kind === 'respond' && other.status, 302);
  });

  it('shows a 403 page naming the signed-in email with a switch-account button, and records the denial', async () => {
    const cookie = await signIn(id, 'stranger@example.com');
    const d = await id.gate.check(gateRequest({ accept: HTML, cookie }), t);
    assert.equal(d.kind === 'respond' && d.status, 403);
    const body = String((d as { body: string }).body);
    assert.match(body, /stranger@example\.com/);
    // A form post to /.tunn/logout carrying the session's form token, not a link (see the logout tests).
    assert.match(body, /<form method="post" action="\/\.tunn\/logout\?csrf=[A-Za-z0-9_-]{43}&amp;switch=1">/);
    const ev = await id.events.list({ accountId: owner.id, kind: 'visitor_denied' });
    assert.equal(ev[0]?.email, 'stranger@example.com');
    // A group change lets them in on the next request, with no reconnect.
    await id.groups.create(owner.id, 'eng', ['stranger@example.com']);
    assert.equal((await id.gate.check(gateRequest({ accept: HTML, cookie }), t)).kind, 'allow');
    await id.groups.delete(owner.id, 'eng');
    assert.equal((await id.gate.check(gateRequest({ accept: HTML, cookie }), t)).kind, 'respond');
  });

  it('logs out on the tunnel host: the host and relay sessions are revoked', async () => {
    const a = await account(id, 'friend@example.com');
    const { session: relaySession, cookieValue: relayCookie } = await id.sessions.create({ accountId: a.id, email: a.email, host: 'tunn.localhost:8080' });
    const url = new URL(await id.handoff.start(relaySession, new URL(`http://${HOST}/`)));
    const cb = await id.gate.check(gateRequest({ path: url.pathname + url.search }), t);
    const cookie = hdr(cb, 'set-cookie')!.split(';')[0]!;
    assert.equal((await id.gate.check(gateRequest({ cookie }), t)).kind, 'allow');
    const csrf = logoutTokenIn(await id.gate.check(gateRequest({ accept: HTML, cookie, path: '/.tunn/logout?switch=1' }), t));
    const out = await id.gate.check(gateRequest({ method: 'POST', cookie, path: `/.tunn/logout?csrf=${csrf}&switch=1`, headers: [['origin', `http://${HOST}`], ['sec-fetch-site', 'same-origin']] }), t);
    assert.equal(out.kind === 'respond' && out.status, 303);
    assert.match(hdr(out, 'location')!, /^http:\/\/tunn\.localhost:8080\/login\?return=/);
    assert.match(hdr(out, 'set-cookie')!, /^tunn=; .*Max-Age=0/);
    const after = await id.gate.check(gateRequest({ accept: HTML, cookie }), t);
    assert.equal(after.kind === 'respond' && after.status, 302);
    assert.equal(await id.sessions.lookup(relayCookie, 'tunn.localhost:8080'), undefined);
  });

  it('accepts a personal access token as Bearer and strips it; refuses revoked, foreign and malformed tokens with 401', async () => {
    const a = await account(id, 'friend@example.com');
    const pat = await id.tokens.issue({ accountId: a.id, kind: 'pat', email: a.email });
    const d = await id.gate.check(gateRequest({ authorization: `Bearer ${pat.token}` }), t);
    assert.equal(d.kind, 'allow');
    assert.ok(d.kind === 'allow' && d.removeHeaders.includes('authorization'));
    await id.tokens.revoke(pat.jti);
    const revoked = await id.gate.check(gateRequest({ authorization: `Bearer ${pat.token}` }), t);
    assert.equal(revoked.kind === 'respond' && revoked.status, 401);
    assert.equal(JSON.parse(String((revoked as { body: string }).body)).error.code, 'AUTH_TOKEN_REVOKED');
    const other = await identityFixture();
    const foreignAcct = await account(other, 'friend@example.com');
    const foreign = await other.tokens.issue({ accountId: foreignAcct.id, kind: 'pat', email: 'friend@example.com' });
    await other.close();
    for (const bad of [foreign.token, 'not.a.jwt', 'x']) {
      const r = await id.gate.check(gateRequest({ accept: HTML, authorization: `Bearer ${bad}` }), t);
      assert.equal(r.kind === 'respond' && r.status, 401, bad);
      assert.equal(JSON.parse(String((r as { body: string }).body)).error.code, 'AUTH_INVALID_TOKEN');
    }
    const ev = await id.events.list({ accountId: owner.id, kind: 'token_revoked_used' });
    assert.equal(ev.length, 1);
    // A session token is not a bearer credential.
    const sess = await id.tokens.issue({ accountId: a.id, kind: 'session', email: a.email });
    const s = await id.gate.check(gateRequest({ authorization: `Bearer ${sess.token}` }), t);
    assert.equal(s.kind === 'respond' && s.status, 401);
  });

  it('checks the IP allow-list before anything else, even on tunn paths', async () => {
    const tt = { ...t, public: true, allowIps: ['10.0.0.0/8', '2001:db8::/32'] };
    for (const path of ['/', '/.tunn/logout', '/.tunn/auth/callback?code=x']) {
      const d = await id.gate.check(gateRequest({ clientIp: '192.0.2.1', path }), tt);
      assert.equal(d.kind === 'respond' && d.status, 403, path);
    }
    assert.equal((await id.gate.check(gateRequest({ clientIp: '::ffff:10.1.2.3' }), tt)).kind, 'allow');
    assert.equal((await id.gate.check(gateRequest({ clientIp: '2001:db8::1' }), tt)).kind, 'allow');
  });

  it('rate-limits per client IP and per tunnel with 429 and Retry-After, recording one event per burst window', async () => {
    const tt = { ...t, tunnelId: 'rl', public: true, rateLimit: { perIp: 2, perTunnel: 3 } };
    const r = (ip: string) => id.gate.check(gateRequest({ clientIp: ip }), tt);
    assert.equal((await r('10.0.0.1')).kind, 'allow');
    assert.equal((await r('10.0.0.1')).kind, 'allow');
    const limited = await r('10.0.0.1');
    assert.equal(limited.kind === 'respond' && limited.status, 429);
    assert.equal(hdr(limited, 'retry-after'), '30');
    assert.equal((await r('10.0.0.2')).kind, 'allow');
    const tunnelWide = await r('10.0.0.3');
    assert.equal(tunnelWide.kind === 'respond' && tunnelWide.status, 429);
    for (let i = 0; i < 5; i++) await r('10.0.0.1');
    const ev = await id.events.list({ tunnel: 'rl', kind: 'rate_limited', ip: '10.0.0.1' });
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.count, 6);
  });

  it('asks for basic auth first, then identity', async () => {
    const tt = { ...t, basicAuth: { user: 'u', pass: 'p' } };
    const no = await id.gate.check(gateRequest({ accept: HTML }), tt);
    assert.equal(no.kind === 'respond' && no.status, 401);
    assert.match(hdr(no, 'www-authenticate')!, /^Basic/);
    const basic = 'Basic ' + Buffer.from('u:p').toString('base64');
    const cookie = await signIn(id, 'friend@example.com');
    const ok = await id.gate.check(gateRequest({ accept: HTML, authorization: basic, cookie }), tt);
    assert.equal(ok.kind, 'allow');
    assert.ok(ok.kind === 'allow' && ok.removeHeaders.includes('authorization'));
    const wrong = await id.gate.check(gateRequest({ authorization: 'Basic ' + Buffer.from('u:x').toString('base64'), cookie }), tt);
    assert.equal(wrong.kind === 'respond' && wrong.status, 401);
  });

  it('says why it refused, for the owner’s request log and the metrics (issue 17)', async () => {
    const why = (d: GateDecision) => (d.kind === 'respond' ? d.refusal : undefined);
    const stranger = await signIn(id, 'stranger2@example.com');
    assert.deepEqual(why(await id.gate.check(gateRequest({ accept: HTML, cookie: stranger }), t)), { reason: 'policy', who: 'stranger2@example.com', detail: undefined });
    assert.deepEqual(why(await id.gate.check(gateRequest({ accept: HTML }), t)), { reason: 'sign-in', detail: 'sent to sign in' });
    assert.deepEqual(why(await id.gate.check(gateRequest({}), t)), { reason: 'sign-in', detail: 'not signed in' });
    assert.deepEqual(why(await id.gate.check(gateRequest({ authorization: 'Bearer not.a.token' }), t)), { reason: 'token', detail: 'invalid token' });
    assert.deepEqual(why(await id.gate.check(gateRequest({ clientIp: '192.0.2.1' }), { ...t, allowIps: ['10.0.0.0/8'] })), { reason: 'ip', detail: 'not in --allow-ip' });
    const basic = { ...t, basicAuth: { user: 'u', pass: 'p' } };
    assert.deepEqual(why(await id.gate.check(gateRequest({}), basic)), { reason: 'basic-auth', detail: 'no password given' });
    assert.deepEqual(why(await id.gate.check(gateRequest({ authorization: 'Basic ' + Buffer.from('u:x').toString('base64') }), basic)), { reason: 'basic-auth', detail: 'wrong user or password' });
    const rl = { ...t, tunnelId: 'rl-why', public: true, rateLimit: { perIp: 1 } };
    await id.gate.check(gateRequest({ clientIp: '10.9.9.9' }), rl);
    assert.deepEqual(why(await id.gate.check(gateRequest({ clientIp: '10.9.9.9' }), rl)), { reason: 'rate-limit', detail: '1/min per client IP' });
    // tunn's own paths are not refusals.
    assert.equal(why(await id.gate.check(gateRequest({ path: '/.tunn/nope' }), t)), undefined);
  });

  it('allows public tunnels without touching the store or setting identity', async () => {
    const other = await identityFixture();
    const o = await account(other, 'o@example.com');
    await other.store.close(); // any store access would now throw
    const d = await other.gate.check(gateRequest({ cookie: 'tunn=abc; k=v', headers: [['tunn-user-email', 'forged@x.com']] }), tunnelOf(other, o, [], { public: true }));
    assert.equal(d.kind, 'allow');
    assert.ok(d.kind === 'allow' && d.email === undefined && d.setHeaders.length === 0);
  });
});

describe('Gate failure', () => {
  it('fails closed with 503 when it cannot decide (store gone)', async () => {
    const errors: unknown[] = [];
    const id = await identityFixture({ onError: (e) => errors.push(e) });
    const o = await account(id, 'o@example.com');
    await id.store.close();
    const d = await id.gate.check(gateRequest({ cookie: 'tunn=' + 'A'.repeat(43) }), { tunnelId: 't', ownerAccountId: o.id, ownerEmail: o.email, allow: [], public: false });
    assert.equal(d.kind === 'respond' && d.status, 503);
    assert.equal(d.kind === 'respond' && d.refusal?.reason, 'unavailable');
    assert.equal(errors.length, 1);
  });
});

describe('Gate during a database outage', () => {
  // The store's mapped fault (store/unavailable.ts): what a lookup throws while PostgreSQL is away.
  const down = (): never => {
    throw new TunnError('UNAVAILABLE', "the relay's database is unreachable (connect ECONNREFUSED); try again shortly: the relay reconnects by itself");
  };

  // Guards: identity decisions use cached state for at most the window (30 s) of an outage, then fail closed with 503.
  it('lets a signed-in visitor in from cache for 30 s of an outage, then answers 503 saying the database is unreachable', async () => {
    const id = await identityFixture();
    const a = await account(id, 'o@example.com');
    const t: TunnelPolicy = { tunnelId: 't', ownerAccountId: a.id, ownerEmail: a.email, allow: [], public: false };
    const pat = await id.tokens.issue({ accountId: a.id, kind: 'pat', email: a.email });
    const req = gateRequest({ authorization: `Bearer ${pat.token}`, accept: 'application/json' });
    assert.equal((await id.gate.check(req, t)).kind, 'allow');
    id.store.db.selectFrom = down as never;
    const first = await id.gate.check(req, t);
    assert.equal(first.kind, 'allow');
    id.manualClock.advance(30_000);
    assert.equal((await id.gate.check(req, t)).kind, 'allow');
    id.manualClock.advance(1_000);
    const late = await id.gate.check(req, t);
    assert.equal(late.kind === 'respond' && late.status, 503);
    assert.match(String(late.kind === 'respond' && late.body), /the relay cannot reach its database to check who you are; try again shortly/);
    // A credential never seen before the outage is refused at once.
    const other = await id.gate.check(gateRequest({ authorization: 'Bearer tunn_nope', accept: 'application/json' }), t);
    assert.equal(other.kind === 'respond' && other.status, 401);
  });

  // Guards: a revocation seen before the outage still applies during it.
  it('keeps refusing a token revoked before the outage', async () => {
    const id = await identityFixture();
    const a = await account(id, 'o@example.com');
    const t: TunnelPolicy = { tunnelId: 't', ownerAccountId: a.id, ownerEmail: a.email, allow: [], public: false };
    const pat = await id.tokens.issue({ accountId: a.id, kind: 'pat', email: a.email });
    const req = gateRequest({ authorization: `Bearer ${pat.token}` });
    assert.equal((await id.gate.check(req, t)).kind, 'allow');
    await id.tokens.revoke(pat.jti);
    const refused = await id.gate.check(req, t);
    assert.equal(refused.kind === 'respond' && refused.status, 401);
    id.store.db.selectFrom = down as never;
    const during = await id.gate.check(req, t);
    assert.equal(during.kind === 'respond' && during.status, 401);
  });
});
