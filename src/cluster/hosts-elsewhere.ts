import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import type { LeaseTable } from './leases.ts';

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
}

export class HostsElsewhere {
  readonly #o: HostsElsewhereOptions;
  #hosts = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(o: HostsElsewhereOptions) {
    this.#o = o;
  }

  /** Whether another live relay holds a lease for `host`. */
  has(host: string): boolean {
    return this.#hosts.has(normalizeHost(host));
  }

  /** Reads every live lease of the other relays. */
  async refresh(): Promise<void> {
    try {
      const all = await this.#o.leases.all(this.#o.clock.now());
      this.#hosts = new Set(all.filter((l) => l.nodeId !== this.#o.nodeId).map((l) => l.host));
      this.#failing = false;
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
      if (holders.some((l) => l.nodeId !== this.#o.nodeId)) this.#hosts.add(h);
      else this.#hosts.delete(h);
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
