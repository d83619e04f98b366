import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { LinkStreamKind } from '../protocol/cluster-link.ts';
import type { LeaseTable } from './leases.ts';
import type { LinkClient, LinkPeer } from './link-client.ts';
import type { ClusterCounters } from './metrics.ts';
import type { NodeRegistry } from './nodes.ts';

// The dialling side of the cluster, for a visitor connection this relay cannot serve itself:
// find the relays holding a live lease for the host, and carry the connection to the first
// that takes it. A node URL comes from the database, so it is dialled only when its node row
// is alive (NodeRegistry.liveUrl); a lease of a dead node is skipped, never dialled. Routes
// are remembered for a second (and while the database is away), so a row that died within
// that second may still be dialled: the link's mutual TLS and the peer's own "not here"
// keep that from reaching anyone but a relay of the cluster that serves the host.

const MAX_CACHED_ROUTES = 10_000;
/** How long a route read from the database is used without reading it again. */
const ROUTE_TTL_MS = 1000;
/**
 * How long a relay whose link failed is tried after the other holders: a relay gone without a
 * reset (network gone) costs the link's timeout per attempt, and its node row and leases stay
 * alive for up to a TTL (10 s); visitors should not wait for it while another relay serves.
 */
const FAILED_LAST_MS = 10_000;

export interface ClusterForwarderOptions {
  /** This relay's node id (its own leases are not forwarded to). */
  nodeId: string;
  nodes: NodeRegistry;
  leases: LeaseTable;
  link: LinkClient;
  clock: Clock;
  counters?: ClusterCounters;
}

export class ClusterForwarder {
  readonly #o: ClusterForwarderOptions;
  /** Last known holders per host, with when they were read; oldest first (bounded). */
  readonly #routes = new Map<string, { peers: LinkPeer[]; at: number }>();
  /** Relays whose link failed lately (unreachable, no handshake): tried after the others for FAILED_LAST_MS. */
  readonly #failedAt = new Map<string, number>();

  constructor(o: ClusterForwarderOptions) {
    this.#o = o;
  }

  /**
   * A duplex to the relay that serves `host`, carrying one `kind` connection of visitor
   * `client`. Rejects NOT_FOUND when no other live relay holds the host, UNAVAILABLE when
   * every holder failed (with each one's reason).
   */
  async forward(host: string, kind: LinkStreamKind, client: string): Promise<Duplex> {
    const c = this.#o.counters;
    try {
      const d = await this.#forward(normalizeHost(host), kind, client);
      if (c) c.forwardedOk++;
      return d;
    } catch (err) {
      if (c && isTunnError(err, 'NOT_FOUND')) c.forwardedNotFound++;
      else if (c) c.forwardedFailed++;
      throw err;
    }
  }

  async #forward(h: string, kind: LinkStreamKind, client: string): Promise<Duplex> {
    let { peers, fresh } = await this.#peers(h, false);
    let failures: string[] = [];
    for (;;) {
      for (const peer of this.#failedLast(peers)) {
        try {
          const d = await this.#o.link.open(peer, { host: h, kind, client });
          this.#failedAt.delete(peer.nodeId);
          return d;
        } catch (err) {
          failures.push(errorMessage(err));
          if (!isTunnError(err)) throw err;
          // A relay that answered (NOT_HERE, refusals) is reachable: only a dead link is put last.
          if (!isTunnError(err, 'NOT_FOUND') && !/refused \(/.test(errorMessage(err))) this.#failedAt.set(peer.nodeId, this.#o.clock.now());
        }
      }
      // A remembered route that failed (the tunnel moved, the relay left): read again, once.
      if (fresh || !failures.length) break;
      ({ peers, fresh } = await this.#peers(h, true));
      if (!fresh) break;
      failures = [];
    }
    if (!failures.length) throw new TunnError('NOT_FOUND', `no other relay of the cluster serves ${h} now`);
    throw new TunnError('UNAVAILABLE', `no relay holding ${h} took the connection: ${failures.join('; ')}`);
  }

  /** `peers` with those whose link failed lately at the end (in their order otherwise). */
  #failedLast(peers: LinkPeer[]): LinkPeer[] {
    const now = this.#o.clock.now();
    const failed = (p: LinkPeer): boolean => {
      const at = this.#failedAt.get(p.nodeId);
      if (at === undefined) return false;
      if (now - at < FAILED_LAST_MS) return true;
      this.#failedAt.delete(p.nodeId);
      return false;
    };
    return [...peers.filter((p) => !failed(p)), ...peers.filter(failed)];
  }

  /**
   * The live relays holding `h`. Read from the database at most once per ROUTE_TTL_MS per
   * host (the path of every forwarded connection); while the database cannot answer, the last
   * answer whatever its age. A remembered route is safe: the peer checks that it serves the
   * host and says NOT_HERE if not, so a stale entry costs a refusal, never a misdelivery.
   * `fresh` says whether the answer was read just now.
   */
  async #peers(h: string, reread: boolean): Promise<{ peers: LinkPeer[]; fresh: boolean }> {
    const now = this.#o.clock.now();
    const known = this.#routes.get(h);
    if (known && !reread && now - known.at < ROUTE_TTL_MS) return { peers: known.peers, fresh: false };
    try {
      const holders = (await this.#o.leases.holders(h, now)).filter((l) => l.nodeId !== this.#o.nodeId);
      const peers: LinkPeer[] = [];
      for (const nodeId of new Set(holders.map((l) => l.nodeId))) {
        const url = await this.#o.nodes.liveUrl(nodeId);
        if (url) peers.push({ nodeId, url });
      }
      this.#routes.delete(h);
      if (peers.length) {
        this.#routes.set(h, { peers, at: now });
        if (this.#routes.size > MAX_CACHED_ROUTES) this.#routes.delete(this.#routes.keys().next().value!);
      }
      return { peers, fresh: true };
    } catch (err) {
      if (known && isTunnError(err, 'UNAVAILABLE')) return { peers: known.peers, fresh: false };
      throw err;
    }
  }
}
