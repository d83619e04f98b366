import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import { carryConnection } from './carry-connection.ts';
import type { PortTunnelLookup } from './public-port-tunnel.ts';

// A public TCP port on the relay (`tunn tcp 25565 -n mc --public` → tcp://relay:20007): each
// accepted connection becomes one stream to the tunnel's agent. Public means anyone can connect,
// so the port bounds what anyone can hold: connections per tunnel and per client IP, and the
// tunnel's --allow-ip. A connection that cannot be carried (no live tunnel, a limit, the agent's
// target refuses) is reset at once; no byte is sent to it.

export interface PublicTcpPortOptions {
  port: number;
  /** Listen address (the relay's --listen). */
  host: string;
  tunnel: PortTunnelLookup;
  /** Open connections on this port (its tunnel) at once; default 1000. */
  maxConnections?: number;
  /** Open connections from one client IP at once; default 100. */
  maxConnectionsPerIp?: number;
  /** Close a connection silent both ways this long (the relay's --idle-timeout). */
  idleTimeoutMs: number;
  /** Told when a connection ends or is refused (the relay's log). */
  onConnection?(e: { client: string; outcome: string }): void;
}

export class PublicTcpPort {
  readonly #o: PublicTcpPortOptions;
  readonly #server: net.Server;
  readonly #open = new Set<Socket>();
  readonly #perIp = new Map<string, number>();

  constructor(o: PublicTcpPortOptions) {
    this.#o = o;
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => void this.#accept(s));
  }

  async listen(): Promise<number> {
    this.#server.listen(this.#o.port, this.#o.host);
    await once(this.#server, 'listening');
    return this.port;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Stops listening and closes the live connections (the tunnel is gone for good). */
  async close(): Promise<void> {
    const closed = new Promise((r) => this.#server.close(r));
    for (const s of this.#open) s.destroy();
    await closed;
  }

  async #accept(socket: Socket): Promise<void> {
    const ip = socket.remoteAddress ?? '';
    const client = { address: ip, port: socket.remotePort ?? 0 };
    const t = this.#o.tunnel();
    const refuse = (reason: string): void => {
      t?.metrics.drop(reason);
      // A reset, as a port with nothing behind it would answer: the client learns at once.
      socket.resetAndDestroy();
      this.#o.onConnection?.({ client: `${ip}:${client.port}`, outcome: reason });
    };
    socket.on('error', () => {});
    if (!t) return refuse('tunnel-offline');
    if (!t.admits(ip)) return refuse('allow-ip');
    if (this.#open.size >= (this.#o.maxConnections ?? 1000)) return refuse('connection-limit');
    if ((this.#perIp.get(ip) ?? 0) >= (this.#o.maxConnectionsPerIp ?? 100)) return refuse('ip-limit');
    this.#open.add(socket);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    socket.once('close', () => {
      this.#open.delete(socket);
      const n = (this.#perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.#perIp.set(ip, n);
      else this.#perIp.delete(ip);
    });
    const outcome = await carryConnection(socket, t, { idleTimeoutMs: this.#o.idleTimeoutMs });
    this.#o.onConnection?.({ client: `${ip}:${client.port}`, outcome: outcome === 'refused' ? 'open-failed' : outcome });
  }
}
