import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { h2Carrier } from '../../src/agent/kinds/carrier.ts';
import { carryTcp } from '../../src/agent/kinds/tcp.ts';
import { carryUdp } from '../../src/agent/kinds/udp.ts';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { CONNECT_ALPN } from '../../src/protocol/connect.ts';
import { agentServerOptions } from '../../src/protocol/h2-options.ts';
import { splicedH2Stream } from '../../src/protocol/h2-stream.ts';
import { ConnectServer } from '../../src/relay/connect-server.ts';
import { startH2Pair } from './h2-pair.ts';

// The relay's side of tunn-connect/1 on loopback: TLS with ALPN tunn-connect/1 and the relay's
// own ConnectServer (src/relay/connect-server.ts), whose dependencies are small here — a token
// table, one tunnel, an allow-list set — and whose agent is a real HTTP/2 pair running the
// agent's kind handlers (tcp.ts, udp.ts) towards a real target. Phase 2 gives ConnectServer the
// relay's real authentication, directory and policy; tests of `tunn connect` run against this.

export interface ContractServer {
  url: string;
  caPem: string;
  /** token → the email it signs in as; a token not here is refused as unauthenticated. */
  tokens: Map<string, string>;
  /** Emails allowed on the tunnel; change it to revoke. */
  allowed: Set<string>;
  /** Carried streams opened to the agent so far. */
  carried: number;
  /** Resets the live carried streams of `email`, as the relay does on revocation; returns how many. */
  cut(email: string): number;
  /** Drops every connection to the server (a relay restart, a network cut). */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startContractServer(o: { host: string; tunnelKind: 'tcp' | 'udp' | 'tls'; target: { host: string; port: number } }): Promise<ContractServer> {
  const ca = await createCa('tunn connect contract test CA');
  const leaf = await issueLeaf(ca, ['relay.test', 'localhost', '127.0.0.1']);
  const agent = await startH2Pair((s) => void (o.tunnelKind === 'udp' ? carryUdp(h2Carrier(s), { target: o.target }) : carryTcp(h2Carrier(s), { target: o.target })));
  const tokens = new Map<string, string>();
  const allowed = new Set<string>();
  let carried = 0;
  const server = new ConnectServer({
    idleTimeoutMs: 60_000,
    authenticate: async (token) => {
      const email = tokens.get(token);
      return email ? { email } : { reason: 'unauthenticated', message: 'your sign-in is not valid (revoked or expired): run `tunn login`' };
    },
    tunnel: (host) => (host === o.host ? { host, kind: o.tunnelKind } : undefined),
    decide: async (p, t) => (allowed.has(p.email) ? undefined : { reason: 'forbidden', message: `${p.email} is not on the allow-list of ${t.host}: ask its owner to add you (-a ${p.email})` }),
    open: async () => {
      carried++;
      const { req, answer } = await agent.open();
      return answer.open ? splicedH2Stream(req) : answer.refusal;
    },
  });
  const h2 = http2.createServer(agentServerOptions);
  server.attach(h2);
  const sockets = new Set<tls.TLSSocket>();
  const listener = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, ALPNProtocols: [CONNECT_ALPN] }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    h2.emit('connection', socket);
  });
  listener.on('tlsClientError', () => {});
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const dropConnections = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    url: `https://127.0.0.1:${(listener.address() as AddressInfo).port}`,
    caPem: ca.certPem,
    tokens,
    allowed,
    get carried() {
      return carried;
    },
    cut: (email) => server.cut((p) => p.email === email),
    dropConnections,
    async close() {
      dropConnections();
      await new Promise<void>((r) => listener.close(() => r()));
      await agent.close();
    },
  };
}
