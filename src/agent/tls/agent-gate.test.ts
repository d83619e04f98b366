import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { after, before, describe, it } from 'node:test';
import { AgentDecisionPoint, type DecisionSource } from '../../auth/agent-decisions.ts';
import type { GateDecision, TunnelPolicy } from '../../auth/gate.ts';
import { RateLimiter } from '../../auth/rate-limit.ts';
import { ManualClock } from '../../lib/clock.ts';
import { account, gateRequest, identityFixture, RELAY_URL } from '../../../test/fixtures/identity.ts';
import { AgentGate, DECISION_TTL_MS, type AgentTunnelPolicy } from './agent-gate.ts';

// The agent's gate against the relay's real decision point (in-process: SQLite store, the
// relay's Gate, sessions, hand-off codes, groups). Phase 2 puts the control stream between them.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const HOST = 'app.tunn.localhost';
const HTML = 'text/html,application/xhtml+xml';

const hdr = (d: GateDecision, name: string): string | undefined => (d.kind === 'respond' ? d.headers.find(([n]) => n === name)?.[1] : undefined);
const setHdr = (d: GateDecision, name: string): string | undefined => (d.kind === 'allow' ? d.setHeaders.find(([n]) => n === name)?.[1] : undefined);
const status = (d: GateDecision): number => (d.kind === 'respond' ? d.status : 200);
/** An HTTPS request at the agent (TLS ends there). */
const req = (over: Parameters<typeof gateRequest>[0] = {}) => gateRequest({ host: HOST, secure: true, ...over });

