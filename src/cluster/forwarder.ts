import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { LinkStreamKind } from '../protocol/cluster-link.ts';
import type { LeaseTable } from './leases.ts';
import type { LinkClient } from './link-client.ts';
import type { NodeRegistry } from './nodes.ts';

// The dialling side of the cluster, for a visitor connection this relay cannot serve itself:
// find the relays holding a live lease for the host, and carry the connection to the first
// that takes it. A node URL comes from the database, so it is dialled only when its node row
// is alive (NodeRegistry.liveUrl); a lease of a dead node is skipped, never dialled.

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
    const now = this.#o.clock.now();
    const holders = (await this.#o.leases.holders(h, now)).filter((l) => l.nodeId !== this.#o.nodeId);
    const nodeIds = [...new Set(holders.map((l) => l.nodeId))];
    const failures: string[] = [];
    for (const nodeId of nodeIds) {
      const url = await this.#o.nodes.liveUrl(nodeId);
      if (!url) continue;
      try {
        return await this.#o.link.open({ nodeId, url }, { host: h, kind, client });
      } catch (err) {
        failures.push(errorMessage(err));
        if (!isTunnError(err)) throw err;
      }
    }
    if (!failures.length) throw new TunnError('NOT_FOUND', `no other relay of the cluster serves ${h} now`);
    throw new TunnError('UNAVAILABLE', `no relay holding ${h} took the connection: ${failures.join('; ')}`);
  }
}
