import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AgentDecisionPoint } from '../../auth/agent-decisions.ts';
import { RateLimiter } from '../../auth/rate-limit.ts';
import { ManualClock } from '../../lib/clock.ts';
import type { KeyAndCert } from '../../certs/dev-ca.ts';
import { account, identityFixture, RELAY_URL } from '../../../test/fixtures/identity.ts';
import { parseTarget } from '../target.ts';
import { AgentGate, DECISION_TTL_MS } from './agent-gate.ts';
import { agentHttpHandler } from './agent-http.ts';
import { TlsContexts } from './contexts.ts';
import { TlsTerminator } from './terminator.ts';
import { leaf, passthrough, rawRequest, testCa, visitor } from './testing.ts';

// The whole agent side on loopback: a visitor's TLS → terminator → agent gate (asking the
// relay's real decision point) → the local target. Real sockets, a real SQLite store.

const HOST = 'app.tunn.localhost';
type Id = Awaited<ReturnType<typeof identityFixture>>;

describe('agent-terminated HTTP: gate, headers, keep-alive, WebSocket', () => {
  let id: Id;
  let ca: KeyAndCert;
  let port: number;
  let clock: ManualClock;
  let handler: ReturnType<typeof agentHttpHandler>;
  const seen: IncomingHttpHeaders[] = [];
  before(async () => {
    id = await identityFixture();
    const owner = await account(id, 'owner@example.com');
    const point = new AgentDecisionPoint({ gate: id.gate, handoff: id.handoff, sessions: id.sessions, policyFor: (h) => (h === HOST ? { tunnelId: 't1', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['friend@example.com'], public: false, host: HOST } : undefined) });
    const target = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ path: req.url })));
    });
    target.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    clock = new ManualClock(id.clock.now());
    const gate = new AgentGate({ source: point.forAgent((h) => h === HOST), relayUrl: RELAY_URL, clock, rateLimiter: new RateLimiter({ clock }) });
    handler = agentHttpHandler({ gate, tunnel: { tunnelId: 't1', public: false }, target: parseTarget(`127.0.0.1:${(target.address() as AddressInfo).port}`), recheckMs: 60_000 });
    ca = await testCa();
    const contexts = new TlsContexts();
    contexts.set(HOST, await leaf(ca, [HOST, 'other.tunn.localhost']));
    const t = new TlsTerminator({ contexts, handler });
    const pt = await passthrough((s) => t.accept(s, '203.0.113.5'));
    port = pt.port;
    closeAll = async () => {
      handler.close();
      t.close();
      await pt.close();
      target.close();
      await id.close();
    };
  });
  let closeAll = async (): Promise<void> => {};
  after(() => closeAll());

  async function cookieFor(email: string): Promise<string> {
    const a = await account(id, email);
    const { session } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
    const url = new URL(await id.handoff.start(session, new URL(`https://${HOST}/`)));
    const s = await visitor(port, { servername: HOST, ca: ca.certPem });
    const r = await rawRequest(s, `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`);
    s.destroy();
    assert.equal(r.status, 302);
    return /set-cookie: (__Host-tunn=[^;]+)/i.exec(r.headers)![1]!;
  }

  it('gives the target the verified email and assertion, never inbound copies (any spelling), nor tunn’s cookie', async () => {
    // Security: inbound Tunn-* (and X-Forwarded-*) are dropped at the agent as at the relay.
    const cookie = await cookieFor('friend@example.com');
    const s = await visitor(port, { servername: HOST, ca: ca.certPem });
    seen.length = 0;
    const r = await rawRequest(s, `GET /x HTTP/1.1\r\nhost: ${HOST}\r\ncookie: a=1; ${cookie}\r\nTunn-User-Email: boss@example.com\r\ntunn_user_email: boss@example.com\r\nTUNN-JWT-ASSERTION: forged\r\nx-forwarded-for: 10.0.0.1\r\n\r\n`);
    s.destroy();
    assert.equal(r.status, 200);
    const h = seen[0]!;
    assert.equal(h['tunn-user-email'], 'friend@example.com');
    assert.notEqual(h['tunn-jwt-assertion'], 'forged');
    assert.match(String(h['tunn-jwt-assertion']), /^ey/);
    assert.equal(h['tunn_user_email'], undefined);
    assert.equal(h['x-forwarded-for'], '203.0.113.5');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h.cookie, 'a=1');
  });

  it('checks every request of a kept-alive connection: a revocation bites within 5 s on the same connection', async () => {
    const cookie = await cookieFor('friend@example.com');
    const s = await visitor(port, { servername: HOST, ca: ca.certPem });
    const ask = () => rawRequest(s, `GET /k HTTP/1.1\r\nhost: ${HOST}\r\ncookie: ${cookie}\r\naccept: application/json\r\n\r\n`);
    assert.equal((await ask()).status, 200);
    await id.sessions.revokeFamily((await id.sessions.lookup(cookie.split('=')[1], HOST))!);
    clock.advance(DECISION_TTL_MS);
    assert.equal((await ask()).status, 401, 'same connection, next request: refused');
    s.destroy();
  });

  it('refuses a Host other than the name the TLS handshake was for (421)', async () => {
    const s = await visitor(port, { servername: HOST, ca: ca.certPem });
    const r = await rawRequest(s, `GET / HTTP/1.1\r\nhost: other.tunn.localhost\r\n\r\n`);
    s.destroy();
    assert.equal(r.status, 421);
  });

  it('gates a WebSocket when it opens and cuts it once the visitor is no longer allowed', async () => {
    // Security: revocation cuts a live upgraded connection at the agent too.
    const anon = await visitor(port, { servername: HOST, ca: ca.certPem });
    const refused = await rawRequest(anon, `GET /ws HTTP/1.1\r\nhost: ${HOST}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n`).catch(() => ({ status: 0 }));
    assert.equal(refused.status, 401);
    anon.destroy();
    const cookie = await cookieFor('friend@example.com');
    const s = await visitor(port, { servername: HOST, ca: ca.certPem });
    s.write(`GET /ws HTTP/1.1\r\nhost: ${HOST}\r\ncookie: ${cookie}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n`);
    const [head] = (await once(s, 'data')) as [Buffer];
    assert.match(head.toString(), /^HTTP\/1\.1 101/);
    s.write('hello');
    assert.equal(String(((await once(s, 'data')) as [Buffer])[0]), 'hello');
    assert.equal(await handler.recheckLive(), 0, 'still allowed: kept');
    await id.sessions.revokeFamily((await id.sessions.lookup(cookie.split('=')[1], HOST))!);
    clock.advance(DECISION_TTL_MS);
    const closed = once(s, 'close');
    assert.equal(await handler.recheckLive(), 1);
    await closed;
  });

  it('on a public tunnel strips tunn’s own bearer tokens but passes the target’s own Authorization', async () => {
    // Security: a tunn token never reaches a target, public tunnels included.
    const got: (string | undefined)[] = [];
    const target = createServer((req, res) => (got.push(req.headers.authorization), res.end('ok')));
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const clock2 = new ManualClock();
    const never = { decide: () => Promise.reject(new Error('a public tunnel never asks')) } as never;
    const h = agentHttpHandler({ gate: new AgentGate({ source: never, relayUrl: RELAY_URL, clock: clock2, rateLimiter: new RateLimiter({ clock: clock2 }) }), tunnel: { tunnelId: 'pub', public: true }, target: parseTarget(`127.0.0.1:${(target.address() as AddressInfo).port}`), isTunnCredential: (a) => a === 'Bearer tunn-token' });
    const contexts = new TlsContexts();
    contexts.set(HOST, await leaf(ca, [HOST]));
    const t = new TlsTerminator({ contexts, handler: h });
    const pt = await passthrough((s) => t.accept(s, '127.0.0.1'));
    after(async () => (h.close(), t.close(), await pt.close(), target.close()));
    const s = await visitor(pt.port, { servername: HOST, ca: ca.certPem });
    assert.equal((await rawRequest(s, `GET / HTTP/1.1\r\nhost: ${HOST}\r\nauthorization: Bearer tunn-token\r\n\r\n`)).status, 200);
    assert.equal((await rawRequest(s, `GET / HTTP/1.1\r\nhost: ${HOST}\r\nauthorization: Bearer app-token\r\n\r\n`)).status, 200);
    s.destroy();
    assert.deepEqual(got, [undefined, 'Bearer app-token']);
  });
});