describe('agent gate (TLS ends at the agent, the relay decides)', () => {
  let id: Id;
  let owner: { id: string; email: string };
  let relayPolicy: TunnelPolicy;
  let point: AgentDecisionPoint;
  const agentTunnel: AgentTunnelPolicy = { tunnelId: 't1', public: false };
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
    relayPolicy = { tunnelId: 't1', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['friend@example.com', 'group:eng'], public: false, host: HOST };
    point = new AgentDecisionPoint({ gate: id.gate, handoff: id.handoff, sessions: id.sessions, policyFor: (h) => (h === HOST ? relayPolicy : undefined) });
  });
  after(() => id.close());

  function agentGate(source: DecisionSource = point.forAgent((h) => h === HOST), over: Partial<ConstructorParameters<typeof AgentGate>[0]> = {}) {
    const clock = new ManualClock(id.clock.now());
    return { clock, gate: new AgentGate({ source, relayUrl: RELAY_URL, clock, rateLimiter: new RateLimiter({ clock }), ...over }) };
  }

  /** Signs `email` in at the relay, hands off to HOST through the agent; returns the agent's cookie line. */
  async function signedIn(gate: AgentGate, email: string, path = '/dash?x=1'): Promise<string> {
    const a = await account(id, email);
    const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
    const url = new URL(await id.handoff.start(session, new URL(`https://${HOST}${path}`)));
    const d = await gate.check(req({ path: url.pathname + url.search }), agentTunnel);
    assert.equal(status(d), 302);
    assert.equal(hdr(d, 'location'), path);
    const cookie = hdr(d, 'set-cookie')!;
    // Security: the agent's own host-only cookie (the __Host- prefix forbids Domain).
    assert.match(cookie, /^__Host-tunn=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/);
    return cookie.split(';')[0]!;
  }

  it('sends a browser without a session to the relay login with this URL; an API client gets 401', async () => {
    const { gate } = agentGate();
    const d = await gate.check(req({ accept: HTML, path: '/a/b?c=d' }), agentTunnel);
    assert.equal(status(d), 302);
    assert.equal(hdr(d, 'location'), `${RELAY_URL}/login?return=${encodeURIComponent(`https://${HOST}/a/b?c=d`)}`);
    assert.equal(status(await gate.check(req({ accept: 'application/json' }), agentTunnel)), 401);
  });

  it('redeems the one-time hand-off code once, sets its own cookie, and allows with the email and a relay-signed assertion', async () => {
    const { gate } = agentGate();
    const cookie = await signedIn(gate, 'friend@example.com');
    const d = await gate.check(req({ cookie, path: '/dash' }), agentTunnel);
    assert.equal(d.kind, 'allow');
    assert.equal(setHdr(d, 'tunn-user-email'), 'friend@example.com');
    // Security: the target can verify the assertion with the relay's keys, for this host only.
    const { payload } = await jwtVerify(setHdr(d, 'tunn-jwt-assertion')!, createLocalJWKSet(id.tokens.jwks()), { issuer: RELAY_URL, audience: `https://${HOST}`, currentDate: new Date(id.clock.now()) });
    assert.equal(payload.email, 'friend@example.com');
  });

  it('refuses a used hand-off code (one-time)', async () => {
    const { gate } = agentGate();
    const a = await account(id, 'friend@example.com');
    const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
    const url = new URL(await id.handoff.start(session, new URL(`https://${HOST}/`)));
    assert.equal(status(await gate.check(req({ path: url.pathname + url.search }), agentTunnel)), 302);
    const again = await gate.check(req({ path: url.pathname + url.search }), agentTunnel);
    assert.equal(status(again), 400);
    assert.match(String(again.kind === 'respond' && again.body), /no longer valid/);
  });

  it('answers 403 with the relay’s page for a signed-in visitor the policy refuses', async () => {
    const { gate } = agentGate();
    const cookie = await signedIn(gate, 'stranger@example.com');
    const d = await gate.check(req({ cookie, accept: HTML }), agentTunnel);
    assert.equal(status(d), 403);
    assert.match(String(d.kind === 'respond' && d.body), /stranger@example\.com<\/strong>, and this account is not allowed/);
  });

  it('a group change bites within 5 s (cached at most DECISION_TTL_MS)', async () => {
    // Security: the agent caches the relay's decision for at most 5 s.
    const { gate, clock } = agentGate();
    await id.groups.create(owner.id, 'eng', ['eve@example.com']);
    after(() => id.groups.delete(owner.id, 'eng').catch(() => {}));
    const cookie = await signedIn(gate, 'eve@example.com');
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow');
    await id.groups.remove(owner.id, 'eng', ['eve@example.com']);
    clock.advance(DECISION_TTL_MS - 1);
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow', 'within the cache lifetime');
    clock.advance(1);
    assert.equal(status(await gate.check(req({ cookie }), agentTunnel)), 403, 'refused once the cached answer is 5 s old');
  });

  it('a revoked session is sent to sign in again within 5 s, its cookie cleared', async () => {
    // Security: revocation at the relay reaches agent-terminated hosts within 5 s.
    const { gate, clock } = agentGate();
    const cookie = await signedIn(gate, 'friend@example.com');
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow');
    const s = await id.sessions.lookup(cookie.split('=')[1], HOST);
    await id.sessions.revokeFamily(s!);
    clock.advance(DECISION_TTL_MS);
    const d = await gate.check(req({ cookie, accept: HTML }), agentTunnel);
    assert.equal(status(d), 302);
    assert.match(hdr(d, 'location')!, /\/login\?return=/);
    assert.match(hdr(d, 'set-cookie')!, /^__Host-tunn=; .*Max-Age=0/);
  });

  it('fails closed: no answer from the relay past the cached one → 503, and an answer that never comes → 503', async () => {
    // Security: without a decision younger than 5 s nobody is let in.
    let up = true;
    const real = point.forAgent((h) => h === HOST);
    const flaky: DecisionSource = { ...real, decide: (q) => (up ? real.decide(q) : Promise.reject(new Error('control stream closed'))) };
    const errors: unknown[] = [];
    const { gate, clock } = agentGate(flaky, { onError: (e) => errors.push(e) });
    const cookie = await signedIn(gate, 'friend@example.com');
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow');
    up = false;
    clock.advance(1000);
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow', 'a fresh cached answer still holds');
    clock.advance(DECISION_TTL_MS);
    const d = await gate.check(req({ cookie, accept: HTML }), agentTunnel);
    assert.equal(status(d), 503);
    assert.match(String(d.kind === 'respond' && d.body), /lets no one in/);
    assert.equal(errors.length, 1);
    const silent: DecisionSource = { ...real, decide: () => new Promise(() => {}) };
    const g2 = agentGate(silent, { decisionTimeoutMs: 50 });
    assert.equal(status(await g2.gate.check(req({ cookie }), agentTunnel)), 503);
    assert.equal(await g2.gate.stillAllowed(HOST, { kind: 'session', cookie: cookie.split('=')[1]! }, '127.0.0.1'), false);
  });

  it('basic auth and rate limits are enforced at the agent with the relay’s steps, and recorded as security events with their request', async () => {
    const recorded: string[] = [];
    const { gate } = agentGate(undefined, { record: (e, r) => recorded.push(`${e.kind} ${r.host} ${r.clientIp}`) });
    const t: AgentTunnelPolicy = { tunnelId: 't2', public: true, basicAuth: { user: 'u', pass: 'p' }, rateLimit: { perIp: 2 } };
    assert.equal(status(await gate.check(req({ authorization: `Basic ${Buffer.from('u:wrong').toString('base64')}` }), t)), 401);
    const ok = await gate.check(req({ authorization: `Basic ${Buffer.from('u:p').toString('base64')}` }), t);
    assert.equal(ok.kind, 'allow');
    assert.deepEqual(ok.kind === 'allow' && ok.removeHeaders, ['authorization']);
    assert.equal(status(await gate.check(req(), t)), 429);
    const r = req();
    assert.deepEqual(recorded, [`basic_auth_failed ${r.host} ${r.clientIp}`, `rate_limited ${r.host} ${r.clientIp}`]);
    // A bad hand-off code too.
    assert.equal(status(await gate.check(req({ path: '/.tunn/auth/callback?code=nope' }), agentTunnel)), 400);
    assert.equal(recorded.at(-1), `login_failed ${r.host} ${r.clientIp}`);
  });

  it('logout is POST-only from this origin with the form token, and signs out the whole family', async () => {
    const { gate } = agentGate();
    const cookie = await signedIn(gate, 'friend@example.com');
    const page = await gate.check(req({ cookie, path: '/.tunn/logout' }), agentTunnel);
    assert.equal(status(page), 200);
    const token = /csrf=([A-Za-z0-9_-]+)/.exec(String(page.kind === 'respond' && page.body))![1]!;
    assert.equal((await gate.check(req({ cookie }), agentTunnel)).kind, 'allow', 'GET changed nothing');
    // Security: a sibling origin cannot sign the visitor out.
    const cross = await gate.check(req({ cookie, method: 'POST', path: `/.tunn/logout?csrf=${token}`, headers: [['origin', 'https://evil.tunn.localhost']] }), agentTunnel);
    assert.equal(status(cross), 403);
    const out = await gate.check(req({ cookie, method: 'POST', path: `/.tunn/logout?csrf=${token}`, headers: [['origin', `https://${HOST}`]] }), agentTunnel);
    assert.equal(status(out), 200);
    assert.match(hdr(out, 'set-cookie')!, /Max-Age=0/);
    assert.equal(await id.sessions.lookup(cookie.split('=')[1], HOST), undefined, 'the relay revoked the session');
    assert.equal(status(await gate.check(req({ cookie }), agentTunnel)), 401, 'not served from the cache after sign-out');
  });
});

