import { once } from 'node:events';
import http2, { type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { h2Carrier } from '../../src/agent/kinds/carrier.ts';
import { carryTcp } from '../../src/agent/kinds/tcp.ts';
import { carryUdp } from '../../src/agent/kinds/udp.ts';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { CONNECT_ALPN, readConnectRequest } from '../../src/protocol/connect.ts';
import { agentServerOptions } from '../../src/protocol/h2-options.ts';
import { refusalResponse, type Refusal } from '../../src/protocol/stream-refusal.ts';

// The relay's side of tunn-connect/1 as a small in-test server: TLS with ALPN tunn-connect/1, the
// check and carry requests of src/protocol/connect.ts, and each carried stream handed to the
// agent's own kind handlers (tcp.ts, udp.ts) towards a real target. It is the protocol contract
// the relay implements in phase 2, not a mock of it: tests of `tunn connect` run against it.

export interface ContractServer {
  url: string;
  caPem: string;
  /** token → the email it signs in as; a token not here is refused as unauthenticated. */
  tokens: Map<string, string>;
  /** Emails allowed on the tunnel; change it to revoke. */
  allowed: Set<string>;
  /** Carried streams opened so far. */
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
  const h2 = http2.createServer(agentServerOptions);
  const state = { tokens: new Map<string, string>(), allowed: new Set<string>(), carried: 0 };
  const live = new Map<ServerHttp2Stream, string>();
  const refuse = (s: ServerHttp2Stream, r: Refusal): void => {
    const { headers, body } = refusalResponse(r);
    s.respond(headers);
    s.end(body);
  };
  h2.on('stream', (s, headers) => {
    s.on('error', () => {});
    const r = readConnectRequest(headers);
    if (!r.ok) return refuse(s, { reason: 'bad_request', message: r.message });
    const email = state.tokens.get(r.request.token);
    if (!email) return refuse(s, { reason: 'unauthenticated', message: 'your sign-in is not valid (revoked or expired): run `tunn login`' });
    if (r.request.host !== o.host) return refuse(s, { reason: 'not_found', message: `no tunnel ${r.request.host} is online` });
    if (!state.allowed.has(email)) return refuse(s, { reason: 'forbidden', message: `${email} is not on the allow-list of ${o.host}: ask its owner to add you (-a ${email})` });
    if (r.method === 'check') {
      s.respond({ ':status': 200, 'content-type': 'application/json' });
      return s.end(JSON.stringify({ allowed: true, host: o.host, tunnelKind: o.tunnelKind, email }));
    }
    state.carried++;
    live.set(s, email);
    s.once('close', () => live.delete(s));
    if (r.request.kind === 'udp') void carryUdp(h2Carrier(s), { target: o.target });
    else void carryTcp(h2Carrier(s), { target: o.target });
  });
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, ALPNProtocols: [CONNECT_ALPN] }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    h2.emit('connection', socket);
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(state, {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caPem: ca.certPem,
    cut: (email: string) => {
      let n = 0;
      for (const [s, e] of live) if (e === email && !s.closed) (s.close(http2.constants.NGHTTP2_CANCEL), n++);
      return n;
    },
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  });
}
