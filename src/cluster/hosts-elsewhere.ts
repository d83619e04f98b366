import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import type { Lease, LeaseKind, LeaseTable } from './leases.ts';

/** A public TCP or UDP port another relay's tunnel holds: every relay listens on it too. */
export interface PortElsewhere {
  protocol: 'tcp' | 'udp';
  port: number;
  host: string;
}

// Which hosts other relays of the cluster serve now, answered synchronously: the questions
// asked on a hot or synchronous path ("may the login page send a visitor back to this host?",
// "may a certificate be obtained for this name?") cannot wait for the database. Read whole
// every `refreshMs` as a safety net, and one host at a time when a lease change is announced
// (LISTEN/NOTIFY). While the database cannot answer, the last view stays (like the forwarder's
// routes): a host that moved still has a relay serving it, and a stale "yes" costs at most a
// certificate request or a return URL to a host that answers "offline".

export interface HostsElsewhereOptions {
  nodeId: string;
  leases: LeaseTable;
  clock: Clock;
  logger: Logger;
  /** Whole re-read period (default 2 s). */
  refreshMs?: number;
  /** Told after each read whose public ports of other relays may have changed (the relay binds and closes its listeners). */
  onPorts?(ports: PortElsewhere[]): void;
}

function portOf(l: Lease): PortElsewhere | undefined {
  return l.port !== null && (l.kind === 'tcp' || l.kind === 'udp') ? { protocol: l.kind, port: l.port, host: l.host } : undefined;
}

export class HostsElsewhere {
  readonly #o: HostsElsewhereOptions;
  /** Host → the kind of tunnel another relay serves there (the edge routes raw TLS by it). */
  #hosts = new Map<string, LeaseKind>();
  /** Host → the public port its tunnel holds at another relay. */
  #ports = new Map<string, PortElsewhere>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(o: HostsElsewhereOptions) {
    this.#o = o;
  }

  /** Whether another live relay holds a lease for `host`. */
  has(host: string): boolean {
    return this.#hosts.has(normalizeHost(host));
  }

  /** The kind of the tunnel another live relay serves at `host`, or undefined. */
  kindOf(host: string): LeaseKind | undefined {
    return this.#hosts.get(normalizeHost(host));
  }

  /** The public ports tunnels held at other relays have now. */
  ports(): PortElsewhere[] {
    return [...this.#ports.values()];
  }

  /** Whether another live relay serves `host` on public `protocol` port `port`. */
  servesPort(host: string, protocol: 'tcp' | 'udp', port: number): boolean {
    const p = this.#ports.get(normalizeHost(host));
    return p !== undefined && p.protocol === protocol && p.port === port;
  }

  /** Reads every live lease of the other relays. */
  async refresh(): Promise<void> {
    try {
      const all = await this.#o.leases.all(this.#o.clock.now());
      const others = all.filter((l) => l.nodeId !== this.#o.nodeId);
      this.#hosts = new Map(others.map((l) => [l.host, l.kind]));
      this.#ports = new Map(others.flatMap((l) => { const p = portOf(l); return p ? [[l.host, p] as const] : []; }));
      this.#failing = false;
      this.#o.onPorts?.(this.ports());
    } catch (err) {
      // Once per outage: the heartbeat says the rest.
      if (!this.#failing) this.#o.logger.warn({ event: 'cluster_hosts_stale', err: errorMessage(err) }, 'cannot read where the other relays serve tunnels: using the last view');
      this.#failing = true;
    }
  }

  /** A lease of `host` changed somewhere: read that host again. */
  async changed(host: string): Promise<void> {
    const h = normalizeHost(host);
    try {
      const holders = await this.#o.leases.holders(h, this.#o.clock.now());
      const other = holders.find((l) => l.nodeId !== this.#o.nodeId);
      if (other) this.#hosts.set(h, other.kind);
      else this.#hosts.delete(h);
      const p = other && portOf(other);
      if (p) this.#ports.set(h, p);
      else this.#ports.delete(h);
      this.#o.onPorts?.(this.ports());
    } catch {
      // The periodic re-read catches up.
    }
  }

  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#o.refreshMs ?? 2000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
