import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { LinkStreamKind } from '../protocol/cluster-link.ts';
import type { LeaseTable } from './leases.ts';
import type { LinkClient, LinkPeer } from './link-client.ts';
import type { NodeRegistry } from './nodes.ts';

// The dialling side of the cluster, for a visitor connection this relay cannot serve itself:
// find the relays holding a live lease for the host, and carry the connection to the first
// that takes it. A node URL comes from the database, so it is dialled only when its node row
// is alive (NodeRegistry.liveUrl); a lease of a dead node is skipped, never dialled.

const MAX_CACHED_ROUTES = 10_000;

export interface ClusterForwarderOptions {
  /** This relay's node id (its own leases are not forwarded to). */
  nodeId: string;
  nodes: NodeRegistry;
  leases: LeaseTable;
  link: LinkClient;
  clock: Clock;
}

export class ClusterForwarder {
  readonly #o: ClusterForwarderOptions;
  /** Last known holders per host, newest last (bounded). */
  readonly #routes = new Map<string, LinkPeer[]>();

  constructor(o: ClusterForwarderOptions) {
    this.#o = o;
  }

  /**
   * A duplex to the relay that serves `host`, carrying one `kind` connection of visitor
   * `client`. Rejects NOT_FOUND when no other live relay holds the host, UNAVAILABLE when
   * every holder failed (with each one's reason).
   */
  async forward(host: string, kind: LinkStreamKind, client: string): Promise<Duplex> {
    const h = normalizeHost(host);
    const peers = await this.#peers(h);
    const failures: string[] = [];
    for (const peer of peers) {
      try {
        return await this.#o.link.open(peer, { host: h, kind, client });
      } catch (err) {
        failures.push(errorMessage(err));
        if (!isTunnError(err)) throw err;
      }
    }
    if (!failures.length) throw new TunnError('NOT_FOUND', `no other relay of the cluster serves ${h} now`);
    throw new TunnError('UNAVAILABLE', `no relay holding ${h} took the connection: ${failures.join('; ')}`);
  }

  /**
   * The live relays holding `h`, from the database; while the database cannot answer, the
   * last answer (a cached route: the peer still checks it serves the host, and says NOT_HERE
   * if not, so a stale entry costs a refusal, never a misdelivery).
   */
  async #peers(h: string): Promise<LinkPeer[]> {
    try {
      const holders = (await this.#o.leases.holders(h, this.#o.clock.now())).filter((l) => l.nodeId !== this.#o.nodeId);
      const peers: LinkPeer[] = [];
      for (const nodeId of new Set(holders.map((l) => l.nodeId))) {
        const url = await this.#o.nodes.liveUrl(nodeId);
        if (url) peers.push({ nodeId, url });
      }
      this.#routes.delete(h);
      if (peers.length) {
        this.#routes.set(h, peers);
        if (this.#routes.size > MAX_CACHED_ROUTES) this.#routes.delete(this.#routes.keys().next().value!);
      }
      return peers;
    } catch (err) {
      const cached = this.#routes.get(h);
      if (cached && isTunnError(err, 'UNAVAILABLE')) return cached;
      throw err;
    }
  }
}
