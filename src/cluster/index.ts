// A relay cluster on PostgreSQL (issue 14): the public parts. What phase 2 wires: PHASE2.md.
export { ClusterDirectory, type ClusterDirectoryOptions, type LocalDirectory, type LocalSession, type LocalTunnel } from './directory.ts';
export { clusterCa, credentialsFromFiles, credentialsFromSecret, MIN_CLUSTER_SECRET_LENGTH, type LinkCredentials } from './credentials.ts';
export { ClusterForwarder, type ClusterForwarderOptions } from './forwarder.ts';
export { ClusterHeartbeat, type ClusterHeartbeatOptions } from './heartbeat.ts';
export { LEASE_CHANNEL, StoreLeaseTable, type AcquireResult, type Lease, type LeaseClaim, type LeaseKind, type LeaseTable } from './leases.ts';
export { LinkClient, type LinkClientOptions, type LinkPeer } from './link-client.ts';
export { LinkServer, type ForwardedStreamHandler, type LinkPeerInfo, type LinkServerOptions } from './link-server.ts';
export { ClusterCounters, registerClusterMetrics, type ClusterMetricsSource } from './metrics.ts';
export { startClusterNode, type ClusterCredentialsSource, type ClusterNode, type ClusterNodeOptions } from './node.ts';
export { DEFAULT_LEASE_TTL_MS, newNodeId, NodeRegistry, type ClusterNodeRow, type NodeRegistryOptions } from './nodes.ts';
export { PgListener, type PgListenerOptions } from './pg-listener.ts';
export { checkSealingKey } from './sealing.ts';
export { clusterStatus, type ClusterStatus } from './status.ts';
