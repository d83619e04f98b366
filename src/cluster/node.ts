import type { Registry } from 'prom-client';
import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';
import { credentialsFromFiles, credentialsFromSecret, type LinkCredentials } from './credentials.ts';
import { ClusterDirectory, type LocalDirectory, type LocalSession, type LocalTunnel } from './directory.ts';
import { ClusterForwarder } from './forwarder.ts';
import { ClusterHeartbeat } from './heartbeat.ts';
import { LEASE_CHANNEL, StoreLeaseTable, type LeaseKind } from './leases.ts';
import { LinkClient } from './link-client.ts';
import { LinkServer, type ForwardedStreamHandler } from './link-server.ts';
import { ClusterCounters, registerClusterMetrics } from './metrics.ts';
import { DEFAULT_LEASE_TTL_MS, newNodeId, NodeRegistry } from './nodes.ts';
import { PgListener } from './pg-listener.ts';
import { checkSealingKey } from './sealing.ts';

// One relay as a member of a cluster, put together: the sealing check, the link credentials,
// the link listener on the node URL's port, the node row and its heartbeat, the leased tunnel
// directory and the forwarder. The relay (phase 2) calls startClusterNode once at start with
// its registry and its stream handler, and uses what it returns; close() leaves the cluster.

/** PostgreSQL NOTIFY channel of identity and policy changes (payload: the table), sent by triggers (migration 0010). */
export const IDENTITY_CHANNEL = 'tunn_identity';

export type ClusterCredentialsSource = { secret: string } | { caFile: string; certFile: string; keyFile: string };

export interface ClusterNodeOptions<T extends LocalTunnel<S>, S extends LocalSession, I> {
  store: Store;
  /** The store's postgres:// URL: lease changes are then heard at once (LISTEN/NOTIFY), not only at the next heartbeat. */
  storeUrl?: string;
  box: SecretBox;
  clock: Clock;
  logger: Logger;
  /** tunn's version (shown by `tunn relay status`). */
  version: string;
  /** `--node-url`: where the other relays reach this one; the link listens on its port. */
  nodeUrl: string;
  /** Address the link listens on (the relay's --listen). */
  listen: string;
  credentials: ClusterCredentialsSource;
  /** The relay's own in-memory tunnel directory, wrapped into the returned `directory`. */
  directory: LocalDirectory<T, S, I>;
  leaseOf(t: T): { kind: LeaseKind; port: number | null };
  /** Serves a visitor stream another relay carried here (as for a connection accepted here). */
  onForwardedStream: ForwardedStreamHandler;
  /** A lease of `host` changed on some relay (announced with NOTIFY; PostgreSQL only). */
  onLeaseChange?(host: string): void;
  /**
   * Who may do what changed (PostgreSQL only): NOTIFY on IDENTITY_CHANNEL from the triggers of
   * migration 0010, with the table changed (tokens, sessions, signing_keys, groups, grants,
   * accounts, domains); `*` after the listener (re)connects, since a change made while it was deaf is lost.
   */
  onIdentityChange?(table: string): void;
  /** Lease and node TTL: 10 s; the heartbeat beats every third of it. */
  ttlMs?: number;
}

export interface ClusterNode<T extends LocalTunnel<S>, S extends LocalSession, I> {
  readonly nodeId: string;
  /** The port the link listens on (the node URL's). */
  readonly linkPort: number;
  /** Use instead of the relay's own directory. */
  readonly directory: ClusterDirectory<T, S, I>;
  readonly nodes: NodeRegistry;
  readonly leases: StoreLeaseTable;
  /** For a visitor connection to a host this relay does not serve. */
  readonly forwarder: ClusterForwarder;
  readonly heartbeat: ClusterHeartbeat;
  /** What the cluster's parts counted; `registerMetrics` shows them on the relay's /metrics. */
  readonly counters: ClusterCounters;
  registerMetrics(registry: Registry): void;
  /** Leaves the cluster (node row and leases removed, so the others stop routing here at once). */
  close(): Promise<void>;
}

