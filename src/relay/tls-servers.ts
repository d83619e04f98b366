import type { Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { ALPN_ACME_TLS, ALPN_TUNNEL } from '../protocol/messages.ts';
import { HANDSHAKE_TIMEOUT_MS } from '../protocol/timing.ts';
import type { OwnCertificateSource } from './own-certificate.ts';

// The TLS the relay terminates itself, one server per edge route: agent links (its own
// name's certificate, ALPN tunn/1), public TLS (a certificate per SNI, HTTP/1.1 inside) and
// the answer to a TLS-ALPN-01 validation. The edge hands each its routed sockets.

/** Where TLS certificates for the public side come from (static files, dev CA, ACME manager). */
export interface CertSource extends OwnCertificateSource {
  /** TLS-ALPN-01: the challenge context for a name, if one is pending (a promise when it is read from the cluster's database). */
  alpnChallengeContext?(servername: string): SecureContext | undefined | Promise<SecureContext | undefined>;
  /** TLS-ALPN-01: whether a challenge for the name is known to be pending (here, or in the cluster's last read). */
  hasAlpnChallenge?(servername: string): boolean;
  /** A relay of a cluster: challenges other relays present are answered here too (read from the database). */
  sharedAlpnChallenges?: boolean;
}

export interface TlsServers {
  /** Takes a routed socket: TLS for an agent link. */
  agentLink(socket: Socket): void;
  /** Takes a routed socket: public TLS, terminated here. */
  publicTls(socket: Socket): void;
  /**
   * Answers a TLS-ALPN-01 validation with the challenge certificate, then closes. Without a
   * challenge for the name: `orElse` takes the socket, else it is closed.
   */
  acmeTlsAlpn(socket: Socket, serverName: string, orElse?: (socket: Socket) => void): void;
}

export interface TlsServersOptions {
  certs: CertSource;
  /** The relay's own name (agents dial it). */
  domain: string;
  /** The relay's own context as last obtained (used when the source has none for it right now). */
  ownContext(): SecureContext | undefined;
  onAgentLink(s: TLSSocket): void;
  onPublic(s: TLSSocket): void;
  logger: Logger;
}

export function createTlsServers(o: TlsServersOptions): TlsServers {
  // Agents get the relay's current certificate (a renewed one as soon as it exists).
  const agentTls = tls.createServer({
    SNICallback: (_name, cb) => {
      Promise.resolve(o.certs.contextFor(o.domain)).then(
        (ctx) => cb(null, ctx ?? o.ownContext()),
        () => cb(null, o.ownContext()),
      );
    },
    ALPNProtocols: [ALPN_TUNNEL],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  agentTls.on('secureConnection', o.onAgentLink);
  agentTls.on('tlsClientError', (err) => o.logger.debug({ err: err.message }, 'agent TLS handshake failed'));
  const publicTls = tls.createServer({
    SNICallback: (name, cb) => {
      Promise.resolve(o.certs.contextFor(name)).then(
        (ctx) => cb(null, ctx ?? undefined),
        (err: unknown) => cb(err as Error),
      );
    },
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  publicTls.on('secureConnection', o.onPublic);
  publicTls.on('tlsClientError', (err) => o.logger.debug({ err: err.message }, 'public TLS handshake failed'));
  return {
    agentLink: (socket) => agentTls.emit('connection', socket),
    publicTls: (socket) => publicTls.emit('connection', socket),
    acmeTlsAlpn: (socket, serverName, orElse) => {
      const answer = (ctx: SecureContext | undefined): void => {
        socket.setTimeout(0);
        if (socket.destroyed) return;
        if (!ctx) {
          if (orElse) orElse(socket);
          else socket.destroy();
          return;
        }
        const t = new tls.TLSSocket(socket, { isServer: true, secureContext: ctx, ALPNProtocols: [ALPN_ACME_TLS] });
        t.on('secure', () => t.end());
        t.on('error', (err) => {
          o.logger.debug({ sni: serverName, err: errorMessage(err) }, 'answering a TLS-ALPN-01 validation failed');
          socket.destroy();
        });
      };
      const ctx = o.certs.alpnChallengeContext?.(serverName);
      if (!(ctx instanceof Promise)) return answer(ctx);
      // Read from the cluster's database: a database that does not answer does not keep the socket.
      socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy());
      ctx.then(answer, (err: unknown) => {
        o.logger.debug({ sni: serverName, err: errorMessage(err) }, 'reading a TLS-ALPN-01 challenge failed');
        answer(undefined);
      });
    },
  };
}
