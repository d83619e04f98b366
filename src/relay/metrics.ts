import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

// Relay metrics for Prometheus. Counts only: no payload is inspected for metrics.
//
// The data plane counts into plain numbers on each tunnel (a field increment per request or
// chunk); the Prometheus series are filled from them when /metrics is scraped.

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Live counters of one tunnel host, kept across reconnects of its agent. */
export class TunnelMetrics {
  open = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Responses by status class, index 0 = 1xx … 4 = 5xx. */
  readonly responses = [0, 0, 0, 0, 0];

  /** TCP connections (public port or `tunn connect`) and UDP flows carried to this tunnel (kinds tcp/udp/tls). */
  connections = 0;
  flowsOpen = 0;
  flows = 0;
  datagramsIn = 0;
  datagramsOut = 0;
  /** Connections, flows and datagrams dropped (limits, oversize, backpressure, no tunnel), by reason. */
  readonly drops = new Map<string, number>();

  drop(reason: string, n = 1): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }

  /** Requests the relay refused itself (401/403/429, …), by reason. */
  readonly refused = new Map<string, number>();

  requests(status: number): void {
    const i = Math.floor(status / 100) - 1;
    if (i >= 0 && i < 5) this.responses[i]!++;
  }

  refuse(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly agents = new Gauge({ name: 'tunn_agent_sessions', help: 'Connected agent sessions', registers: [this.registry] });
  readonly tunnels = new Gauge({ name: 'tunn_tunnels', help: 'Live tunnels', registers: [this.registry] });
  readonly directoryErrors = new Counter({ name: 'tunn_idp_directory_errors_total', help: 'Group lookups the identity directory (LDAP) could not answer', registers: [this.registry] });
  readonly #byHost = new Map<string, TunnelMetrics>();
  readonly #live = new Set<string>();

  constructor() {
    const byHost = this.#byHost;
    const live = this.#live;
    new Gauge({
      name: 'tunn_open_connections',
      help: 'Open public connections',
      labelNames: ['tunnel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const host of live) this.set({ tunnel: host }, byHost.get(host)!.open);
      },
    });
    new Counter({
      name: 'tunn_requests_total',
      help: 'HTTP requests answered, by tunnel and status class',
      labelNames: ['tunnel', 'code'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) {
          m.responses.forEach((n, i) => {
            if (n > 0) this.inc({ tunnel: host, code: STATUS_CLASSES[i]! }, n);
          });
        }
      },
    });
    new Counter({
      name: 'tunn_refused_total',
      help: 'Requests the relay refused at the edge (IP allow-list, rate limit, basic auth, sign-in, token, policy, upgrade, gate unavailable), by tunnel and reason',
      labelNames: ['tunnel', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) for (const [reason, n] of m.refused) this.inc({ tunnel: host, reason }, n);
      },
    });
    new Counter({
      name: 'tunn_bytes_total',
      help: 'Bytes through tunnels',
      labelNames: ['tunnel', 'direction'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) {
          if (m.bytesIn > 0) this.inc({ tunnel: host, direction: 'in' }, m.bytesIn);
          if (m.bytesOut > 0) this.inc({ tunnel: host, direction: 'out' }, m.bytesOut);
        }
      },
    });
    // Kinds tcp, udp and tls (issue 11): connections, flows, datagrams and drops per tunnel.
    new Counter({
      name: 'tunn_connections_total',
      help: 'TCP connections carried to tcp/tls tunnels (public ports and tunn connect)',
      labelNames: ['tunnel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) if (m.connections > 0) this.inc({ tunnel: host }, m.connections);
      },
    });
    new Counter({
      name: 'tunn_udp_flows_total',
      help: 'UDP flows (client address and port) carried to udp tunnels',
      labelNames: ['tunnel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) if (m.flows > 0) this.inc({ tunnel: host }, m.flows);
      },
    });
    new Gauge({
      name: 'tunn_udp_flows',
      help: 'Open UDP flows',
      labelNames: ['tunnel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const host of live) this.set({ tunnel: host }, byHost.get(host)!.flowsOpen);
      },
    });
    new Counter({
      name: 'tunn_datagrams_total',
      help: 'UDP datagrams through udp tunnels (in: from clients, out: to clients)',
      labelNames: ['tunnel', 'direction'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) {
          if (m.datagramsIn > 0) this.inc({ tunnel: host, direction: 'in' }, m.datagramsIn);
          if (m.datagramsOut > 0) this.inc({ tunnel: host, direction: 'out' }, m.datagramsOut);
        }
      },
    });
    new Counter({
      name: 'tunn_drops_total',
      help: 'Connections, flows and datagrams of tcp/udp/tls tunnels dropped, by tunnel and reason (connection/flow limits, allow-ip, oversize, backpressure, tunnel offline)',
      labelNames: ['tunnel', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [host, m] of byHost) for (const [reason, n] of m.drops) this.inc({ tunnel: host, reason }, n);
      },
    });
    // Process metrics (RSS, CPU, event-loop lag) under the tunn_ prefix.
    collectDefaultMetrics({ register: this.registry, prefix: 'tunn_' });
  }

  /** The counters of a tunnel host (the same object again when its agent comes back). */
  forTunnel(host: string): TunnelMetrics {
    let m = this.#byHost.get(host);
    if (!m) {
      m = new TunnelMetrics();
      this.#byHost.set(host, m);
    }
    this.#live.add(host);
    return m;
  }

  /** The tunnel went away: its open-connections series ends; its totals stay. */
  forget(host: string): void {
    this.#live.delete(host);
  }
}