function credentialsFor(source: ClusterCredentialsSource, nodeId: string, now: number): Promise<LinkCredentials> | LinkCredentials {
  if ('secret' in source) return credentialsFromSecret(source.secret, nodeId, now);
  return credentialsFromFiles({ ca: source.caFile, cert: source.certFile, key: source.keyFile });
}

export async function startClusterNode<T extends LocalTunnel<S>, S extends LocalSession, I>(o: ClusterNodeOptions<T, S, I>): Promise<ClusterNode<T, S, I>> {
  const ttlMs = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  // First: a relay with another sealing key must not touch the cluster at all.
  await checkSealingKey(o.store, o.box, o.clock);
  const nodeId = newNodeId();
  const credentials = await credentialsFor(o.credentials, nodeId, o.clock.now());
  const port = Number(new URL(o.nodeUrl).port);
  const counters = new ClusterCounters();
  const server = new LinkServer({ credentials, onForwardedStream: o.onForwardedStream, logger: o.logger, counters });
  let linkPort: number;
  try {
    linkPort = await server.listen(port, o.listen);
  } catch (err) {
    throw new TunnError('CONFIG_INVALID', `listening for the other relays on ${o.listen}:${port} (the port of --node-url ${o.nodeUrl}): ${(err as Error).message}; choose a free port in --node-url`, { cause: err });
  }
  const nodes = new NodeRegistry({ store: o.store, clock: o.clock, ttlMs });
  const leases = new StoreLeaseTable({ store: o.store, ttlMs });
  const link = new LinkClient({ credentials });
  const directory = new ClusterDirectory(o.directory, { nodeId, leases, clock: o.clock, logger: o.logger, leaseOf: o.leaseOf });
  const heartbeat = new ClusterHeartbeat({ nodeId, url: o.nodeUrl, version: o.version, nodes, leases, clock: o.clock, logger: o.logger, held: () => directory.held(), onLost: (c) => directory.lost(c), counters });
  try {
    await nodes.join({ id: nodeId, url: o.nodeUrl, version: o.version });
  } catch (err) {
    await server.close();
    throw err;
  }
  const listener =
    o.storeUrl && o.store.dialect === 'postgres'
      ? new PgListener({
          url: o.storeUrl,
          channels: [LEASE_CHANNEL, IDENTITY_CHANNEL],
          onNotify: (channel, host) => {
            if (channel === IDENTITY_CHANNEL) return void o.onIdentityChange?.(host);
            o.onLeaseChange?.(host);
            void directory.recheck(host).catch((err) => o.logger.warn({ event: 'cluster_recheck_failed', host, err: String(err) }, 'checking a lease change failed: the heartbeat retries'));
          },
          // Changes announced while deaf are caught by a beat.
          onConnect: () => {
            void heartbeat.beat();
            o.onIdentityChange?.('*');
          },
          logger: o.logger,
          counters,
        })
      : undefined;
  // Not fatal: without it, changes arrive with the heartbeat; the listener keeps retrying.
  await listener?.start().catch((err) => o.logger.warn({ event: 'cluster_listen_failed', err: String(err) }, 'cannot listen for cluster changes yet: retrying'));
  heartbeat.start(Math.max(100, Math.floor(ttlMs / 3)));
  o.logger.info({ event: 'cluster_joined', node: nodeId, url: o.nodeUrl }, `joined the cluster as node ${nodeId} (${o.nodeUrl})`);
  const forwarder = new ClusterForwarder({ nodeId, nodes, leases, link, clock: o.clock, counters });
  return {
    nodeId,
    linkPort,
    directory,
    nodes,
    leases,
    forwarder,
    heartbeat,
    counters,
    registerMetrics: (registry) => registerClusterMetrics(registry, { counters, databaseReachable: () => heartbeat.databaseReachable, nodesAlive: () => heartbeat.nodesAlive }),
    async close() {
      await listener?.close();
      await heartbeat.stop();
      await directory.settled();
      await nodes.leave(nodeId).catch((err) => o.logger.warn({ event: 'cluster_leave_failed', err: String(err) }, 'could not remove this node from the cluster database: its leases expire by themselves'));
      link.close();
      await server.close();
    },
  };
}
