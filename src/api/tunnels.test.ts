import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { RelayMetrics } from '../relay/metrics.ts';
import { TunnelRegistry, type SessionRef, type Tunnel } from '../relay/registry.ts';
import { createTunnelControl } from '../relay/tunnel-control.ts';
import { createApiApp, type ApiApp } from './app.ts';

// /v1/tunnels (`tunn status`, `tunn stop`) in-process, over the relay's real registry.

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
    for (const email of ['alice@example.com', 'mallory@example.com']) {
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
    app = createApiApp(id, { tunnels });
  });
  after(() => id.close());

  it('lists only the caller\'s live tunnels, with every control in force', async () => {
    const a = session('agent-a');
    add('alice@example.com', 'web', 'tunn.localhost', a, { allow: ['group:eng'], basicAuth: { user: 'u', pass: 'p' }, rateLimit: { perTunnel: 600 } }).metrics.requests(200);
    add('mallory@example.com', 'evil', 'tunn.localhost', session('agent-m'), { public: true });
    const r = await req('alice@example.com', 'GET', '/v1/tunnels');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      tunnels: [
        { name: 'web', host: 'web.tunn.localhost', url: 'https://web.tunn.localhost:8443', urls: ['https://web.tunn.localhost:8443'], kind: 'http', allowed: ['group:eng', 'alice@example.com (owner)', 'basic auth (user u)', '600/min for the tunnel'], agents: 1, sessions: 1, since: '2026-03-01T11:00:00.000Z', requests: 1 },
      ],
    });
    assert.equal((await req(undefined, 'GET', '/v1/tunnels')).status, 401);
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
});
