import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { LeaseClaim, LeaseTable } from './leases.ts';
import type { ClusterCounters } from './metrics.ts';
import type { NodeRegistry } from './nodes.ts';

// A node's heartbeat: every few seconds (a third of the lease TTL) it marks its node row
// alive, renews its leases, drops leases it no longer serves, re-acquires a lease that
// vanished while nobody else took the host (swept during a database outage), and reports the
// leases another agent took over. While
// the database is unreachable it keeps beating (its routes are cached in memory), says once
// that it lost the database, and once that it is back.

export interface ClusterHeartbeatOptions {
  nodeId: string;
  url: string;
  version: string;
  nodes: NodeRegistry;
  leases: LeaseTable;
  clock: Clock;
  logger: Logger;
  /** What this node serves now: one claim per (host, agent session) in its directory. */
  held(): LeaseClaim[];
  /** Leases taken over by another agent elsewhere: tell those sessions "replaced". */
  onLost(claims: LeaseClaim[]): void;
  counters?: ClusterCounters;
}

const key = (c: { host: string; sessionId: string }) => `${c.host} ${c.sessionId}`;

export class ClusterHeartbeat {
  readonly #o: ClusterHeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** True while the last beat failed (the database is unreachable). */
  #down = false;
  #nodesAlive: number | undefined;

  constructor(o: ClusterHeartbeatOptions) {
    this.#o = o;
  }

  get databaseReachable(): boolean {
    return !this.#down;
  }

  /** Relays seen alive at the last heartbeat that reached the database. */
  get nodesAlive(): number | undefined {
    return this.#nodesAlive;
  }

  /** One heartbeat. Never throws: a failure is logged and the next beat tries again. */
  async beat(): Promise<void> {
    const o = this.#o;
    try {
      const held = o.held();
      const counts = { agents: new Set(held.map((c) => c.sessionId)).size, tunnels: new Set(held.map((c) => c.host)).size };
      if (!(await o.nodes.heartbeat(o.nodeId, counts))) {
        o.logger.warn({ event: 'cluster_rejoin', node: o.nodeId }, 'this relay\'s node row was gone (pruned while it could not reach the database): joining the cluster again');
        await o.nodes.join({ id: o.nodeId, url: o.url, version: o.version });
        await o.nodes.heartbeat(o.nodeId, counts);
      }
      const now = o.clock.now();
      const renewedLeases = await o.leases.renew(o.nodeId, now);
      const renewed = new Set(renewedLeases.map(key));
      // A lease this node no longer serves (its release failed while the database was away) is dropped, not kept alive.
      const heldKeys = new Set(held.map(key));
      for (const l of renewedLeases) if (!heldKeys.has(key(l))) await o.leases.release(o.nodeId, l.sessionId, l.host);
      const lost: LeaseClaim[] = [];
      for (const c of held) {
        if (renewed.has(key(c))) continue;
        const holders = await o.leases.holders(c.host, now);
        if (holders.some((l) => l.agentId !== c.agentId)) lost.push(c);
        else {
          try {
            await o.leases.acquire(c, now);
          } catch (err) {
            // Another account holds it now (its lease outlived ours): lost too, not a database fault.
            if (!isTunnError(err, 'CONFLICT')) throw err;
            lost.push(c);
          }
        }
      }
      if (lost.length) o.onLost(lost);
      await o.leases.sweep(now);
      this.#nodesAlive = (await o.nodes.list()).filter((n) => n.alive).length;
      if (this.#down) {
        this.#down = false;
        if (o.counters) o.counters.databaseBack++;
        o.logger.info({ event: 'cluster_database_back', node: o.nodeId }, 'reached the cluster database again: leases renewed');
      }
    } catch (err) {
      if (!this.#down) {
        this.#down = true;
        if (o.counters) o.counters.databaseLost++;
        o.logger.error({ event: 'cluster_database_lost', node: o.nodeId, err: errorMessage(err) }, 'cannot reach the cluster database: serving cached routes, retrying every heartbeat');
      }
    }
  }

  /** Beats every `intervalMs` (one beat at a time) until stop(). */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.beat().finally(() => (this.#running = undefined));
    }, intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}
