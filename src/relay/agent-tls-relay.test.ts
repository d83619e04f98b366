import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { RelayZone } from '../dns/relay-zone.ts';
import { ManualClock } from '../lib/clock.ts';
import { createLogger } from '../lib/logger.ts';
import type { ControlMessage, TunnelOptions } from '../protocol/messages.ts';
import type { RecordEvent } from '../auth/events.ts';
import { isAgentReported } from '../auth/event-kinds.ts';
import { AGENT_EVENT_WINDOW_MS, AGENT_EVENTS_PER_WINDOW, AgentTlsRelay } from './agent-tls-relay.ts';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry } from './registry.ts';
import type { SessionRef } from './tunnel-directory.ts';
import type { SplicedStream } from '../lib/splice.ts';
import type { TunnError } from '../lib/errors.ts';

// The relay's half of agent-terminated TLS, on the real tunnel directory and the relay's real
// DNS zone. The agent sessions are stand-ins that record what the relay sends them.

const ZONE = 'relay.test';

function session(agentId: string): SessionRef & { sent: ControlMessage[] } {
  const sent: ControlMessage[] = [];
  return {
    id: `s-${agentId}`,
    agentId,
    alive: true,
    sent,
    openStream: () => {
      throw new Error('no streams here');
    },
    replaced: () => {},
    refuse: () => {},
    send: (m) => void sent.push(m),
  };
}

function setup(perWeek = 20, onEndsChanged?: (host: string) => void, recordEvent?: (e: RecordEvent) => void) {
  const directory = new TunnelRegistry();
  const metrics = new RelayMetrics();
  const zone = new RelayZone({ domain: ZONE, publicIps: ['127.0.0.1'] });
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const relay = new AgentTlsRelay({ directory, identity: () => undefined, policyOf: () => { throw new Error('unused'); }, clock, logger: createLogger({ level: 'silent', json: true }), dns01: zone, dns01PerWeek: perWeek, idleTimeoutMs: 1000, onEndsChanged, recordEvent });
  const attach = (s: SessionRef, name: string, over: Partial<TunnelOptions> = {}) =>
    directory.attach({ id: 't0', host: `${name}.${ZONE}`, name, domain: ZONE, accountId: `acct-${s.agentId}`, email: `${s.agentId}@x.test`, agentId: s.agentId, options: { id: 't0', allow: [], public: false, tlsEnds: 'agent', ...over }, metrics: metrics.forTunnel(`${name}.${ZONE}`) }, s, clock.now());
  return { directory, zone, clock, relay, attach };
}

const reply = (s: { sent: ControlMessage[] }) => s.sent.at(-1) as Extract<ControlMessage, { type: 'tls-reply' }>;

