import { Counter, Gauge, type Registry } from 'prom-client';

// Cluster metrics for a relay's /metrics. The cluster's parts count into plain numbers (one
// field increment per carried connection or database event); the Prometheus series are
// filled from them when /metrics is scraped, like the relay's own (src/relay/metrics.ts).

export class ClusterCounters {
  /** Visitor connections this relay carried to another, by outcome. */
  forwardedOk = 0;
  /** No other relay held the host. */
  forwardedNotFound = 0;
  /** Every holder failed (unreachable, refused). */
  forwardedFailed = 0;
  /** Carried connections other relays brought here, accepted or refused. */
  receivedAccepted = 0;
  receivedRefused = 0;
  /** The heartbeat lost the database, and found it again. */
  databaseLost = 0;
  databaseBack = 0;
  /** The LISTEN connection dropped, and came back. */
  listenLost = 0;
  listenBack = 0;
}

export interface ClusterMetricsSource {
  counters: ClusterCounters;
  /** Whether the last heartbeat reached the database. */
  databaseReachable(): boolean;
  /** Live node rows, as of the last heartbeat (undefined: not known yet). */
  nodesAlive?(): number | undefined;
}

/** Adds the cluster's series to `registry` (call once per registry). */
export function registerClusterMetrics(registry: Registry, s: ClusterMetricsSource): void {
  const c = s.counters;
  new Gauge({
    name: 'tunn_cluster_database_reachable',
    help: 'Whether the last cluster heartbeat reached the database (1) or not (0)',
    registers: [registry],
    collect() {
      this.set(s.databaseReachable() ? 1 : 0);
    },
  });
  new Counter({
    name: 'tunn_cluster_database_events_total',
    help: 'Times the cluster heartbeat lost the database (lost) and reached it again (back)',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ event: 'lost' }, c.databaseLost);
      this.inc({ event: 'back' }, c.databaseBack);
    },
  });
  new Counter({
    name: 'tunn_cluster_listen_events_total',
    help: 'Times the connection listening for cluster changes dropped (lost) and came back (back)',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ event: 'lost' }, c.listenLost);
      this.inc({ event: 'back' }, c.listenBack);
    },
  });
  new Counter({
    name: 'tunn_cluster_forwarded_total',
    help: 'Visitor connections carried to another relay, by result (ok, not_found, failed)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'ok' }, c.forwardedOk);
      this.inc({ result: 'not_found' }, c.forwardedNotFound);
      this.inc({ result: 'failed' }, c.forwardedFailed);
    },
  });
  new Counter({
    name: 'tunn_cluster_received_total',
    help: 'Visitor connections other relays carried here, by result (accepted, refused)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'accepted' }, c.receivedAccepted);
      this.inc({ result: 'refused' }, c.receivedRefused);
    },
  });
  if (s.nodesAlive) {
    const alive = s.nodesAlive;
    new Gauge({
      name: 'tunn_cluster_nodes_alive',
      help: 'Relays of the cluster seen alive at the last heartbeat',
      registers: [registry],
      collect() {
        const n = alive();
        if (n !== undefined) this.set(n);
      },
    });
  }
}
