import type { SplicedStream } from '../lib/splice.ts';
import type { TunnelMetrics } from './metrics.ts';

// What a public TCP or UDP port (public-tcp.ts, public-udp.ts) needs of the tunnel holding it.
// A port asks for its tunnel on every new connection or flow (the directory lookup by port):
// the agent may be reconnecting, or the tunnel gone, and then the client gets nothing.

export interface ClientAddress {
  address: string;
  port: number;
}

export interface PortTunnel {
  /** The tunnel's host, for logs and metric labels. */
  readonly host: string;
  readonly metrics: TunnelMetrics;
  /** The tunnel's --allow-ip list (true when it has none). */
  admits(ip: string): boolean;
  /**
   * Opens a stream to the tunnel's agent for this client (kind-ports.ts: the session's
   * openStream(tunnel, { kind, client })). Rejects when the agent refuses (its target is down…).
   */
  open(client: ClientAddress): Promise<SplicedStream>;
}

/** The port's lookup: the live tunnel that holds this port now, if any. */
export type PortTunnelLookup = () => PortTunnel | undefined;
