import { parseIpAllowList } from '../auth/ip-allow.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { StreamKind } from '../protocol/messages.ts';
import type { Store } from '../store/store.ts';
import { cleanIp } from './own-host.ts';
import { isRefusal, openTunnelStream } from './open-tunnel-stream.ts';
import type { PortTunnel } from './public-port-tunnel.ts';
import { PublicPorts, type PortProtocol } from './public-ports.ts';
import { PublicTcpPort } from './public-tcp.ts';
import { FlowBudget, PublicUdpPort } from './public-udp.ts';
import type { KindsConfig } from './relay-config.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// The relay's public TCP and UDP ports (`tunn tcp|udp --public`): a registration gets the
// name's stored port (public-ports.ts: same port next time, quota, reserved ports), and the
// port listens while any session holds the tunnel. Each port asks the directory for its tunnel
// on every connection or flow, so an agent that reconnects keeps its port and clients meanwhile
// get a reset (TCP) or nothing (UDP).

/** A raw TCP connection is often long-lived and quiet (a database, SSH): an hour by default. */
export const DEFAULT_TCP_IDLE_MS = 3_600_000;
export const DEFAULT_UDP_FLOW_IDLE_MS = 60_000;

export interface KindPortsOptions {
  store: Store;
  clock: Clock;
  directory: TunnelDirectory;
  config: KindsConfig;
  /** The relay's listen address. */
  listen: string;
  /** Ports the relay itself listens on (HTTPS, HTTP, DNS); read at each assignment (the relay adds its own once it listens). */
  reserved: number[];
  logger: Logger;
}

interface Listener {
  close(): Promise<void>;
}

/** The port tunnel view of a live tunnel: its --allow-ip, its metrics, a stream of its kind. */
export function portTunnel(directory: TunnelDirectory, t: Tunnel, kind: StreamKind): PortTunnel {
  const allow = t.options.allowIps?.length ? parseIpAllowList(t.options.allowIps) : undefined;
  return {
    host: t.host,
    metrics: t.metrics,
    admits: (ip) => !allow || allow.allows(cleanIp(ip)),
    async open(client) {
      const r = await openTunnelStream(directory, t, { kind, client: cleanIp(client.address), clientPort: client.port });
      if (isRefusal(r)) throw new TunnError(r.reason === 'not_found' ? 'NOT_FOUND' : 'UNAVAILABLE', r.message);
      return r;
    },
  };
}

export class KindPorts {
  readonly #o: KindPortsOptions;
  readonly #ports: PublicPorts;
  readonly #budget: FlowBudget;
  /** `${protocol}:${port}` → its listener (a promise: the sessions of one agent register at once). */
  readonly #listeners = new Map<string, { host: string; listener: Promise<Listener> }>();

  constructor(o: KindPortsOptions) {
    this.#o = o;
    const c = o.config;
    this.#ports = new PublicPorts(o.store, { tcp: c.tcpPorts, udp: c.udpPorts, perAccount: c.portQuota, reserved: { tcp: o.reserved, udp: o.reserved } }, o.clock);
    this.#budget = new FlowBudget(c.udpFlowsTotal ?? 10_000);
  }

  /**
   * The public port of a tcp/udp tunnel registered with --public (undefined for any other
   * tunnel), listening once this returns. Throws the user's error: no range (naming the flag),
   * quota, range full.
   */
  async register(t: { host: string; name: string; domain: string; accountId: string; kind: string; public: boolean }): Promise<number | undefined> {
    if (!t.public || (t.kind !== 'tcp' && t.kind !== 'udp')) return undefined;
    const protocol: PortProtocol = t.kind;
    const port = await this.#ports.assign({ protocol, domain: t.domain, name: t.name, accountId: t.accountId }, (domain, name) => this.#o.directory.get(`${name}.${domain}`) !== undefined);
    const key = `${protocol}:${port}`;
    const held = this.#listeners.get(key);
    if (held && held.host === t.host) {
      await held.listener;
      return port;
    }
    if (held) await (await held.listener.catch(() => undefined))?.close();
    const listener = this.#listen(protocol, port, t.host);
    this.#listeners.set(key, { host: t.host, listener });
    try {
      await listener;
    } catch (err) {
      if (this.#listeners.get(key)?.listener === listener) this.#listeners.delete(key);
      throw err;
    }
    this.#o.logger.info({ host: t.host, protocol, port }, 'public port listening');
    return port;
  }

  /** `host` went offline here: its port stops listening (the stored assignment stays for next time). */
  gone(host: string): void {
    if (this.#o.directory.get(host)) return;
    for (const [key, l] of this.#listeners) {
      if (l.host !== host) continue;
      this.#listeners.delete(key);
      void l.listener.then((x) => x.close()).catch((err: unknown) => this.#o.logger.warn({ host, err: errorMessage(err) }, 'closing a public port failed'));
    }
  }

  async close(): Promise<void> {
    const all = [...this.#listeners.values()];
    this.#listeners.clear();
    await Promise.all(all.map((l) => l.listener.then((x) => x.close()).catch(() => {})));
  }

  async #listen(protocol: PortProtocol, port: number, host: string): Promise<Listener> {
    const o = this.#o;
    const c = o.config;
    // The port serves the name only while it is a public tunnel of the port's protocol.
    const tunnel = (): PortTunnel | undefined => {
      const t = o.directory.get(host);
      return t && t.options.kind === protocol && t.options.public ? portTunnel(o.directory, t, protocol) : undefined;
    };
    try {
      if (protocol === 'tcp') {
        const p = new PublicTcpPort({ port, host: o.listen, tunnel, maxConnections: c.portConnections, maxConnectionsPerIp: c.portConnectionsPerIp, idleTimeoutMs: c.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS });
        await p.listen();
        return { close: () => p.close() };
      }
      const p = new PublicUdpPort({ port, host: o.listen, tunnel, budget: this.#budget, maxFlows: c.udpFlows, flowIdleMs: c.udpFlowIdleMs ?? DEFAULT_UDP_FLOW_IDLE_MS });
      await p.listen();
      return { close: () => p.close() };
    } catch (err) {
      throw new TunnError('UNAVAILABLE', `opening public ${protocol.toUpperCase()} port ${port} for ${host}: ${errorMessage(err)} (another program may use it; the relay's operator can narrow the --${protocol}-ports range)`, { cause: err });
    }
  }
}
