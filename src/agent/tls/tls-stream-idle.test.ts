import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { account, identityFixture } from '../../../test/fixtures/identity.ts';
import { createCa, issueLeaf } from '../../certs/dev-ca.ts';
import { systemClock } from '../../lib/clock.ts';
import { silentLogger } from '../../lib/logger.ts';
import { ALPN_TUNNEL } from '../../protocol/messages.ts';
import { RelayMetrics } from '../../relay/metrics.ts';
import { TunnelRegistry } from '../../relay/registry.ts';
import { Tunnels } from '../../relay/tunnels.ts';
import { Agent } from '../agent.ts';
import { parseTarget } from '../target.ts';
import { agentTerminatedTls } from './serve.ts';
import { leaf, testCa } from './testing.ts';

// `tunn tls --backend tcp --terminate-at agent`: the relay's --tcp-idle reaches the agent on each
// `tls` stream (DATA_HEADERS.idleMs), and the agent's connection to the target follows it, not
// its own default (an hour). Real parts in one process: tunnels.ts (AgentSession) behind a TLS
// listener, the real Agent with its real TLS termination, a TLS client over the stream, a real
// TCP target.

const DOMAIN = 'tunn.localhost';
const RELAY_TCP_IDLE_MS = 400;

describe("agent-terminated tls --backend tcp follows the relay's --tcp-idle", () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let directory: TunnelRegistry;
  let tunnels: Tunnels;
  let server: tls.Server;
  let target: net.Server;
  const targetSockets: net.Socket[] = [];
  let agent: Agent;
  let closeTls: () => void;
  let certCa: string;
  const stateDir = mkdtempSync(join(tmpdir(), 'tunn-tls-idle-'));

  before(async () => {
    id = await identityFixture();
    const ca = await createCa('tunn tls-stream-idle test CA');
    const relayLeaf = await issueLeaf(ca, [DOMAIN]);
    directory = new TunnelRegistry();
    const port = () => (server.address() as AddressInfo).port;
    tunnels = new Tunnels({ directory, store: id.store, tokens: id.tokens, clock: id.clock, logger: silentLogger(), metrics: new RelayMetrics(), domain: DOMAIN, urlsFor: (h) => [`https://${h}:${port()}`], streamIdleMs: { tcp: RELAY_TCP_IDLE_MS, udp: 60_000 } });
    tunnels.setChecks({ validateAllow: (accountId, allow) => id.policy.validate(accountId, allow), registerGrants: async () => undefined, tokenRefused: () => {} });
    server = tls.createServer({ cert: relayLeaf.certPem, key: relayLeaf.keyPem, ALPNProtocols: [ALPN_TUNNEL] }, (s) => tunnels.acceptAgent(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = net.createServer((s) => {
      targetSockets.push(s);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => s.write(`echo: ${d.toString()}`));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const tca = await testCa();
    certCa = tca.certPem;
    const files = await leaf(tca, [`db.${DOMAIN}`]);
    const alice = await account(id, 'alice@example.com');
    const token = (await id.tokens.issue({ accountId: alice.id, kind: 'agent', label: 'test' })).token;
    const to = parseTarget(String((target.address() as AddressInfo).port));
    const t = agentTerminatedTls({
      tunnelId: 't0',
      policy: { tunnelId: 't0', public: true },
      target: to,
      relayUrl: `https://${DOMAIN}:${port()}`,
      stateDir,
      files,
      keepKey: false,
      tcp: { proxyProtocol: false },
      clock: systemClock,
      ask: () => Promise.reject(new Error('unused')),
      report: () => {},
      onState: () => {},
      onError: () => {},
    });
    closeTls = () => t.close();
    agent = new Agent({
      relayUrl: `https://${DOMAIN}:${port()}`,
      token,
      relayCa: ca.certPem,
      tunnels: [{ target: to, kind: 'tls', backend: 'tcp', name: 'db', allow: [], public: true }],
      streamHandlers: t.streamHandlers,
      sessions: 1,
      verifyTargetTls: true,
      pingIntervalMs: 60_000,
      pingTimeoutMs: 60_000,
      backoffMinMs: 100,
      backoffMaxMs: 1_000,
      logRequests: false,
    });
    const ready = new Promise<{ host: string }>((r, j) => {
      agent.once('ready', r);
      agent.once('fatal', j);
    });
    agent.start();
    await t.start((await ready).host, undefined);
  });

  after(async () => {
    closeTls?.();
    agent?.stop();
    tunnels?.closeAll();
    server?.close();
    for (const s of targetSockets) s.destroy();
    target?.close();
    await id?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it(`closes a silent connection to the target after the relay's ${RELAY_TCP_IDLE_MS} ms, sent on the tls stream`, async () => {
    const t = directory.get(`db.${DOMAIN}`);
    assert.ok(t, 'the tunnel is in the directory');
    // As the relay's AgentTlsRelay opens it for a tls --backend tcp tunnel: with the relay's --tcp-idle.
    const stream = directory.pickSession(t)!.openStream(t, { kind: 'tls', client: '192.0.2.7', clientPort: 40000, idleMs: RELAY_TCP_IDLE_MS });
    stream.on('error', () => {});
    await once(stream, 'response');
    const c = tls.connect({ socket: stream as never, servername: `db.${DOMAIN}`, ca: certCa });
    c.on('error', () => {});
    await once(c, 'secureConnect');
    c.write('hi');
    const [answer] = (await once(c, 'data')) as [Buffer];
    assert.equal(answer.toString(), 'echo: hi', 'the connection reached the target (the test can fail)');
    const toTarget = targetSockets.at(-1)!;
    const sent = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const closedAt = await Promise.race([new Promise<number>((r) => toTarget.once('close', () => r(Date.now()))), new Promise<number>((r) => (timer = setTimeout(() => r(-1), 20_000)))]);
    clearTimeout(timer);
    c.destroy();
    assert.notEqual(closedAt, -1, 'the agent ended the silent connection within 20 s (its own default is an hour)');
    assert.ok(closedAt - sent >= RELAY_TCP_IDLE_MS - 100, `not before the relay's limit (${closedAt - sent} ms)`);
  });
});
