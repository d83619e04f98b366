import type { Clock } from '../lib/clock.ts';
import type { Store } from '../store/store.ts';
import { StoreLeaseTable, type Lease } from './leases.ts';
import { DEFAULT_LEASE_TTL_MS, NodeRegistry, type ClusterNodeRow } from './nodes.ts';

// What `tunn relay status` (and, in phase 2, GET /v1/cluster for admins) shows: every node
// row with whether it is alive, and every live lease. Nothing sealed is read, so the
// operator needs only the database URL.

export interface ClusterStatus {
  nodes: ClusterNodeRow[];
  leases: Lease[];
}

export async function clusterStatus(store: Store, clock: Clock, ttlMs = DEFAULT_LEASE_TTL_MS): Promise<ClusterStatus> {
  const nodes = await new NodeRegistry({ store, clock, ttlMs }).list();
  const leases = await new StoreLeaseTable({ store, ttlMs }).all(clock.now());
  return { nodes, leases };
}
