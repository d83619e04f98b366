import type { ClientHttp2Stream, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { HostsElsewhere, type PortElsewhere } from '../cluster/hosts-elsewhere.ts';
import { leaseKindOf, routedRaw, tunnelKindOfLease } from '../cluster/lease-kinds.ts';
import type { LeaseKind } from '../cluster/leases.ts';
import type { ClusterCredentialsSource } from '../cluster/node.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import { resetSocket, splice, type SplicedStream } from '../lib/splice.ts';
import type { ForwardRequest } from '../protocol/cluster-link.ts';
import type { ConnectKind } from '../protocol/connect.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import type { Store } from '../store/store.ts';
import type { PublicSocket } from './http-proxy.ts';
import type { PortsElsewhere } from './kind-ports.ts';
import { cleanIp } from './own-host.ts';
import type { ClientAddress } from './public-port-tunnel.ts';
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
  /** The kind of the tunnel another relay serves at `host` (http, tcp, udp, tls), if any (`tunn connect` reaches tcp/udp/tls ones over the link). */
  kindElsewhere(host: string): string | undefined;
  /** The lease kind of the tunnel another relay serves at `host`, if any. */
  leaseKindElsewhere(host: string): LeaseKind | undefined;
  /** Whether another relay serves a public `tunn tls --backend tcp` tunnel at `host`: TLS ends here and `carryTerminated` carries the plain bytes. */
  tlsTcpElsewhere(host: string): boolean;
  /** A connection whose TLS ended here for a `--backend tcp` tls tunnel another relay holds: its plain bytes carried there (link kind tcp); reset when no relay takes it. */
  carryTerminated(socket: Socket, host: string, idleTimeoutMs: number): void;
  /** A link stream to the relay holding `host` for a `tunn connect` user this relay authenticated. */
  openConnect(host: string, kind: ConnectKind, connect: NonNullable<ForwardRequest['connect']>, client: string): Promise<ClientHttp2Stream>;
  /** Whether another relay serves a tls (passthrough) tunnel, or one whose TLS ends at its agent, at `host`: the edge routes its raw TLS there. */
  rawTlsElsewhere(host: string): boolean;
  /** Whether TLS ends at its agent for `host` changed here (the agent reported ready, or fell back): its leases say so again. */
  tlsEndsChanged(host: string): void;
  /**
   * The edge's `tls-to-agent` route for a host held elsewhere (and `acme-tls-alpn-to-agent`,
   * kind `acme-tls-alpn`: a CA's TLS-ALPN-01 validation for an agent on another relay): the socket (ClientHello put
   * back, never decrypted here) carried raw to the holder; reset when no relay takes it.
   */
  carryRawTls(socket: Socket, host: string, idleTimeoutMs: number, kind?: 'tls' | 'acme-tls-alpn'): void;
  /** Public TCP/UDP ports of tunnels other relays hold: whether one is served there, and a link stream for a connection to it. */
  readonly portsElsewhere: PortsElsewhere;
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
   * must end at its agent), or undefined. Such a connection is refused (serving it would break
   * the tunnel's promise); the lease says `tls-at-agent` instead, so other relays carry its raw TLS.
   */
  tlsOnlyAtAgent?(host: string): string | undefined;
  /**
   * Serves a `tunn connect` stream carried here for a user the other relay authenticated
   * (connect-route.ts serveCarried): resolves once answered, rejects with the refusal.
   */
  serveConnect?(host: string, kind: ConnectKind, link: ServerHttp2Stream, connect: NonNullable<ForwardRequest['connect']>, client: ClientAddress): Promise<void>;
  /** Serves a raw TLS connection (a tls passthrough tunnel) carried here; throws to refuse it. */
  serveRawTls?(host: string, link: SplicedStream, client: ClientAddress): void;
  /** Serves the plain bytes of a connection whose TLS another relay ended, for a `--backend tcp` tls tunnel of this relay; throws to refuse it. */
  serveTlsTcp?(host: string, link: SplicedStream, client: ClientAddress): void;
  /** Serves a raw TLS connection carried here for a tunnel whose TLS ends at its agent; throws to refuse it. */
  serveAgentTls?(host: string, link: SplicedStream, client: ClientAddress): void;
  /** Serves a TLS-ALPN-01 validation carried here for an agent of this relay; throws to refuse it. */
  serveAlpnChallenge?(host: string, link: SplicedStream, client: ClientAddress): void;
  /** The public TCP/UDP port a tunnel of this relay holds (its lease records it), or null. */
  portOf?(host: string): number | null;
  /** Serves a connection (or UDP flow) of a public port carried here; throws to refuse it (kind-ports.ts carryCarried). */
  servePort?(host: string, protocol: 'tcp' | 'udp', link: SplicedStream, client: ClientAddress): void;
  /** Who may do what changed somewhere in the cluster (NOTIFY; the table, or `*` after the listener reconnects). */
  onIdentityChange?(table: string): void;
  /** The public ports of tunnels other relays hold, after each change (the relay listens on them too). */
  onPorts?(ports: PortElsewhere[]): void;
}

/** The visitor's IP from the link's client address (`ip`, `ip:port`, `[v6]:port`). */
export function clientIpOf(client: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(client);
  if (v6) return v6[1]!;
  const v4 = /^([0-9.]+):\d+$/.exec(client);
  return v4 ? v4[1]! : client;
}

/** The visitor's address and port from the link's client address (port 0 when it has none). */
export function clientAddressOf(client: string): ClientAddress {
  const port = /:(\d+)$/.exec(client);
  const address = clientIpOf(client);
  return { address, port: port && address !== client ? Number(port[1]) : 0 };
}