describe('AgentTlsRelay', () => {
  // Security property: an agent cannot put security events into the list of a host (and its owner) it does not hold.
  it('records agent-reported security events only for the host of that session’s own tunnel, worded by the relay, owned by the tunnel’s account', () => {
    const recorded: RecordEvent[] = [];
    const { relay, attach } = setup(20, undefined, (e) => void recorded.push(e));
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    relay.onEvent(a, { type: 'agent-event', id: 't0', event: { host: `alpha.${ZONE}:443`, kind: 'host_mismatch', ip: '203.0.113.9' } });
    assert.deepEqual(recorded, [{ kind: 'host_mismatch', ip: '203.0.113.9', email: undefined, tunnel: `alpha.${ZONE}`, accountId: 'acct-a', detail: 'reported by the agent (TLS ends there; address and email as the agent says, unverified): a request’s Host named another server than its TLS handshake (421)' }]);
    assert.ok(isAgentReported(recorded[0]!.detail), 'marked as the agent’s word: `tunn events` shows its address and email as agent-said');
    // Agent a names b's host, an unknown host, or its own host under another tunnel id: nothing is recorded.
    relay.onEvent(a, { type: 'agent-event', id: 't0', event: { host: `beta.${ZONE}`, kind: 'login_failed', ip: '203.0.113.9' } });
    relay.onEvent(a, { type: 'agent-event', id: 't0', event: { host: `nobody.${ZONE}`, kind: 'login_failed', ip: '203.0.113.9' } });
    relay.onEvent(a, { type: 'agent-event', id: 't1', event: { host: `alpha.${ZONE}`, kind: 'login_failed', ip: '203.0.113.9' } });
    assert.equal(recorded.length, 1);
    // A tunnel whose TLS ends at the relay: the relay saw its refusals itself; an agent cannot add any.
    const c = session('c');
    attach(c, 'gamma', { tlsEnds: 'relay' });
    relay.onEvent(c, { type: 'agent-event', id: 't0', event: { host: `gamma.${ZONE}`, kind: 'rate_limited', ip: '203.0.113.9' } });
    assert.equal(recorded.length, 1);
    relay.onEvent(b, { type: 'agent-event', id: 't0', event: { host: `beta.${ZONE}`, kind: 'basic_auth_failed', ip: '::1', email: 'Bob@X.test' } });
    assert.deepEqual([recorded[1]!.accountId, recorded[1]!.email, recorded[1]!.tunnel], ['acct-b', 'bob@x.test', `beta.${ZONE}`]);
  });

  it('rate-limits agent-reported events per session and window', () => {
    const recorded: RecordEvent[] = [];
    const { relay, attach, clock } = setup(20, undefined, (e) => void recorded.push(e));
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    const ev = (s: SessionRef, name: string) => relay.onEvent(s, { type: 'agent-event', id: 't0', event: { host: `${name}.${ZONE}`, kind: 'rate_limited', ip: '203.0.113.9' } });
    for (let i = 0; i < AGENT_EVENTS_PER_WINDOW + 25; i++) ev(a, 'alpha');
    assert.equal(recorded.length, AGENT_EVENTS_PER_WINDOW);
    // Another session has its own budget.
    ev(b, 'beta');
    assert.equal(recorded.length, AGENT_EVENTS_PER_WINDOW + 1);
    clock.advance(AGENT_EVENT_WINDOW_MS);
    ev(a, 'alpha');
    assert.equal(recorded.length, AGENT_EVENTS_PER_WINDOW + 2, 'a new window');
  });

  // Guards memory: an agent reconnecting over and over (each time a new session) must not leave
  // one event window per session ever seen.
  it('drops a session’s event window when the session closes', () => {
    const { relay, attach } = setup(20, undefined, () => {});
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    relay.onEvent(a, { type: 'agent-event', id: 't0', event: { host: `alpha.${ZONE}`, kind: 'rate_limited', ip: '203.0.113.9' } });
    relay.onEvent(b, { type: 'agent-event', id: 't0', event: { host: `beta.${ZONE}`, kind: 'rate_limited', ip: '203.0.113.9' } });
    assert.equal(relay.eventWindowCount, 2);
    relay.onClosed(a);
    assert.equal(relay.eventWindowCount, 1, 'only the closed session’s window goes');
    relay.onClosed(b);
    assert.equal(relay.eventWindowCount, 0);
  });

  // Security property: an account cannot multiply its budget of agent-reported (unverified) events by opening sessions.
  it('caps agent-reported events per account too, across all its sessions', () => {
    const recorded: RecordEvent[] = [];
    const { relay, directory, clock } = setup(20, undefined, (e) => void recorded.push(e));
    const metrics = new RelayMetrics();
    const sessions = [0, 1, 2].map((i) => ({ ...session('same'), id: `s-same-${i}` }));
    // One account, three tunnels each on its own session (as three agents or a reconnecting one would have).
    sessions.forEach((s, i) => directory.attach({ id: 't0', host: `n${i}.${ZONE}`, name: `n${i}`, domain: ZONE, accountId: 'acct-same', email: 'same@x.test', agentId: `same${i}`, options: { id: 't0', allow: [], public: false, tlsEnds: 'agent' }, metrics: metrics.forTunnel(`n${i}.${ZONE}`) }, s, clock.now()));
    for (const [i, s] of sessions.entries()) for (let k = 0; k < AGENT_EVENTS_PER_WINDOW; k++) relay.onEvent(s, { type: 'agent-event', id: 't0', event: { host: `n${i}.${ZONE}`, kind: 'login_failed', ip: '203.0.113.9' } });
    assert.equal(recorded.length, AGENT_EVENTS_PER_WINDOW, 'one account’s budget, not one per session');
    clock.advance(AGENT_EVENT_WINDOW_MS);
    relay.onEvent(sessions[2]!, { type: 'agent-event', id: 't0', event: { host: `n2.${ZONE}`, kind: 'login_failed', ip: '203.0.113.9' } });
    assert.equal(recorded.length, AGENT_EVENTS_PER_WINDOW + 1, 'a new window');
  });

  // Security property: no agent can have the relay publish a DNS-01 record for a name it does not hold (it could get a certificate for it).
  it('publishes _acme-challenge TXT records only for names the asking agent holds with TLS at the agent', async () => {
    const { relay, zone, attach } = setup();
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 1, request: { op: 'dns01-present', recordName: `_acme-challenge.alpha.${ZONE}`, value: 'ok' } });
    assert.equal(reply(a).error, undefined);
    assert.deepEqual(zone.records(`_acme-challenge.alpha.${ZONE}`).map((r) => r.value), ['ok']);
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 2, request: { op: 'dns01-present', recordName: `_acme-challenge.beta.${ZONE}`, value: 'stolen' } });
    assert.equal(reply(a).rid, 2);
    assert.equal(reply(a).error?.code, 'FORBIDDEN');
    assert.match(reply(a).error!.message, /does not hold a tunnel for beta\.relay\.test/);
    assert.deepEqual(zone.records(`_acme-challenge.beta.${ZONE}`), []);
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 3, request: { op: 'dns01-present', recordName: '_acme-challenge.example.com', value: 'x' } });
    assert.match(reply(a).error!.message, /only ask for _acme-challenge\.<its name> under relay\.test/);
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 4, request: { op: 'dns01-cleanup', recordName: `_acme-challenge.alpha.${ZONE}`, value: 'ok' } });
    assert.deepEqual(zone.records(`_acme-challenge.alpha.${ZONE}`), []);
  });

  it('a tunnel whose TLS ends at the relay gets no DNS-01 and no routing to its agent', async () => {
    const { relay, zone, attach } = setup();
    const a = session('a');
    attach(a, 'plain', { tlsEnds: 'relay' });
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 1, request: { op: 'dns01-present', recordName: `_acme-challenge.plain.${ZONE}`, value: 'x' } });
    assert.equal(reply(a).error?.code, 'FORBIDDEN');
    assert.deepEqual(zone.records(`_acme-challenge.plain.${ZONE}`), []);
    assert.equal(relay.agentAnswersAlpnChallenge(`plain.${ZONE}`), false);
    assert.equal(relay.tlsEndsAtAgent(`plain.${ZONE}`), false);
  });

  // Security property: an agent's state report cannot route another agent's visitors to it.
  it('routes TLS to the agent only after its own tls-state says agent; another agent’s report for that name is ignored', () => {
    const { relay, attach } = setup();
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    assert.equal(relay.tlsEndsAtAgent(`alpha.${ZONE}`), false, 'fallback until the agent is ready');
    assert.equal(relay.agentAnswersAlpnChallenge(`alpha.${ZONE}`), true);
    relay.onState(b, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'agent', pin: 'evil' } });
    assert.equal(relay.tlsEndsAtAgent(`alpha.${ZONE}`), false);
    assert.equal(relay.stateOf(`alpha.${ZONE}`), undefined);
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `ALPHA.${ZONE}.`, terminatedAt: 'agent', pin: 'p', notAfter: 1 } });
    assert.equal(relay.tlsEndsAtAgent(`alpha.${ZONE}`), true);
    assert.equal(relay.stateOf(`alpha.${ZONE}`)?.pin, 'p');
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'relay', reason: 'CA down' } });
    assert.equal(relay.tlsEndsAtAgent(`alpha.${ZONE}`), false, 'back to relay termination when the agent says so');
  });

  // Security property: other relays of a cluster route a name's raw TLS by its lease, which follows
  // these calls; a report from an agent that does not hold the name changes nothing.
  it('tells onEndsChanged each time whether TLS ends at the agent changes, and only then', () => {
    const changed: string[] = [];
    const { relay, attach } = setup(20, (h) => changed.push(h));
    const a = session('a');
    const b = session('b');
    attach(a, 'alpha');
    attach(b, 'beta');
    relay.onState(b, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'agent', pin: 'evil' } });
    assert.deepEqual(changed, []);
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'agent', pin: 'p' } });
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'agent', pin: 'p2' } });
    assert.deepEqual(changed, [`alpha.${ZONE}`]);
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'relay', reason: 'CA down' } });
    assert.deepEqual(changed, [`alpha.${ZONE}`, `alpha.${ZONE}`]);
  });

  // Security property: raw TLS another relay carried here reaches the agent only when TLS ends
  // there, and --allow-ip applies to the visitor's address the link carries.
  it('carryCarriedTls refuses a name whose TLS does not end at its agent (NOT_FOUND) and a visitor off --allow-ip (FORBIDDEN)', () => {
    const { relay, attach } = setup();
    const a = session('a');
    attach(a, 'alpha', { allowIps: ['10.0.0.0/8'] });
    const link = {} as SplicedStream; // never touched: both calls refuse before using it
    assert.throws(() => relay.carryCarriedTls(link, `alpha.${ZONE}`, { address: '10.1.2.3', port: 1 }), (e: TunnError) => e.code === 'NOT_FOUND' && /no tunnel with TLS at its agent/.test(e.message));
    relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `alpha.${ZONE}`, terminatedAt: 'agent', pin: 'p' } });
    assert.throws(() => relay.carryCarriedTls(link, `alpha.${ZONE}`, { address: '192.0.2.7', port: 1 }), (e: TunnError) => e.code === 'FORBIDDEN' && /192\.0\.2\.7 is not on the --allow-ip list of alpha\.relay\.test/.test(e.message));
  });

  // A tls --backend tcp tunnel's connections are TCP: the relay carries them with --tcp-idle, and tells the agent (which
  // carries them on to the target) the same limit on each `tls` stream; an HTTP tunnel's stay on --idle-timeout.
  it('sends --tcp-idle on the tls streams of a tls --backend tcp tunnel, not on an HTTP tunnel’s', async () => {
    const directory = new TunnelRegistry();
    const metrics = new RelayMetrics();
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const relay = new AgentTlsRelay({ directory, identity: () => undefined, policyOf: () => { throw new Error('unused'); }, clock, logger: createLogger({ level: 'silent', json: true }), idleTimeoutMs: 1000, tcpIdleMs: 7_200_000 });
    const opened: { host: string; idleMs?: number; kind: string }[] = [];
    const a = { ...session('a'), openStream: (t: { host: string }, o: { kind: string; idleMs?: number }) => {
      opened.push({ host: t.host, kind: o.kind, idleMs: o.idleMs });
      throw new Error('recorded');
    } } as SessionRef;
    const attach = (name: string, over: Partial<TunnelOptions>) =>
      directory.attach({ id: 't0', host: `${name}.${ZONE}`, name, domain: ZONE, accountId: 'acct-a', email: 'a@x.test', agentId: 'a', options: { id: 't0', allow: [], public: true, tlsEnds: 'agent', tlsFallback: false, ...over }, metrics: metrics.forTunnel(`${name}.${ZONE}`) }, a, clock.now());
    attach('db', { kind: 'tls', backend: 'tcp' });
    attach('web', {});
    const srv = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      for (const name of ['db', 'web']) {
        const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1').on('error', () => {});
        const closed = new Promise((r) => c.once('close', r));
        const [sock] = (await once(srv, 'connection')) as [net.Socket];
        relay.carryTls(sock, `${name}.${ZONE}`, '127.0.0.1');
        await closed;
      }
    } finally {
      srv.close();
    }
    assert.deepEqual(opened, [{ host: `db.${ZONE}`, kind: 'tls', idleMs: 7_200_000 }, { host: `web.${ZONE}`, kind: 'tls', idleMs: undefined }]);
  });

  it('--no-fallback sends the name’s TLS to the agent before it is ready (visitors then fail the handshake)', () => {
    const { relay, attach } = setup();
    attach(session('a'), 'strict', { tlsFallback: false });
    assert.equal(relay.tlsEndsAtAgent(`strict.${ZONE}`), true);
  });

  // Security property: `tunn tls --backend tcp --terminate-at agent` has no gate at the agent (plain bytes), so a
  // private one is never routed by SNI (only `tunn connect`, which checks the user here, reaches it); a public one is.
  it('routes a tls --backend tcp tunnel’s TLS to its agent only when it is --public; a private one still gets its certificate', async () => {
    const { relay, zone, attach } = setup();
    const a = session('a');
    attach(a, 'pub', { kind: 'tls', backend: 'tcp', public: true });
    attach(a, 'priv', { kind: 'tls', backend: 'tcp', allow: ['ann@x.test'], tlsFallback: false });
    for (const name of ['pub', 'priv']) relay.onState(a, { type: 'tls-state', id: 't0', state: { name: `${name}.${ZONE}`, terminatedAt: 'agent', pin: 'p' } });
    assert.equal(relay.tlsEndsAtAgent(`pub.${ZONE}`), true);
    assert.equal(relay.tlsEndsAtAgent(`priv.${ZONE}`), false, 'a private tls tunnel is not routed by SNI, even ready and with --no-fallback');
    assert.throws(() => relay.carryCarriedTls({} as SplicedStream, `priv.${ZONE}`, { address: '10.1.2.3', port: 1 }), (e: TunnError) => e.code === 'NOT_FOUND');
    // Its certificate still comes by DNS-01 through the relay, and it is listed like any agent-terminated name.
    assert.equal(relay.agentAnswersAlpnChallenge(`priv.${ZONE}`), true);
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 1, request: { op: 'dns01-present', recordName: `_acme-challenge.priv.${ZONE}`, value: 'ok' } });
    assert.equal(reply(a).error, undefined);
    assert.deepEqual(zone.records(`_acme-challenge.priv.${ZONE}`).map((r) => r.value), ['ok']);
    assert.deepEqual(relay.reports().map((r) => [r.name, r.terminatedAt]).sort(), [[`priv.${ZONE}`, 'agent'], [`pub.${ZONE}`, 'agent']]);
  });

  // Security property: the relay signs assertions, redeems hand-off codes and reads sessions only for that agent's hosts.
  it('decisions, hand-offs, sessions and sign-outs for a host the agent does not hold are refused (FORBIDDEN)', async () => {
    const { relay, attach } = setup();
    const a = session('a');
    attach(a, 'alpha');
    attach(session('b'), 'beta');
    const others = [
      { op: 'decide', host: `beta.${ZONE}`, credential: { kind: 'session', cookie: 'c' }, clientIp: '1.2.3.4', html: true },
      { op: 'redeem', host: `beta.${ZONE}:443`, code: 'c', clientIp: '1.2.3.4' },
      { op: 'session', host: `BETA.${ZONE}`, cookie: 'c' },
      { op: 'logout', host: `beta.${ZONE}`, cookie: 'c' },
    ] as const;
    for (const request of others) {
      await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 9, request });
      assert.equal(reply(a).error?.code, 'FORBIDDEN', request.op);
      assert.match(reply(a).error!.message, /for beta\.relay\.test: this agent does not hold a tunnel for that host/);
    }
    // Its own host passes the scope check (identity is not up in this test: "starting").
    await relay.onRequest(a, 'acct-a', { type: 'tls-request', rid: 10, request: { op: 'session', host: `alpha.${ZONE}`, cookie: 'c' } });
    assert.equal(reply(a).error?.code, 'UNAVAILABLE');
  });

  it('counts DNS-01 challenges per account per week and says when the next one is possible', async () => {
    const { relay, attach, clock } = setup(2);
    const a = session('a');
    attach(a, 'alpha');
    const present = (rid: number) => relay.onRequest(a, 'acct-a', { type: 'tls-request', rid, request: { op: 'dns01-present', recordName: `_acme-challenge.alpha.${ZONE}`, value: `v${rid}` } });
    await present(1);
    await present(2);
    assert.equal(relay.dns01Remaining('acct-a'), 0);
    await present(3);
    assert.equal(reply(a).error?.code, 'RATE_LIMITED');
    assert.match(reply(a).error!.message, /used their 2 DNS-01 challenges for this week; the next one is possible at 2026-01-08/);
    clock.advance(7 * 86_400_000 + 1);
    await present(4);
    assert.equal(reply(a).error, undefined);
  });
});
