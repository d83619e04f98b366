import { parseIpAllowList } from '../auth/ip-allow.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { SplicedStream } from '../lib/splice.ts';
import type { StreamKind } from '../protocol/messages.ts';
import type { Store } from '../store/store.ts';
import { carryStream } from './carry-connection.ts';
import type { TunnelMetrics } from './metrics.ts';
import { cleanIp } from './own-host.ts';
import { isRefusal, openTunnelStream } from './open-tunnel-stream.ts';
import type { ClientAddress, PortTunnel } from './public-port-tunnel.ts';
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
//
// In a cluster every relay listens on the public ports of tunnels held anywhere (`sync`, from
// the other relays' leases): a connection or flow for a tunnel another relay holds is carried
// there over the link as one stream, and that relay (`carryCarried`) checks --allow-ip on the
// client's address the link carries and carries the stream to its agent.

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
  /** The other relays of a cluster; absent on a single relay. */
  elsewhere?: PortsElsewhere;
  /** A carried tunnel's counters at this relay (the relay's per-tunnel metrics). */
  metricsFor?(host: string): TunnelMetrics;
}

/** What the ports need of the cluster (cluster-wiring.ts). */
export interface PortsElsewhere {
  /** Whether another relay serves `host` on public `protocol` port `port` now. */
  serves(host: string, protocol: PortProtocol, port: number): boolean;
  /** A link stream to the relay holding `host`, carrying one connection (or UDP flow) of `client`. */
  open(host: string, protocol: PortProtocol, client: ClientAddress): Promise<SplicedStream>;
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

/** A tunnel another relay holds, as its public port here sees it: each connection is carried there. */
function carriedTunnel(elsewhere: PortsElsewhere, host: string, protocol: PortProtocol, metrics: TunnelMetrics): PortTunnel {
  // --allow-ip is checked by the holder (carryCarried), which knows the tunnel's options.
  return { host, metrics, admits: () => true, open: (client) => elsewhere.open(host, protocol, client) };
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

  /** The public port `host` listens on here, if any (its lease records it). */
  portOf(host: string): number | null {
    for (const [key, l] of this.#listeners) if (l.host === host) return Number(key.slice(key.indexOf(':') + 1));
    return null;
  }

  /** `host` went offline here: its port stops listening (the stored assignment stays for next time), unless another relay serves it. */
  gone(host: string): void {
    if (this.#o.directory.get(host)) return;
    for (const [key, l] of this.#listeners) {
      if (l.host !== host) continue;
      const [protocol, port] = key.split(':') as [PortProtocol, string];
      if (this.#o.elsewhere?.serves(host, protocol, Number(port))) continue;
      this.#stop(key);
    }
  }

  /**
   * The public ports of tunnels other relays hold now: each listens here too (bound when it
   * appears, closed when it goes). A port a tunnel of this relay holds stays as it is.
   */
  sync(ports: readonly { protocol: PortProtocol; port: number; host: string }[]): void {
    const wanted = new Map(ports.map((p) => [`${p.protocol}:${p.port}`, p]));
    for (const [key, l] of this.#listeners) {
      if (this.#o.directory.get(l.host) || wanted.get(key)?.host === l.host) continue;
      this.#stop(key);
    }
    for (const [key, p] of wanted) {
      if (this.#listeners.has(key)) continue;
      const listener = this.#listen(p.protocol, p.port, p.host);
      this.#listeners.set(key, { host: p.host, listener });
      listener.then(
        () => this.#o.logger.info({ host: p.host, protocol: p.protocol, port: p.port }, 'public port listening for a tunnel on another relay'),
        (err: unknown) => {
          if (this.#listeners.get(key)?.listener === listener) this.#listeners.delete(key);
          this.#o.logger.warn({ host: p.host, err: errorMessage(err) }, 'could not listen on the public port of a tunnel on another relay');
        },
      );
    }
  }

  /**
   * A connection (or UDP flow) of a public port another relay accepted, as a link stream.
   * Throws before anything is carried when no public tunnel of `protocol` is at `host` here
   * (NOT_FOUND) or its --allow-ip refuses the client (FORBIDDEN).
   */
  carryCarried(host: string, protocol: PortProtocol, link: SplicedStream, client: ClientAddress): void {
    const t = this.#o.directory.get(host);
    if (!t || t.options.kind !== protocol || !t.options.public) throw new TunnError('NOT_FOUND', `no public ${protocol} tunnel at ${host} on this relay`);
    const pt = portTunnel(this.#o.directory, t, protocol);
    // Security: --allow-ip is decided where the tunnel is, on the client address the link carries.
    if (!pt.admits(client.address)) {
      t.metrics.drop('allow-ip');
      throw new TunnError('FORBIDDEN', `${client.address} is not on the --allow-ip list of ${host}`);
    }
    const c = this.#o.config;
    const idleTimeoutMs = protocol === 'tcp' ? (c.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS) : (c.udpFlowIdleMs ?? DEFAULT_UDP_FLOW_IDLE_MS);
    void carryStream(link, pt, client, { idleTimeoutMs }).then((outcome) => this.#o.logger.debug({ host, outcome }, `${protocol} connection carried from another relay`));
  }

  #stop(key: string): void {
    const l = this.#listeners.get(key);
    if (!l) return;
    this.#listeners.delete(key);
    void l.listener.then((x) => x.close()).catch((err: unknown) => this.#o.logger.warn({ host: l.host, err: errorMessage(err) }, 'closing a public port failed'));
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
      if (t) return t.options.kind === protocol && t.options.public ? portTunnel(o.directory, t, protocol) : undefined;
      return o.elsewhere?.serves(host, protocol, port) && o.metricsFor ? carriedTunnel(o.elsewhere, host, protocol, o.metricsFor(host)) : undefined;
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
