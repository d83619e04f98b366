import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { silentLogger } from '../lib/logger.ts';
import { ALPN_TUNNEL, TARGET_ERROR_HEADER, type StreamKind } from '../protocol/messages.ts';
import { RelayMetrics } from '../relay/metrics.ts';
import { TunnelRegistry } from '../relay/registry.ts';
import { Tunnels } from '../relay/tunnels.ts';
import { Agent } from './agent.ts';
import { parseTarget } from './target.ts';

// Defence in depth for --client-ca (TLS at the agent with client certificates): a stream whose
// TLS the relay ended (`http`, or `tcp` for tls --backend tcp) never asked for a client
// certificate, so the agent refuses it even when a relay falls back anyway (a relay that ignores
// --no-fallback, an older one). Real parts in one process: tunnels.ts (AgentSession) behind a
// TLS listener, the real Agent dialling it, a real TCP target counting connections.

const DOMAIN = 'tunn.localhost';

describe('the agent refuses relay-terminated streams for a --client-ca tunnel', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let directory: TunnelRegistry;
  let tunnels: Tunnels;
  let server: tls.Server;
  let target: net.Server;
  let connections = 0;
  let agent: Agent;
  const notices: string[] = [];

  before(async () => {
    id = await identityFixture();
    const ca = await createCa('tunn client-cert-required test CA');
    const leaf = await issueLeaf(ca, [DOMAIN]);
    directory = new TunnelRegistry();
    const port = () => (server.address() as AddressInfo).port;
    tunnels = new Tunnels({ directory, store: id.store, tokens: id.tokens, clock: id.clock, logger: silentLogger(), metrics: new RelayMetrics(), domain: DOMAIN, urlsFor: (h) => [`https://${h}:${port()}`], streamIdleMs: { tcp: 60_000, udp: 60_000 } });
    tunnels.setChecks({ validateAllow: (accountId, allow) => id.policy.validate(accountId, allow), registerGrants: async () => undefined, tokenRefused: () => {} });
    server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: [ALPN_TUNNEL] }, (s) => tunnels.acceptAgent(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = net.createServer((s) => {
      connections++;
      s.on('error', () => {});
      s.on('data', (d: Buffer) => s.write(`echo: ${d.toString()}`));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const alice = await account(id, 'alice@example.com');
    const token = (await id.tokens.issue({ accountId: alice.id, kind: 'agent', label: 'test' })).token;
    const to = parseTarget(String((target.address() as AddressInfo).port));
    agent = new Agent({
      relayUrl: `https://${DOMAIN}:${port()}`,
      token,
      relayCa: ca.certPem,
      tunnels: [
        { target: to, name: 'guarded', allow: [], public: true, clientCertRequired: true },
        { target: to, name: 'open', allow: [], public: true },
      ],
      sessions: 1,
      verifyTargetTls: true,
      pingIntervalMs: 60_000,
      pingTimeoutMs: 60_000,
      backoffMinMs: 100,
      backoffMaxMs: 1_000,
      logRequests: false,
    });
    agent.on('notice', (m: string) => notices.push(m));
    let ready = 0;
    const both = new Promise((r, j) => {
      agent.on('ready', () => ++ready === 2 && r(undefined));
      agent.once('fatal', j);
    });
    agent.start();
    await both;
  });

  after(async () => {
    agent?.stop();
    tunnels?.closeAll();
    server?.close();
    target?.close();
    await id?.close();
  });

  /** Opens a stream of `kind` as the relay does when it ended TLS itself; resolves with the agent's answer headers. */
  async function open(name: string, kind: StreamKind): Promise<IncomingHttpHeaders> {
    const t = directory.get(`${name}.${DOMAIN}`);
    assert.ok(t, `${name} is in the directory`);
    const s: ClientHttp2Stream = directory.pickSession(t)!.openStream(t, { kind, client: '192.0.2.7', clientPort: 40000 });
    s.on('error', () => {});
    const [headers] = (await once(s, 'response')) as [IncomingHttpHeaders];
    if (Number(headers[':status']) === 200) {
      s.write('hello');
      await once(s, 'data');
    }
    s.destroy();
    return headers;
  }

  it('answers a relay-terminated tcp or http stream 403 FORBIDDEN, and the target never sees a connection; the same stream for a tunnel without it gets through', async () => {
    const before = connections;
    for (const kind of ['tcp', 'http'] as const) {
      const h = await open('guarded', kind);
      assert.equal(h[':status'], 403, `a ${kind} stream is refused`);
      assert.equal(h[TARGET_ERROR_HEADER], 'FORBIDDEN');
    }
    assert.equal(connections, before, 'no connection reached the target');
    assert.ok(notices.some((m) => /guarded\..*--client-ca/.test(m)), `the owner is told why: ${notices.join(' | ')}`);
    // The test can fail: the same kind of stream for a tunnel without --client-ca reaches the target.
    const h = await open('open', 'tcp');
    assert.equal(h[':status'], 200);
    assert.equal(connections, before + 1);
  });
});
