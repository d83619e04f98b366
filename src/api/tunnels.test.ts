import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createDomain, updateDomainShares } from '../domains/records.ts';
import { RelayMetrics } from '../relay/metrics.ts';
import { TunnelRegistry, type SessionRef, type Tunnel } from '../relay/registry.ts';
import { createTunnelControl } from '../relay/tunnel-control.ts';
import { createApiApp, type ApiApp } from './app.ts';

// /v1/tunnels (`tunn status`, `tunn stop`, the console's Tunnels page) and /v1/tunnels/events
// in-process, over the relay's real registry.

/** An agent session as the registry sees it; records what the relay tells the agent. */
function session(agentId: string): SessionRef & { told: string[] } {
  const told: string[] = [];
  return { id: `s-${agentId}`, agentId, alive: true, openStream: () => { throw new Error('no data streams in this test'); }, told, replaced: () => {}, refuse: (id, code, message) => void told.push(`${id} ${code} ${message}`), send: () => {} };
}

describe('/v1/tunnels', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let app: ApiApp;
  const registry = new TunnelRegistry();
  const metrics = new RelayMetrics();
  const cut: string[] = [];
  /** The one open public connection in this test: bound to alice's web tunnel. */
  let openOn: Tunnel | undefined;
  const headers: Record<string, Record<string, string>> = {};
  const req = (who: string | undefined, method: string, path: string) => app.request(path, { method, headers: who ? headers[who] : {} }, { clientIp: '192.0.2.10' });
  const owner: Record<string, { id: string; email: string }> = {};
  const add = (email: string, name: string, domain: string, s: SessionRef, options: Partial<Tunnel['options']> = {}) =>
    registry.attach({ id: `t-${name}.${domain}`, host: `${name}.${domain}`, name, domain, accountId: owner[email]!.id, email, agentId: s.agentId, options: { id: `t-${name}`, allow: [], public: false, ...options }, metrics: metrics.forTunnel(`${name}.${domain}`) }, s, Date.parse('2026-03-01T11:00:00Z'));

  before(async () => {
    id = await identityFixture();
    for (const email of ['alice@example.com', 'mallory@example.com', 'bob@partner.test']) {
      owner[email] = await account(id, email);
      const { token } = await id.tokens.issue({ accountId: owner[email]!.id, kind: 'pat', email, label: 'test' });
      headers[email] = { authorization: `Bearer ${token}` };
    }
    const tunnels = createTunnelControl({
      directory: registry,
      gateways: [{ open: [], cut: (match) => (openOn && match({ principals: [], tunnel: openOn }) ? (cut.push(openOn.host), 1) : 0) }],
      urlsFor: (h) => [`https://${h}:8443`],
      onStopped: () => {},
    });
    app = createApiApp(id, { tunnels, tunnelEvents: { pollMs: 20, heartbeatMs: 60 } });
    // alice's custom domain, shared with bob: bob sees (read-only) the tunnels on it.
    await createDomain(id.store, { accountId: owner['alice@example.com']!.id, acmeId: 'acme-alice', domain: 'shop.example.test', relayDomain: 'tunn.localhost' });
    await updateDomainShares(id.store, 'shop.example.test', () => ['bob@partner.test']);
  });
  after(() => id.close());

  it('lists only the caller\'s live tunnels, with every control in force and its counters', async () => {
    const a = session('agent-a');
    const web = add('alice@example.com', 'web', 'tunn.localhost', a, { allow: ['group:eng'], basicAuth: { user: 'u', pass: 'p' }, rateLimit: { perTunnel: 600 } });
    web.metrics.requests(200);
    web.metrics.bytesIn += 120;
    web.metrics.bytesOut += 4096;
    add('mallory@example.com', 'evil', 'tunn.localhost', session('agent-m'), { public: true });
    const r = await req('alice@example.com', 'GET', '/v1/tunnels');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      tunnels: [
        {
          name: 'web',
          host: 'web.tunn.localhost',
          domain: 'tunn.localhost',
          url: 'https://web.tunn.localhost:8443',
          urls: ['https://web.tunn.localhost:8443'],
          kind: 'http',
          owner: 'alice@example.com',
          allow: ['group:eng'],
          public: false,
          allowed: ['group:eng', 'alice@example.com (owner)', 'basic auth (user u)', '600/min for the tunnel'],
          agents: 1,
          sessions: 1,
          since: '2026-03-01T11:00:00.000Z',
          requests: 1,
          bytesIn: 120,
          bytesOut: 4096,
          access: 'owner',
        },
      ],
    });
    assert.equal((await req(undefined, 'GET', '/v1/tunnels')).status, 401);
  });

  // Security property: a domain shared with you shows its tunnels read-only; stopping one is
  // refused by the API (only the tunnel's owner may), and other accounts' tunnels stay unseen.
  it('a shared domain\'s tunnels are visible to whom it is shared with, read-only', async () => {
    add('alice@example.com', 'cart', 'shop.example.test', session('agent-c'), { public: true });
    const seen = (await (await req('bob@partner.test', 'GET', '/v1/tunnels')).json()) as { tunnels: { host: string; access: string; owner: string }[] };
    assert.deepEqual(seen.tunnels.map((t) => [t.host, t.access, t.owner]), [['cart.shop.example.test', 'domain', 'alice@example.com']]);
    const refused = await req('bob@partner.test', 'DELETE', '/v1/tunnels/cart.shop.example.test');
    assert.equal(refused.status, 403);
    assert.match(JSON.stringify(await refused.json()), /cart\.shop\.example\.test is alice@example\.com's tunnel on a domain you can see; only its owner can stop it/);
    assert.ok(registry.get('cart.shop.example.test'), 'still live');
    const mallory = (await (await req('mallory@example.com', 'GET', '/v1/tunnels')).json()) as { tunnels: { host: string }[] };
    assert.deepEqual(mallory.tunnels.map((t) => t.host), ['evil.tunn.localhost']);
  });

  // Security property: owner-only. Another account can neither see nor stop a tunnel, and the
  // answer does not tell it whether the name is live.
  it('stop: another account gets "no live tunnel"; the owner closes it, the agent is told why, connections are cut', async () => {
    const refused = await req('mallory@example.com', 'DELETE', '/v1/tunnels/web');
    assert.equal(refused.status, 404);
    assert.match(JSON.stringify(await refused.json()), /you have no live tunnel named web: `tunn status` lists yours/);
    assert.ok(registry.get('web.tunn.localhost'));
    openOn = registry.get('web.tunn.localhost')!;
    const s = openOn.sessions[0] as SessionRef & { told: string[] };
    const ok = await req('alice@example.com', 'DELETE', '/v1/tunnels/web');
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { stopped: { host: string }[] }).stopped[0]!.host, 'web.tunn.localhost');
    assert.equal(registry.get('web.tunn.localhost'), undefined);
    assert.deepEqual(s.told, ['t-web.tunn.localhost STOPPED the tunnel web.tunn.localhost was stopped with `tunn stop` by alice@example.com']);
    assert.equal((await req('alice@example.com', 'DELETE', '/v1/tunnels/web')).status, 404, 'stopped once: gone');
    assert.deepEqual(cut, ['web.tunn.localhost']);
    assert.ok(registry.get('evil.tunn.localhost'), 'the other account\'s tunnel is untouched');
  });

  it('stop: a name on two of your domains asks for the full host', async () => {
    const s = session('agent-b');
    add('alice@example.com', 'app', 'tunn.localhost', s);
    add('alice@example.com', 'app', 'shop.example.test', s);
    const r = await req('alice@example.com', 'DELETE', '/v1/tunnels/app');
    assert.equal(r.status, 409);
    assert.match(JSON.stringify(await r.json()), /app names 2 of your tunnels \(app\.shop\.example\.test, app\.tunn\.localhost\): give the full host/);
    assert.equal((await req('alice@example.com', 'DELETE', '/v1/tunnels/app.shop.example.test')).status, 200);
    assert.ok(registry.get('app.tunn.localhost'));
  });

  // Security property: the events stream shows the same set as GET /v1/tunnels (nothing of
  // another account's), and ends when the token it was opened with is revoked.
  it('events: a snapshot, then up / updated / down for the caller\'s tunnels only, heartbeats, and the end on revocation', async () => {
    const { token, jti } = await id.tokens.issue({ accountId: owner['alice@example.com']!.id, kind: 'pat', email: 'alice@example.com', label: 'console' });
    const res = await app.request('/v1/tunnels/events', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = sseReader(res);
    const snap = await events.next('snapshot');
    assert.ok((snap.tunnels as { host: string }[]).every((t) => !t.host.startsWith('evil.')), 'nothing of mallory\'s');
    const s = session('agent-sse');
    add('mallory@example.com', 'other', 'tunn.localhost', session('agent-m2'));
    const t = add('alice@example.com', 'live', 'tunn.localhost', s);
    assert.equal(((await events.next('up')).tunnel as { host: string }).host, 'live.tunn.localhost');
    t.metrics.requests(200);
    const updated = (await events.next('updated')).tunnel as { host: string; requests: number };
    assert.deepEqual([updated.host, updated.requests], ['live.tunn.localhost', 1]);
    registry.detach(s);
    assert.deepEqual(await events.next('down'), { host: 'live.tunn.localhost' });
    assert.ok(await events.next('heartbeat'));
    await id.tokens.revoke(jti);
    assert.match(String((await events.next('end')).reason), /revoked or expired/);
    assert.equal(await events.closed(), true);
    assert.ok(!events.seen.some((e) => JSON.stringify(e.data).includes('other.tunn.localhost')), 'mallory\'s tunnel never appears');
  });

  // Security property: a console (cookie) stream ends when the browser session is signed out.
  it('events: a console stream over the session cookie ends when the session is signed out', async () => {
    const alice = owner['alice@example.com']!;
    const { cookieValue, session: s } = await id.sessions.create({ accountId: alice.id, email: alice.email, host: new URL(RELAY_URL).host });
    const res = await app.request('/v1/tunnels/events', { headers: { cookie: `tunn=${cookieValue}`, 'sec-fetch-site': 'same-origin' } });
    assert.equal(res.status, 200);
    const events = sseReader(res);
    await events.next('snapshot');
    assert.ok(await events.next('heartbeat'));
    await id.sessions.revokeFamily(s);
    assert.match(String((await events.next('end')).reason), /revoked or expired/);
    assert.equal(await events.closed(), true);
    // And from another site the stream does not open at all.
    const foreign = await app.request('/v1/tunnels/events', { headers: { cookie: `tunn=${cookieValue}`, 'sec-fetch-site': 'same-site' } });
    assert.equal(foreign.status, 403);
  });
});

/** Reads server-sent events from a response: next(name) waits (up to 10 s) for the next event of that name. */
function sseReader(res: Response) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const seen: { event: string; data: Record<string, unknown> }[] = [];
  let buffer = '';
  let ended = false;
  let cursor = 0;
  const pump = async (): Promise<boolean> => {
    const { value, done } = await reader.read();
    if (done) {
      ended = true;
      return false;
    }
    buffer += value;
    let i: number;
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      seen.push({ event, data: JSON.parse(data) as Record<string, unknown> });
    }
    return true;
  };
  const deadline = () => Date.now() + 10_000;
  return {
    seen,
    async next(name: string): Promise<Record<string, unknown>> {
      const until = deadline();
      for (;;) {
        while (cursor < seen.length) {
          const e = seen[cursor++]!;
          if (e.event === name) return e.data;
        }
        if (ended || Date.now() > until) throw new Error(`no "${name}" event; saw ${JSON.stringify(seen.map((e) => e.event))}`);
        await pump();
      }
    },
    async closed(): Promise<boolean> {
      while (!ended) await pump();
      return true;
    },
  };
}
