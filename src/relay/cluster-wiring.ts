import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { HostsElsewhere } from '../cluster/hosts-elsewhere.ts';
import { startClusterNode, type ClusterCredentialsSource } from '../cluster/node.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { LinkStreamKind } from '../protocol/cluster-link.ts';
import type { Store } from '../store/store.ts';
import type { PublicSocket } from './http-proxy.ts';
import type { TunnelRegistry } from './registry.ts';
import type { TunnelDirectory } from './tunnel-directory.ts';

// The relay as one member of a cluster (issue 14): the relay's in-memory registry becomes the
// leased ClusterDirectory, a visitor connection for a tunnel held by another relay is carried
// there over the link (the gateway asks `heldElsewhere`), and a connection carried here from
// another relay is served as if accepted here (`serveCarried`). Which relay decides what: the
// relay that holds the tunnel (its agent's session is there) applies everything the gateway
// does (identity, IP allow-lists with the visitor's address the link carries, basic auth, rate
// limits counted per relay); the relay the visitor reached only ends TLS and carries bytes.

export interface RelayClusterConfig {
  /** `--node-url`: where the other relays reach this one (the link listens on its port). */
  nodeUrl: string;
  credentials: ClusterCredentialsSource;
  /** tunn's version, shown by `tunn relay status`. */
  version: string;
}

export interface RelayCluster {
  readonly nodeId: string;
  readonly directory: TunnelDirectory;
  /** A connection to the relay holding `host` (not this one), or undefined when none does. */
  heldElsewhere(host: string, client: string): Promise<Duplex | undefined>;
  /** Whether another relay serves `host` now (synchronous: a view kept fresh, hosts-elsewhere.ts). */
  servesElsewhere(host: string): boolean;
  registerMetrics(registry: Registry): void;
  close(): Promise<void>;
}

export interface JoinClusterOptions {
  config: RelayClusterConfig;
  store: Store;
  storeUrl: string | undefined;
  box: SecretBox;
  clock: Clock;
  logger: Logger;
  listen: string;
  registry: TunnelRegistry;
  /** Serves an HTTP connection carried here, TLS already ended at the relay the visitor reached. */
  serveHttp(conn: PublicSocket, clientIp: string): void;
  /**
   * Why a host may not be served from a connection whose TLS ended at another relay (its TLS
   * must end at its agent), or undefined. Such a connection is refused: raw TLS is not carried
   * between relays yet, and serving it would break the tunnel's promise.
   */
  tlsOnlyAtAgent?(host: string): string | undefined;
}

/** The visitor's IP from the link's client address (`ip`, `ip:port`, `[v6]:port`). */
export function clientIpOf(client: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(client);
  if (v6) return v6[1]!;
  const v4 = /^([0-9.]+):\d+$/.exec(client);
  return v4 ? v4[1]! : client;
}

export async function joinCluster(o: JoinClusterOptions): Promise<RelayCluster> {
  const log = o.logger;
  let directory: TunnelDirectory | undefined;
  let elsewhere: HostsElsewhere | undefined;
  const node = await startClusterNode({
    store: o.store,
    storeUrl: o.storeUrl,
    box: o.box,
    clock: o.clock,
    logger: log,
    version: o.config.version,
    nodeUrl: o.config.nodeUrl,
    listen: o.listen,
    credentials: o.config.credentials,
    directory: o.registry,
    // Public TCP/UDP ports are not carried between relays yet: every lease is by host.
    leaseOf: (t) => ({ kind: t.options.kind ?? 'http', port: null }),
    onLeaseChange: (host) => void elsewhere?.changed(host),
    onForwardedStream: (host, kind, client, stream) => {
      const t = directory?.get(host);
      if (!t) throw new TunnError('NOT_FOUND', `no live tunnel at ${host} on this relay`);
      if (kind !== 'http') throw new TunnError('UNAVAILABLE', `${kind} connections are not carried between relays yet`);
      // A tcp/udp/tls (passthrough) tunnel is never served as HTTP from TLS another relay ended.
      const tunnelKind = t.options.kind ?? 'http';
      if (tunnelKind !== 'http') throw new TunnError('UNAVAILABLE', `${host} is a ${tunnelKind} tunnel, and ${tunnelKind} connections are not carried between relays yet`);
      const atAgent = o.tlsOnlyAtAgent?.(host);
      if (atAgent) throw new TunnError('UNAVAILABLE', atAgent);
      o.serveHttp(stream as unknown as PublicSocket, clientIpOf(client));
    },
  });
  directory = node.directory;
  const view = (elsewhere = new HostsElsewhere({ nodeId: node.nodeId, leases: node.leases, clock: o.clock, logger: log }));
  await view.start();
  return {
    nodeId: node.nodeId,
    directory: node.directory,
    async heldElsewhere(host, client) {
      try {
        return await node.forwarder.forward(host, 'http', client);
      } catch (err) {
        if (isTunnError(err, 'NOT_FOUND')) return undefined;
        log.warn({ event: 'cluster_forward_failed', host, err: errorMessage(err) }, 'could not carry a visitor to the relay holding the tunnel');
        return undefined;
      }
    },
    servesElsewhere: (host) => view.has(host),
    registerMetrics: (registry) => node.registerMetrics(registry),
    close: async () => {
      view.stop();
      await node.close();
    },
  };
}
