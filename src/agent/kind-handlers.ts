import { isIP } from 'node:net';
import { tunnProxyHeader } from '../lib/proxy-v2.ts';
import type { TunnelOptions } from '../protocol/messages.ts';
import { h2Carrier } from './kinds/carrier.ts';
import { carryTcp, DEFAULT_TCP_IDLE_MS } from './kinds/tcp.ts';
import { carryUdp, DEFAULT_UDP_FLOW_IDLE_MS } from './kinds/udp.ts';
import type { DataStreamRequest, StreamHandlers } from './stream-handlers.ts';
import { localhostAwareLookup } from './target.ts';

// The agent's stream handlers for the kinds that carry more than HTTP (issue 11): `tcp` is one
// TCP connection to the target per stream (a tcp tunnel's bytes, and a tls tunnel's too: raw
// TLS bytes, ClientHello first, when the target terminates TLS; plain bytes when the relay
// did, --backend tcp); `udp` is one flow per stream. The `tls` stream kind is TLS that ends at
// the agent (agent-terminated TLS, src/agent/tls/), not these. What a stream carries was decided by the
// relay; the agent only connects and pipes.

/** What a kind handler needs of a tunnel. */
export interface KindTunnel extends Pick<TunnelOptions, 'proxyProtocol'> {
  id: string;
  target: { host: string; port: number };
  /** Set once the relay registered it. */
  ready?: { host: string };
}

const hostOf = (t: KindTunnel): string => t.ready?.host ?? t.id;

export interface KindHandlerOptions {
  /** Used when the relay does not say (DATA_HEADERS.idleMs; relays before it did not). */
  tcpIdleMs?: number;
  udpFlowIdleMs?: number;
  /** A connection ended badly (the target refused, …): the owner hears it. */
  onTargetError?(host: string, message: string): void;
}

/** The PROXY v2 header for a stream, when the tunnel asked for one. */
export function proxyHeaderFor(t: KindTunnel, req: DataStreamRequest): Buffer | undefined {
  if (!t.proxyProtocol) return undefined;
  const family = isIP(req.clientIp);
  if (!family) return undefined;
  // The agent does not know which relay address the client dialled: the destination is the
  // unspecified address of the client's family (a target that needs it reads the authority TLV).
  return tunnProxyHeader({
    transport: 'tcp',
    source: { address: req.clientIp, port: req.clientPort ?? 0 },
    destination: { address: family === 6 ? '::' : '0.0.0.0', port: 0 },
    authority: hostOf(t),
    email: req.email,
    assertion: req.assertion,
  });
}

export function kindStreamHandlers<T extends KindTunnel>(o: KindHandlerOptions = {}): StreamHandlers<T> {
  const tcp = (stream: Parameters<NonNullable<StreamHandlers<T>['tcp']>>[0], t: T, req: DataStreamRequest): void => {
    const carrier = h2Carrier(stream);
    const refuse = carrier.refuse.bind(carrier);
    carrier.refuse = (r) => {
      o.onTargetError?.(hostOf(t), r.message);
      refuse(r);
    };
    void carryTcp(carrier, { target: t.target, idleTimeoutMs: req.idleMs ?? o.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS, proxyHeader: proxyHeaderFor(t, req), lookup: localhostAwareLookup as never });
  };
  return {
    tcp,
    udp: (stream, t, req) => void carryUdp(h2Carrier(stream), { target: t.target, idleTimeoutMs: req.idleMs ?? o.udpFlowIdleMs ?? DEFAULT_UDP_FLOW_IDLE_MS }),
  };
}
