import type { Socket } from 'node:net';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import { carryConnection } from './carry-connection.ts';
import { portTunnel } from './kind-ports.ts';
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
// passthrough name here.

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
      socket.resetAndDestroy();
      return;
    }
    void carryConnection(socket, pt, { idleTimeoutMs: o.idleTimeoutMs }).then((outcome) => o.logger.debug({ host: t.host, outcome }, 'tls connection carried'));
  };
  return {
    endsAtAgent: (name) => tlsTunnel(o.directory, name, 'raw') !== undefined,
    carryRaw(socket, name) {
      const t = tlsTunnel(o.directory, name, 'raw');
      if (!t) return void socket.destroy();
      carry(socket, t);
    },
    backendTcp: (name) => tlsTunnel(o.directory, name, 'tcp'),
    carryTerminated: carry,
  };
}
