import assert from 'node:assert/strict';
import http from 'node:http';
import type { ClientHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { Agent, type AgentConfig } from '../agent/agent.ts';
import { parseTarget } from '../agent/target.ts';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { silentLogger } from '../lib/logger.ts';
import { ALPN_TUNNEL, TARGET_ERROR_HEADER, type StreamKind } from '../protocol/messages.ts';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry } from './registry.ts';
import { Tunnels } from './tunnels.ts';

// The agent link in one process, with the real parts on both ends: a TLS listener with ALPN
// tunn/1 feeding tunnels.ts (AgentSession, registration, the in-memory directory), the real
// Agent dialling it, a real token service and store, and a real origin.

const DOMAIN = 'tunn.localhost';

describe('agent link (relay sessions, registration, stream kinds)', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let directory: TunnelRegistry;
  let tunnels: Tunnels;
  let server: tls.Server;
  let origin: http.Server;
  let relayCa: string;
  let token: string;
  const agents: Agent[] = [];

  before(async () => {
    id = await identityFixture();
    const ca = await createCa('tunn agent-link test CA');
    const leaf = await issueLeaf(ca, [DOMAIN]);
    relayCa = ca.certPem;
    directory = new TunnelRegistry();
    const port = () => (server.address() as AddressInfo).port;
    tunnels = new Tunnels({ directory, store: id.store, tokens: id.tokens, clock: id.clock, logger: silentLogger(), metrics: new RelayMetrics(), domain: DOMAIN, urlsFor: (h) => [`https://${h}:${port()}`] });
    tunnels.setChecks({
      validateAllow: (accountId, allow) => id.policy.validate(accountId, allow),
      registerGrants: (accountId, host, ref, allow, seconds) => id.grants.registerFor(accountId, host, ref, allow, seconds),
      tokenRefused: () => {},
    });
    server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: [ALPN_TUNNEL] }, (s) => tunnels.acceptAgent(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = http.createServer((req, res) => res.end(`origin saw ${req.method} ${req.url}`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const alice = await account(id, 'alice@example.com');
    token = (await id.tokens.issue({ accountId: alice.id, kind: 'agent', label: 'test' })).token;
  });

  after(async () => {
    for (const a of agents) a.stop();
    tunnels.closeAll();
    server.close();
    origin.close();
    await id.close();
  });

  function agent(over: Partial<AgentConfig> = {}, name = 'web'): Agent {
    const a = new Agent({
      relayUrl: `https://${DOMAIN}:${(server.address() as AddressInfo).port}`,
      token,
      relayCa,
      tunnels: [{ target: parseTarget(String((origin.address() as AddressInfo).port)), kind: 'http', name, allow: [], public: true }],
      sessions: 1,
      verifyTargetTls: true,
      pingIntervalMs: 60_000,
      pingTimeoutMs: 60_000,
      backoffMinMs: 100,
      backoffMaxMs: 1_000,
      logRequests: false,
      ...over,
    });
    agents.push(a);
    a.start();
    return a;
  }

  const once = <T>(a: Agent, ev: 'ready' | 'fatal'): Promise<T> => new Promise((r) => a.once(ev, r as never));

  /** Opens a data stream of `kind` from the relay's side; returns its status, error header and bytes. */
  async function openStream(host: string, kind: StreamKind, send: string): Promise<{ status: number; code: string | undefined; body: string }> {
    const t = directory.get(host);
    assert.ok(t, `${host} is in the directory`);
    const s: ClientHttp2Stream = directory.pickSession(t)!.openStream(t, { kind, client: '192.0.2.7' });
    s.end(send);
    const [headers] = (await new Promise((r) => s.once('response', (h) => r([h])))) as [Record<string, unknown>];
    let body = '';
    s.setEncoding('latin1').on('data', (d: string) => (body += d));
    await new Promise((r) => s.once('close', r));
    return { status: Number(headers[':status']), code: headers[TARGET_ERROR_HEADER] as string | undefined, body };
  }

  it('registers the tunnel and carries an http stream to the target', async () => {
    const a = agent();
    const ready = await once<{ host: string; url: string }>(a, 'ready');
    assert.equal(ready.host, `web.${DOMAIN}`);
    const r = await openStream(ready.host, 'http', 'GET /hello HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
    assert.match(r.body, /^HTTP\/1\.1 200 OK[\s\S]*origin saw GET \/hello$/);
  });

  it('refuses a stream of a kind the agent does not serve with a typed code, and keeps serving', async () => {
    const host = `web.${DOMAIN}`;
    const debug: string[] = [];
    agents[0]!.on('debug', (m) => debug.push(m));
    // A kind from a newer relay (every kind this agent knows has a handler).
    const r = await openStream(host, 'quic' as StreamKind, 'datagrams');
    assert.ok(debug.some((m) => /refused a data stream of kind quic for web\.tunn\.localhost: this agent does not serve it/.test(m)), debug.join('\n'));
    assert.deepEqual({ status: r.status, code: r.code, body: r.body }, { status: 501, code: 'STREAM_KIND', body: '' });
    assert.equal((await openStream(host, 'http', 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n')).status, 200);
  });

  // Guards take-over: a second agent of the same account takes the name; the first is told
  // (REPLACED, fatal) and new streams go to the new agent only.
  it('lets a second agent of the same account take the name over, telling the first', async () => {
    const first = agents[0]!;
    const replaced = once<Error & { code?: string }>(first, 'fatal');
    const second = agent();
    await once(second, 'ready');
    const err = await replaced;
    assert.equal(err.code, 'REPLACED');
    assert.match(err.message, /taken over by another agent of alice@example\.com/);
    const t = directory.get(`web.${DOMAIN}`)!;
    assert.equal(t.agentId, second.agentId);
    assert.equal((await openStream(t.host, 'http', 'GET /again HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n')).status, 200);
  });

  it('refuses a hello with a token the relay did not issue, for good', async () => {
    const a = agent({ token: 'tunn_not-a-token' }, 'other');
    const err = await once<Error & { code?: string }>(a, 'fatal');
    assert.equal(err.code, 'AUTH_INVALID_TOKEN');
    assert.equal(directory.get(`other.${DOMAIN}`), undefined);
  });

  it('answers a tunnel option the relay refuses with the field and what to do, for good', async () => {
    const a = agent({ tunnels: [{ target: parseTarget('1'), kind: 'http', name: 'bad', allow: ['group:nope'], public: false }] }, 'bad');
    const err = await once<Error & { code?: string }>(a, 'fatal');
    assert.equal(err.code, 'UNKNOWN_GROUP');
    assert.equal(directory.get(`bad.${DOMAIN}`), undefined);
  });
});
