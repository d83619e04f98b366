import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { UDP_SOCKET_BUFFER, UdpFlows } from '../protocol/udp-flows.ts';
import type { PortTunnel, PortTunnelLookup } from './public-port-tunnel.ts';

// A public UDP port on the relay (`tunn udp 51820 -n wg --public` → udp://relay:20007): each
// client flow (source address and port) becomes one stream to the tunnel's agent, datagrams as
// RFC 9297 capsules (src/protocol/udp-flows.ts). UDP sources can be spoofed, so per-IP limits
// bound nothing: flows are capped per port (tunnel) and across the relay (a FlowBudget shared by
// every UDP port), and the relay never answers on its own. The only datagrams a client receives
// are those the target sent back on that client's flow, byte for byte: no refusal, no error,
// no amplification by the relay.

/** The relay-wide cap on UDP flows, shared by all public UDP ports. */
export class FlowBudget {
  readonly max: number;
  open = 0;
  constructor(max: number) {
    this.max = max;
  }
}

export interface PublicUdpPortOptions {
  port: number;
  host: string;
  tunnel: PortTunnelLookup;
  budget: FlowBudget;
  /** Open flows on this port at once (default 1000). */
  maxFlows?: number;
  /** A flow with no datagram either way for this long ends (default 60 s). */
  flowIdleMs?: number;
  /** The largest datagram carried either way (default 65507). */
  maxDatagram?: number;
  /** Datagrams held per flow while its stream opens (default 64); more are dropped. */
  maxPending?: number;
  /** Datagrams are dropped while this much is queued on a flow's stream (default 1 MiB). */
  maxQueuedBytes?: number;
}

export class PublicUdpPort {
  readonly #o: PublicUdpPortOptions;
  readonly #socket: dgram.Socket;
  #flows: UdpFlows<PortTunnel> | undefined;

  constructor(o: PublicUdpPortOptions, type: 'udp4' | 'udp6' = o.host.includes(':') ? 'udp6' : 'udp4') {
    this.#o = o;
    // Buffers big enough for bursts at tens of thousands of datagrams/s from all clients at once
    // (the kernel caps them at net.core.rmem_max / wmem_max); the default ~200 KiB overflowed.
    this.#socket = dgram.createSocket({ type, recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER });
    // Errors of a send to one client (ICMP unreachable, …) do not concern the others.
    this.#socket.on('error', () => {});
  }

  async listen(): Promise<number> {
    const o = this.#o;
    const flows = new UdpFlows<PortTunnel>({
      idleMs: o.flowIdleMs ?? 60_000,
      maxDatagram: o.maxDatagram,
      maxPending: o.maxPending,
      maxQueuedBytes: o.maxQueuedBytes,
      admit: (peer, open) => {
        const t = o.tunnel();
        // Nothing is sent back to a refused source: it may not be who it claims to be.
        if (!t) return { refused: 'tunnel-offline' };
        const refuse = (reason: string): { refused: string } => (t.metrics.drop(reason), { refused: reason });
        if (!t.admits(peer.address)) return refuse('allow-ip');
        // One port serves one tunnel, so the port's flows are the tunnel's.
        if (open >= (o.maxFlows ?? 1000)) return refuse('flow-limit');
        if (o.budget.open >= o.budget.max) return refuse('flow-limit-relay');
        return t;
      },
      open: (peer, t) => t.open({ address: peer.address, port: peer.port }),
      send: (payload, peer) => this.#socket.send(payload, peer.port, peer.address),
      on: {
        start: (t) => {
          o.budget.open++;
          t.metrics.flows++;
          t.metrics.flowsOpen++;
        },
        end: (t) => {
          o.budget.open--;
          t.metrics.flowsOpen--;
        },
        in: (t, n) => {
          t.metrics.datagramsIn++;
          t.metrics.bytesIn += n;
        },
        out: (t, n) => {
          t.metrics.datagramsOut++;
          t.metrics.bytesOut += n;
        },
        drop: (t, reason) => t.metrics.drop(reason),
        openFailed: (t) => t.metrics.drop('open-failed'),
      },
    });
    this.#flows = flows;
    this.#socket.on('message', (msg, rinfo) => flows.receive(msg, rinfo));
    this.#socket.bind(o.port, o.host);
    await once(this.#socket, 'listening');
    return this.port;
  }

  get port(): number {
    return (this.#socket.address() as AddressInfo).port;
  }

  get flows(): number {
    return this.#flows?.size ?? 0;
  }

  async close(): Promise<void> {
    this.#flows?.close();
    await new Promise<void>((r) => this.#socket.close(() => r()));
  }
}
