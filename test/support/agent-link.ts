import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ClientHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { account, identityFixture } from '../fixtures/identity.ts';
import { Agent, type AgentConfig } from '../../src/agent/agent.ts';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { ALPN_TUNNEL } from '../../src/protocol/messages.ts';
import { RelayMetrics } from '../../src/relay/metrics.ts';
import { TunnelRegistry, type StreamOpen } from '../../src/relay/registry.ts';
import { Tunnels } from '../../src/relay/tunnels.ts';

// The agent link in one process, real parts on both ends: a TLS listener with ALPN tunn/1 feeding
// tunnels.ts (AgentSession, registration, the in-memory directory), a real token service and store,
// and a real Agent dialling it. Tests open data streams from the relay's side as a public port,
// the HTTP edge or `tunn connect` would.

export const LINK_DOMAIN = 'tunn.localhost';

export interface RelaySide {
  id: Awaited<ReturnType<typeof identityFixture>>;
  directory: TunnelRegistry;
  tunnels: Tunnels;
  server: tls.Server;
  /** The URL an agent dials (the TLS listener's port). */
  relayUrl: string;
  /** PEM of the CA the relay's certificate chains to. */
  relayCa: string;
  /** An agent token of alice@example.com. */
  token: string;
  close(): Promise<void>;
}

export async function startRelaySide(opts: {
  caName: string;
  streamIdleMs?: { tcp: number; udp: number };
  /** Register grants in the identity fixture (the relay's real behaviour); by default a no-op. */
  grants?: boolean;
}): Promise<RelaySide> {
  const id = await identityFixture();
  const ca = await createCa(opts.caName);
  const leaf = await issueLeaf(ca, [LINK_DOMAIN]);
  const directory = new TunnelRegistry();
  let server: tls.Server | undefined;
  const port = () => (server!.address() as AddressInfo).port;
  const tunnels = new Tunnels({
    directory,
    store: id.store,
    tokens: id.tokens,
    clock: id.clock,
    logger: silentLogger(),
    metrics: new RelayMetrics(),
    domain: LINK_DOMAIN,
    urlsFor: (h) => [`https://${h}:${port()}`],
    ...(opts.streamIdleMs ? { streamIdleMs: opts.streamIdleMs } : {}),
  });
  tunnels.setChecks({
    validateAllow: (accountId, allow) => id.policy.validate(accountId, allow),
    registerGrants: opts.grants ? (accountId, host, ref, allow, seconds) => id.grants.registerFor(accountId, host, ref, allow, seconds) : async () => undefined,
    tokenRefused: () => {},
  });
  server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: [ALPN_TUNNEL] }, (s) => tunnels.acceptAgent(s));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const alice = await account(id, 'alice@example.com');
  const token = (await id.tokens.issue({ accountId: alice.id, kind: 'agent', label: 'test' })).token;
  return {
    id,
    directory,
    tunnels,
    server,
    relayUrl: `https://${LINK_DOMAIN}:${port()}`,
    relayCa: ca.certPem,
    token,
    async close() {
      tunnels.closeAll();
      server!.close();
      await id.close();
    },
  };
}

/** An Agent for `relay` with the tests' settings (one session, slow pings, quick backoff); `over` wins. */
export function linkAgent(relay: RelaySide, over: Partial<AgentConfig> & Pick<AgentConfig, 'tunnels'>): Agent {
  return new Agent({
    relayUrl: relay.relayUrl,
    token: relay.token,
    relayCa: relay.relayCa,
    sessions: 1,
    verifyTargetTls: true,
    pingIntervalMs: 60_000,
    pingTimeoutMs: 60_000,
    backoffMinMs: 100,
    backoffMaxMs: 1_000,
    logRequests: false,
    ...over,
  });
}

/** Starts `agent` and resolves with its first `ready` (or rejects with its `fatal`). */
export function startAgent(agent: Agent): Promise<{ host: string; url: string }> {
  const ready = new Promise<{ host: string; url: string }>((r, j) => {
    agent.once('ready', r);
    agent.once('fatal', j);
  });
  agent.start();
  return ready;
}

/**
 * Opens a data stream to `host` from the relay's side, as the relay does (the session adds the
 * relay's headers, e.g. its idle limit). Asserts the tunnel is in the directory first.
 */
export function relayStream(relay: RelaySide, host: string, o: StreamOpen): ClientHttp2Stream {
  const t = relay.directory.get(host);
  assert.ok(t, `${host} is in the directory`);
  return relay.directory.pickSession(t)!.openStream(t, o);
}

/**
 * A TCP target on 127.0.0.1 port 0 answering each chunk with `echo: <chunk>`; `sockets` holds every
 * accepted connection (errors swallowed), `close` destroys them and stops listening.
 */
export async function echoTcpTarget(): Promise<{ port: number; sockets: net.Socket[]; close(): void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(`echo: ${d.toString()}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
