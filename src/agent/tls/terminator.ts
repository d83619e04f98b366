import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { TunnError } from '../../lib/errors.ts';
import type { TlsContexts } from './contexts.ts';

// TLS that ends at the agent. The relay routes a visitor's TLS connection by SNI and hands the
// agent its raw bytes (a `tls` data stream, ClientHello first); the agent terminates TLS here
// with its own certificate (TlsContexts: SNI → context), optionally requires a client
// certificate, and serves HTTP/1.1 on the decrypted bytes: each request, keep-alive and
// WebSocket upgrade goes to the handler, which runs the agent's gate before the target sees
// anything (agent-http.ts). A name without a certificate fails the handshake: the agent never
// serves a certificate for a name it was not given.

/** Who is on the other end of one terminated connection. */
export interface VisitorConnection {
  /** The visitor's address as the relay saw it (the passthrough stream's client). */
  clientIp: string;
  /** The SNI the visitor asked for (normalised by the caller of lookup). */
  servername: string;
  /** The verified client certificate's subject, with --client-ca. */
  clientCertSubject?: string;
}

export interface TlsHandler {
  request(req: IncomingMessage, res: ServerResponse, conn: VisitorConnection): void;
  /** A request with Upgrade (WebSocket…); `head` is what followed the request head. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, conn: VisitorConnection): void;
}

/** Where a terminated connection goes instead of HTTP (`tunn tls --backend tcp`): its bytes. */
export interface ByteServe {
  connection(socket: TLSSocket, conn: VisitorConnection): void;
  /** The only ALPN protocols negotiated (--alpn); absent or empty: none is selected. */
  alpn?: string[];
}

export interface TerminatorOptions {
  contexts: TlsContexts;
  handler: TlsHandler;
  /** Idle keep-alive timeout in ms (default 60 s). */
  keepAliveTimeoutMs?: number;
  /** How long a handshake may take (default 30 s). */
  handshakeTimeoutMs?: number;
  /** A connection that failed before HTTP (handshake refused, no certificate for the name, bad client certificate). */
  onTlsError?: (err: TunnError, clientIp: string) => void;
  /** A visitor's client certificate was missing or refused (--client-ca), for the SNI `servername` (a security event). */
  onClientCertRefused?: (clientIp: string, servername: string) => void;
}

const CONN = Symbol('tunn.visitor');
type Tagged = TLSSocket & { [CONN]?: VisitorConnection };

/** Terminates TLS on raw visitor streams and serves HTTP/1.1 on them. One per agent. */
export class TlsTerminator {
  readonly #o: TerminatorOptions;
  readonly #http: Server;
  readonly #open = new Set<TLSSocket>();

  constructor(opts: TerminatorOptions) {
    this.#o = opts;
    this.#http = createServer({ keepAliveTimeout: opts.keepAliveTimeoutMs ?? 60_000, requestTimeout: 0 });
    this.#http.on('request', (req, res) => opts.handler.request(req, res, (req.socket as Tagged)[CONN]!));
    this.#http.on('upgrade', (req, socket, head) => opts.handler.upgrade(req, socket, head, (socket as Tagged)[CONN]!));
    this.#http.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Connections whose TLS handshake completed and that are still open. */
  get openConnections(): number {
    return this.#open.size;
  }

  /**
   * Takes one visitor connection: `raw` carries the visitor's TLS bytes (ClientHello first)
   * and receives the agent's. Returns at once; the connection lives until either side closes.
   * With `serve` (`tunn tls --backend tcp --terminate-at agent`), the decrypted connection goes
   * to it, as bytes, instead of to the HTTP handler. ALPN then is `serve.alpn` (--alpn): a
   * client offering protocols, none of them listed, fails the handshake (no_application_protocol,
   * so a connection meant for another protocol is not fed to the target); without a list no
   * protocol is selected and whatever the client offers is ignored.
   */
  accept(raw: Duplex, clientIp: string, serve?: ByteServe): void {
    const contexts = this.#o.contexts;
    let servername = '';
    const tls: Tagged = new TLSSocket(raw, {
      isServer: true,
      secureContext: contexts.base,
      ...(serve ? (serve.alpn?.length ? { ALPNProtocols: serve.alpn } : {}) : { ALPNProtocols: ['http/1.1'] }),
      requestCert: contexts.requiresClientCert,
      rejectUnauthorized: contexts.requiresClientCert,
      SNICallback: (name, cb) => {
        servername = name;
        const ctx = contexts.lookup(name);
        if (ctx) cb(null, ctx);
        else cb(new TunnError('NOT_FOUND', `no certificate for "${name.slice(0, 253)}" at this agent`));
      },
    });
    const fail = (err: unknown, clientCert = false): void => {
      if (clientCert && servername) this.#o.onClientCertRefused?.(clientIp, servername);
      const e = err instanceof TunnError ? err : new TunnError('FORBIDDEN', `TLS with the visitor failed${servername ? ` (SNI ${servername})` : ''}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.#o.onTlsError?.(e, clientIp);
      tls.destroy();
      raw.destroy();
    };
    // With --client-ca, OpenSSL ends the handshake itself when the certificate is missing or does not verify.
    const onError = (err: unknown): void => fail(err, contexts.requiresClientCert && isClientCertError(err));
    tls.once('error', onError);
    raw.once('error', () => tls.destroy());
    raw.once('close', () => tls.destroy());
    // A handshake that never completes must not hold the stream forever.
    const handshakeTimer = setTimeout(() => fail(new TunnError('FORBIDDEN', 'the TLS handshake did not complete within 30 s')), this.#o.handshakeTimeoutMs ?? 30_000);
    handshakeTimer.unref();
    tls.once('close', () => clearTimeout(handshakeTimer));
    tls.once('secure', () => {
      clearTimeout(handshakeTimer);
      if (!servername) return fail(new TunnError('FORBIDDEN', 'the visitor sent no SNI: the agent serves names only'));
      const peer = contexts.requiresClientCert ? tls.getPeerX509Certificate() : undefined;
      const problem = contexts.requiresClientCert ? contexts.clientCertProblem(peer) : undefined;
      if (problem) return fail(new TunnError('FORBIDDEN', problem), true);
      tls.removeListener('error', onError);
      tls.on('error', () => tls.destroy());
      tls[CONN] = { clientIp, servername, ...(peer ? { clientCertSubject: peer.subject.replaceAll('\n', ', ') } : {}) };
      this.#open.add(tls);
      tls.once('close', () => this.#open.delete(tls));
      if (serve) serve.connection(tls, tls[CONN]);
      else this.#http.emit('connection', tls);
    });
  }

  /** Closes every open connection (agent shutdown). */
  close(): void {
    for (const s of this.#open) s.destroy();
    this.#http.close();
  }
}

/** Whether a handshake error is about the visitor's client certificate (not our own SNI lookup, which throws a TunnError). */
function isClientCertError(err: unknown): boolean {
  if (err instanceof TunnError || !(err instanceof Error)) return false;
  const code = String((err as NodeJS.ErrnoException).code ?? '');
  return /CERT|PEER_DID_NOT_RETURN/i.test(code) || /certificate/i.test(err.message);
}
