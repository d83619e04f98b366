import type { Socket } from 'node:net';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import { resetSocket, type SplicedStream } from '../lib/splice.ts';
import { carryConnection, carryStream } from './carry-connection.ts';
import { portTunnel } from './kind-ports.ts';
import type { ClientAddress } from './public-port-tunnel.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// `tunn tls` on the relay's HTTPS port (seed 000's backends):
//   --backend raw (default) with --public: the edge reads only the ClientHello's SNI and pipes
//     the bytes to the agent (a `tcp` stream, ClientHello first); the relay holds no
//     certificate for the name and never decrypts (the edge route `tls-to-agent`).
//   --backend tcp with --public: TLS ends here with the relay's certificate for the name, and
//     the decrypted bytes go to the agent as a `tcp` stream: the target receives plain TCP.
//   Private (no --public): no SNI route at all; only `tunn connect` reaches it. Plain HTTP (or
//     terminated HTTPS) for any tls host answers 426 (request-routing.ts).
// --allow-ip is checked before anything is carried. The edge route `tls-to-agent` (relay.ts)
// sends a name whose TLS ends at its agent (issue 12, agent-tls-relay.ts) there, and a tls
// passthrough name here. In a cluster, a raw connection another relay accepted for a name held
// here arrives as a link stream (carryCarried) and is carried the same way, its allow-list
// checked here against the visitor's address the link carries; for a --backend tcp name the
// relay the visitor reached ends TLS (the certificates are shared) and its plain bytes arrive
// as a link stream of kind tcp (carryCarriedTerminated), checked and carried the same way.

export interface TlsPassthroughOptions {
  directory: TunnelDirectory;
  idleTimeoutMs: number;
  logger: Logger;
}

export interface TlsPassthrough {
  /** The edge's question: TLS for `name` goes to an agent as raw bytes (a public raw tls tunnel). */
  endsAtAgent(name: string): boolean;
  /** The `tls-to-agent` route: the socket (ClientHello put back) carried raw to the tunnel of `name`. */
  carryRaw(socket: Socket, name: string): void;
  /**
   * A raw TLS connection for `name` that another relay of the cluster accepted, as a link
   * stream. Throws (before anything is carried) when no public raw tls tunnel of `name` is
   * here (NOT_FOUND) or its --allow-ip refuses the visitor (FORBIDDEN).
   */
  carryCarried(link: SplicedStream, name: string, client: ClientAddress): void;
  /**
   * The plain bytes of a connection whose TLS another relay of the cluster ended, for a public
   * `--backend tcp` tunnel of `name` here, as a link stream. Throws as carryCarried does.
   */
  carryCarriedTerminated(link: SplicedStream, name: string, client: ClientAddress): void;
  /** A public `--backend tcp` tls tunnel at `name`, whose decrypted bytes go to its agent. */
  backendTcp(name: string | undefined): Tunnel | undefined;
  /** Carries a connection whose TLS ended here to a `--backend tcp` tunnel. */
  carryTerminated(socket: Socket, t: Tunnel): void;
}

function tlsTunnel(directory: TunnelDirectory, name: string | undefined, backend: 'raw' | 'tcp'): Tunnel | undefined {
  if (!name) return undefined;
  const t = directory.get(normalizeHost(name));
  if (!t || t.options.kind !== 'tls' || !t.options.public) return undefined;
  return (t.options.backend ?? 'raw') === backend ? t : undefined;
}

export function createTlsPassthrough(o: TlsPassthroughOptions): TlsPassthrough {
  const carry = (socket: Socket, t: Tunnel): void => {
    const pt = portTunnel(o.directory, t, 'tcp');
    if (!pt.admits(socket.remoteAddress ?? '')) {
      t.metrics.drop('allow-ip');
      resetSocket(socket);
      return;
    }
    void carryConnection(socket, pt, { idleTimeoutMs: o.idleTimeoutMs }).then((outcome) => o.logger.debug({ host: t.host, outcome }, 'tls connection carried'));
  };
  // The visitor's address is the one the link carries: --allow-ip here and the PROXY header the agent writes use it.
  const carryLink = (link: SplicedStream, name: string, client: ClientAddress, backend: 'raw' | 'tcp'): void => {
    const t = tlsTunnel(o.directory, name, backend);
    if (!t) throw new TunnError('NOT_FOUND', `no public ${backend === 'raw' ? 'raw' : '--backend tcp'} tls tunnel at ${name} on this relay`);
    const pt = portTunnel(o.directory, t, 'tcp');
    if (!pt.admits(client.address)) {
      t.metrics.drop('allow-ip');
      throw new TunnError('FORBIDDEN', `${client.address} is not on the --allow-ip list of ${t.host}`);
    }
    void carryStream(link, pt, client, { idleTimeoutMs: o.idleTimeoutMs }).then((outcome) => o.logger.debug({ host: t.host, backend, outcome }, 'tls connection carried from another relay'));
  };
  return {
    endsAtAgent: (name) => tlsTunnel(o.directory, name, 'raw') !== undefined,
    carryRaw(socket, name) {
      const t = tlsTunnel(o.directory, name, 'raw');
      if (!t) return void socket.destroy();
      carry(socket, t);
    },
    carryCarried(link, name, client) {
      carryLink(link, name, client, 'raw');
    },
    carryCarriedTerminated(link, name, client) {
      carryLink(link, name, client, 'tcp');
    },
    backendTcp: (name) => tlsTunnel(o.directory, name, 'tcp'),
    carryTerminated: carry,
  };
}