export async function joinCluster(o: JoinClusterOptions): Promise<RelayCluster> {
  const log = o.logger;
  let directory: TunnelDirectory | undefined;
  let elsewhere: HostsElsewhere | undefined;
  // Loaded only by a relay that joins a cluster: the link's certificates need @peculiar/x509, which
  // a single relay never loads (test/e2e/idle-memory.test.ts).
  const { startClusterNode } = await import('../cluster/node.ts');
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
    // A public tcp/udp tunnel's lease records its port: every relay listens on it (onPorts).
    // An http tunnel whose TLS ends at its agent is leased as `tls-at-agent`: other relays route its SNI raw.
    // A tls tunnel's lease says which (private, --backend tcp, raw, --backend tcp with TLS at its agent now), so other relays answer its visitors as the holder would.
    leaseOf: (t) => ({ kind: leaseKindOf(t.options, !!o.tlsOnlyAtAgent?.(t.host)), port: o.portOf?.(t.host) ?? null }),
    onLeaseChange: (host) => void elsewhere?.changed(host),
    onIdentityChange: (table) => o.onIdentityChange?.(table),
    onForwardedStream: (host, kind, client, stream, _peer, request) => {
      const t = directory?.get(host);
      if (!t) throw new TunnError('NOT_FOUND', `no live tunnel at ${host} on this relay`);
      if (request.connect) {
        if ((kind !== 'tcp' && kind !== 'udp') || !o.serveConnect) throw new TunnError('UNAVAILABLE', `a tunn connect stream of kind ${kind} is not served here`);
        return o.serveConnect(host, kind, stream, request.connect, clientAddressOf(client));
      }
      if (kind === 'acme-tls-alpn' && o.serveAlpnChallenge) return o.serveAlpnChallenge(host, splicedH2Stream(stream), clientAddressOf(client));
      const tunnelKind = t.options.kind ?? 'http';
      const atAgent = o.tlsOnlyAtAgent?.(host);
      if (kind === 'tls' && atAgent && o.serveAgentTls) return o.serveAgentTls(host, splicedH2Stream(stream), clientAddressOf(client));
      if (kind === 'tls' && tunnelKind === 'tls' && o.serveRawTls) return o.serveRawTls(host, splicedH2Stream(stream), clientAddressOf(client));
      if ((kind === 'tcp' || kind === 'udp') && tunnelKind === kind && o.servePort) return o.servePort(host, kind, splicedH2Stream(stream), clientAddressOf(client));
      // The plain bytes of a `--backend tcp` tls tunnel's visitor (TLS ended at the relay it reached); serveTlsTcp refuses any other tls tunnel.
      if (kind === 'tcp' && tunnelKind === 'tls' && !atAgent && o.serveTlsTcp) return o.serveTlsTcp(host, splicedH2Stream(stream), clientAddressOf(client));
      if (kind !== 'http') throw new TunnError('UNAVAILABLE', `${kind} connections to ${host} (a ${tunnelKind} tunnel) are not carried between relays`);
      // Security: a tunnel whose TLS ends at its agent is never served from TLS another relay ended.
      if (atAgent) throw new TunnError('UNAVAILABLE', atAgent);
      // HTTP to any other tunnel is served as if accepted here: the gateway forwards only to http
      // tunnels (a tls tunnel answers 426, a tcp/udp one 404), as for a visitor of this relay.
      o.serveHttp(stream as unknown as PublicSocket, clientIpOf(client));
    },
  });
  directory = node.directory;
  // A visitor's socket (raw TLS, ClientHello put back; or plain bytes after TLS ended here) carried to the holder.
  const carry = (socket: Socket, host: string, idleTimeoutMs: number, kind: 'tls' | 'acme-tls-alpn' | 'tcp'): void => {
    socket.on('error', () => {});
    const ip = cleanIp(socket.remoteAddress);
    const client = `${ip.includes(':') ? `[${ip}]` : ip}:${socket.remotePort ?? 0}`;
    node.forwarder.forward(host, kind, client).then(
      (link) => {
        if (socket.destroyed) return void link.destroy();
        void splice(socket, splicedH2Stream(link), { idleTimeoutMs });
      },
      (err: unknown) => {
        if (!isTunnError(err, 'NOT_FOUND')) log.warn({ event: 'cluster_forward_failed', host, kind, err: errorMessage(err) }, 'could not carry a connection to the relay holding the tunnel');
        resetSocket(socket);
      },
    );
  };
  const view = (elsewhere = new HostsElsewhere({ nodeId: node.nodeId, leases: node.leases, clock: o.clock, logger: log, onPorts: o.onPorts }));
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
    rawTlsElsewhere: (host) => routedRaw(view.kindOf(host)),
    tlsTcpElsewhere: (host) => view.kindOf(host) === 'tls-tcp',
    leaseKindElsewhere: (host) => view.kindOf(host),
    tlsEndsChanged: (host) => node.directory.rewrite(host),
    kindElsewhere: (host) => {
      const k = view.kindOf(host);
      return k && tunnelKindOfLease(k);
    },
    openConnect: (host, kind, connect, client) => node.forwarder.forward(host, kind, client, connect),
    carryRawTls(socket, host, idleTimeoutMs, kind = 'tls') {
      carry(socket, host, idleTimeoutMs, kind);
    },
    carryTerminated(socket, host, idleTimeoutMs) {
      carry(socket, host, idleTimeoutMs, 'tcp');
    },
    portsElsewhere: {
      serves: (host, protocol, port) => view.servesPort(host, protocol, port),
      async open(host, protocol, client) {
        const ip = cleanIp(client.address);
        return splicedH2Stream(await node.forwarder.forward(host, protocol, `${ip.includes(':') ? `[${ip}]` : ip}:${client.port}`));
      },
    },
    registerMetrics: (registry) => node.registerMetrics(registry),
    close: async () => {
      view.stop();
      await node.close();
    },
  };
}