describe('relay decision point for agents (pure functions, in-process)', () => {
  let id: Id;
  let point: AgentDecisionPoint;
  let owner: { id: string; email: string };
  before(async () => {
    id = await identityFixture();
    owner = await account(id, 'owner@example.com');
    const policy = (host: string): TunnelPolicy => ({ tunnelId: host, ownerAccountId: owner.id, ownerEmail: owner.email, allow: [], public: false, host });
    point = new AgentDecisionPoint({ gate: id.gate, handoff: id.handoff, sessions: id.sessions, policyFor: policy });
  });
  after(() => id.close());

  it('refuses decisions, assertions, hand-off codes and sign-outs for a host the agent does not hold', async () => {
    // Security: an agent cannot get an assertion or a session for another agent's host.
    const mine = point.forAgent((h) => h === 'mine.tunn.localhost');
    const { session } = await id.sessions.create({ accountId: owner.id, email: owner.email, host: new URL(RELAY_URL).host });
    const theirs = new URL(await id.handoff.start(session, new URL('https://theirs.tunn.localhost/'))).searchParams.get('code')!;
    await assert.rejects(mine.redeem({ host: 'theirs.tunn.localhost', code: theirs, clientIp: '127.0.0.1' }), { code: 'FORBIDDEN' });
    // Presented as its own host, the code is bound to the other one: not redeemed.
    assert.equal(await mine.redeem({ host: 'mine.tunn.localhost', code: theirs, clientIp: '127.0.0.1' }), undefined);
    await assert.rejects(mine.decide({ host: 'Theirs.tunn.localhost.:443', credential: { kind: 'session', cookie: 'x'.repeat(43) }, clientIp: '127.0.0.1', html: false }), { code: 'FORBIDDEN' });
    await assert.rejects(mine.logout({ host: 'theirs.tunn.localhost', cookie: 'x' }), { code: 'FORBIDDEN' });
    await assert.rejects(mine.session({ host: 'theirs.tunn.localhost', cookie: 'x' }), { code: 'FORBIDDEN' });
  });

  it('signs an assertion only for a visitor it verified: the owner with a session of that host', async () => {
    const mine = point.forAgent((h) => h === 'mine.tunn.localhost');
    const { session } = await id.sessions.create({ accountId: owner.id, email: owner.email, host: new URL(RELAY_URL).host });
    const code = new URL(await id.handoff.start(session, new URL('https://mine.tunn.localhost/'))).searchParams.get('code')!;
    const r = await mine.redeem({ host: 'mine.tunn.localhost', code, clientIp: '127.0.0.1' });
    assert.ok(r);
    const ok = await mine.decide({ host: 'mine.tunn.localhost', credential: { kind: 'session', cookie: r.cookieValue }, clientIp: '127.0.0.1', html: false });
    assert.equal(ok.kind, 'allow');
    const forged = await mine.decide({ host: 'mine.tunn.localhost', credential: { kind: 'session', cookie: 'A'.repeat(43) }, clientIp: '127.0.0.1', html: false });
    assert.equal(forged.kind, 'sign-in');
    const badToken = await mine.decide({ host: 'mine.tunn.localhost', credential: { kind: 'bearer', token: 'not.a.token' }, clientIp: '127.0.0.1', html: false });
    assert.equal(badToken.kind === 'refuse' && badToken.status, 401);
  });
});
