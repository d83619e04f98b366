import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';

// The relays of a cluster, one row per running relay process (cluster_nodes). A node writes
// its row when it starts and a heartbeat every few seconds; "alive" means seen within the
// lease TTL, by the caller's clock (injected, so tests move time instead of sleeping). A node
// URL read from the database is only ever dialled through `liveUrl`: a row that stopped
// beating, or was never there, yields nothing to dial.

/** How long a node (and the leases it renews) counts as alive after its last heartbeat. */
export const DEFAULT_LEASE_TTL_MS = 10_000;

export interface ClusterNodeRow {
  id: string;
  url: string;
  /** ms since the epoch. */
  startedAt: number;
  lastSeenAt: number;
  agents: number;
  tunnels: number;
  version: string;
  alive: boolean;
}

/** A fresh node id: random per process start, so a restarted relay never renews its old leases. */
export function newNodeId(): string {
  return `n${randomId(11)}`;
}

export interface NodeRegistryOptions {
  store: Store;
  clock: Clock;
  /** Default 10 s. */
  ttlMs?: number;
}

export class NodeRegistry {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly ttlMs: number;

  constructor(o: NodeRegistryOptions) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.ttlMs = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  /**
   * Adds this node. An older row with the same URL is a previous run of this relay (restarted
   * before its row expired): it and its leases are removed, so nothing routes to a dead process.
   */
  async join(node: { id: string; url: string; version: string }): Promise<void> {
    const now = nowIso(this.#clock.now());
    try {
      await this.#store.db.transaction().execute(async (tx) => {
        const old = await tx.selectFrom('cluster_nodes').select('id').where('url', '=', node.url).where('id', '!=', node.id).execute();
        if (old.length) {
          const ids = old.map((r) => r.id);
          await tx.deleteFrom('tunnel_leases').where('node_id', 'in', ids).execute();
          await tx.deleteFrom('cluster_nodes').where('id', 'in', ids).execute();
        }
        await tx.insertInto('cluster_nodes').values({ id: node.id, url: node.url, started_at: now, last_seen_at: now, agents: 0, tunnels: 0, version: node.version }).execute();
      });
    } catch (err) {
      throw new TunnError('UNAVAILABLE', `joining the cluster as ${node.id} (${node.url}): ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Marks this node alive now, with its counts. Returns false when its row is gone (pruned
   * while this node could not reach the database): the caller joins again and re-acquires
   * its leases.
   */
  async heartbeat(id: string, counts: { agents: number; tunnels: number }): Promise<boolean> {
    const r = await this.#store.db
      .updateTable('cluster_nodes')
      .set({ last_seen_at: nowIso(this.#clock.now()), agents: counts.agents, tunnels: counts.tunnels })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Removes this node and its leases (a clean shutdown: the others stop routing here at once). */
  async leave(id: string): Promise<void> {
    await this.#store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('tunnel_leases').where('node_id', '=', id).execute();
      await tx.deleteFrom('cluster_nodes').where('id', '=', id).execute();
    });
  }

  /** Every node row, oldest first, with `alive` by this registry's clock and TTL. */
  async list(): Promise<ClusterNodeRow[]> {
    const rows = await this.#store.db.selectFrom('cluster_nodes').selectAll().orderBy('started_at').orderBy('id').execute();
    const now = this.#clock.now();
    return rows.map((r) => {
      const lastSeenAt = Date.parse(r.last_seen_at);
      return { id: r.id, url: r.url, startedAt: Date.parse(r.started_at), lastSeenAt, agents: Number(r.agents), tunnels: Number(r.tunnels), version: r.version, alive: this.isAlive(lastSeenAt, now) };
    });
  }

  /** The URL of node `id` if its row is alive; undefined for a dead or unknown node (never dial those). */
  async liveUrl(id: string): Promise<string | undefined> {
    const r = await this.#store.db
      .selectFrom('cluster_nodes')
      .select('url')
      .where('id', '=', id)
      .where('last_seen_at', '>', nowIso(this.#clock.now() - this.ttlMs))
      .executeTakeFirst();
    return r?.url;
  }

  isAlive(lastSeenAt: number, now = this.#clock.now()): boolean {
    return lastSeenAt > now - this.ttlMs;
  }

  /** Deletes nodes not seen for `olderThanMs` (default an hour), and their leases; returns how many. */
  async prune(olderThanMs = 3_600_000): Promise<number> {
    const cut = nowIso(this.#clock.now() - olderThanMs);
    return this.#store.db.transaction().execute(async (tx) => {
      const gone = await tx.selectFrom('cluster_nodes').select('id').where('last_seen_at', '<=', cut).execute();
      if (!gone.length) return 0;
      const ids = gone.map((r) => r.id);
      await tx.deleteFrom('tunnel_leases').where('node_id', 'in', ids).execute();
      await tx.deleteFrom('cluster_nodes').where('id', 'in', ids).execute();
      return ids.length;
    });
  }
}
