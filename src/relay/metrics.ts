import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

// Relay metrics for Prometheus. Counts only: no payload is inspected for metrics.

export class RelayMetrics {
  readonly registry = new Registry();
  readonly agents = new Gauge({ name: 'tunn_agent_sessions', help: 'Connected agent sessions', registers: [this.registry] });
  readonly tunnels = new Gauge({ name: 'tunn_tunnels', help: 'Live tunnels', registers: [this.registry] });
  readonly connections = new Gauge({ name: 'tunn_open_connections', help: 'Open public connections', labelNames: ['tunnel'], registers: [this.registry] });
  readonly requests = new Counter({ name: 'tunn_requests_total', help: 'HTTP requests answered, by tunnel and status class', labelNames: ['tunnel', 'code'], registers: [this.registry] });
  readonly bytes = new Counter({ name: 'tunn_bytes_total', help: 'Bytes through tunnels', labelNames: ['tunnel', 'direction'], registers: [this.registry] });

  constructor() {
    // Process metrics (RSS, CPU, event-loop lag) under the tunn_ prefix.
    collectDefaultMetrics({ register: this.registry, prefix: 'tunn_' });
  }

  /** Per-tunnel children, cached so the hot path does not look labels up per chunk. */
  forTunnel(host: string): TunnelMetrics {
    return {
      connections: this.connections.labels(host),
      bytesIn: this.bytes.labels(host, 'in'),
      bytesOut: this.bytes.labels(host, 'out'),
      requests: (status: number) => this.requests.labels(host, `${Math.floor(status / 100)}xx`).inc(),
    };
  }

  forget(host: string): void {
    this.connections.remove(host);
  }
}

export interface TunnelMetrics {
  connections: { inc(): void; dec(): void };
  bytesIn: { inc(n: number): void };
  bytesOut: { inc(n: number): void };
  requests(status: number): void;
}
