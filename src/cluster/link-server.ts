import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { errorMessage, isTunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { ALPN_CLUSTER_LINK, LINK_ERRORS, LINK_HEADERS, parseForwardRequest, type ForwardRequest, type LinkErrorCode, type LinkStreamKind } from '../protocol/cluster-link.ts';
import { agentServerOptions } from '../protocol/h2-options.ts';
import { commonName, type LinkCredentials } from './credentials.ts';
import type { ClusterCounters } from './metrics.ts';

// The receiving end of the inter-relay link: an HTTP/2 server behind mutual TLS. Only a peer
// whose certificate chains to the cluster CA completes the handshake (no unauthenticated
// internal port); each CONNECT stream it opens is one visitor connection for a tunnel this
// relay holds, handed to the relay's callback. Wire format: src/protocol/cluster-link.ts.

/** The relay that sent a carried stream. */
export interface LinkPeerInfo {
  /** Its node id (the CN of its derived certificate; with certificate files, the CN they hold). */
  nodeId: string | undefined;
}

/**
 * Given a carried visitor stream for `host`, serve it like a visitor connection accepted
 * here. Throw to refuse before anything is sent: a TunnError NOT_FOUND means "not served
 * here" (the dialler tries another holder), anything else "unavailable". Once it returns,
 * the stream is the callback's; the link answers 200 unless the callback already wrote.
 * A callback that must decide first (a `tunn connect` stream: the allow-list) returns a
 * promise: the link then answers when it settles (a rejection refuses as a throw does:
 * FORBIDDEN with its message for the user), unless the callback answered itself.
 */
export type ForwardedStreamHandler = (host: string, kind: LinkStreamKind, client: string, stream: ServerHttp2Stream, peer: LinkPeerInfo, request: ForwardRequest) => void | Promise<void>;

export interface LinkServerOptions {
  credentials: LinkCredentials;
  onForwardedStream: ForwardedStreamHandler;
  logger?: Logger;
  counters?: ClusterCounters;
}

/**
 * This end's connection window: 1 MiB, not the agent link's 64 MiB. Measured: when BOTH ends
 * of a Node HTTP/2 session open a 64 MiB window, a stream sending bulk both ways at once
 * stalls for good (each side stops reading while its writes are blocked). The dialling side
 * keeps the large window for downloads (holder → visitor); uploads have 1 MiB in flight.
 */
const UPLOAD_WINDOW = 1024 * 1024;

/** A header value safe to send: printable ASCII, bounded. */
const headerText = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);

export class LinkServer {
  readonly #tls: tls.Server;
  readonly #h2: Http2Server;
  readonly #sessions = new Set<Http2Session>();
  readonly #peers = new WeakMap<Http2Session, LinkPeerInfo>();
  #accepting: LinkPeerInfo | undefined;
  readonly #o: LinkServerOptions;

  constructor(o: LinkServerOptions) {
    this.#o = o;
    const c = o.credentials;
    // TLS here, HTTP/2 on the verified socket (Node's secure HTTP/2 server would force ALPN h2).
    this.#tls = tls.createServer({
      ca: c.ca,
      cert: c.cert,
      key: c.key,
      // Mutual TLS: a client without a certificate from the cluster CA fails the handshake.
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [ALPN_CLUSTER_LINK],
      // A connection that never finishes its handshake does not hold a socket for long.
      handshakeTimeout: 10_000,
    });
    this.#tls.on('secureConnection', (socket) => this.#onSecure(socket));
    this.#tls.on('tlsClientError', (err) => o.logger?.warn({ event: 'cluster_link_refused', err: errorMessage(err) }, 'refused a connection to the cluster link (its certificate is not from this cluster\'s CA, or it speaks another protocol)'));
    this.#h2 = http2.createServer({ ...agentServerOptions, settings: { ...agentServerOptions.settings } });
    this.#h2.on('session', (session) => {
      this.#sessions.add(session);
      if (this.#accepting) this.#peers.set(session, this.#accepting);
      session.once('close', () => this.#sessions.delete(session));
      session.on('error', (err) => o.logger?.debug({ err: errorMessage(err) }, 'cluster link session failed'));
      session.once('connect', () => session.setLocalWindowSize(UPLOAD_WINDOW));
    });
    this.#h2.on('stream', (stream, headers) => this.#onStream(stream, headers));
  }

  #onSecure(socket: TLSSocket): void {
    socket.on('error', () => {});
    // rejectUnauthorized already made sure; checked again so a change of options cannot open the port.
    if (!socket.authorized || socket.alpnProtocol !== ALPN_CLUSTER_LINK) {
      socket.destroy();
      return;
    }
    // The h2 server emits 'session' synchronously from 'connection': the peer is bound to it there.
    this.#accepting = { nodeId: commonName(socket.getPeerCertificate()?.subject as { CN?: string }) };
    try {
      this.#h2.emit('connection', socket);
    } finally {
      this.#accepting = undefined;
    }
  }

  /** Listens on `port` (0: any free one) at `host`; resolves with the port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#tls.once('error', reject);
      this.#tls.listen(port, host, () => {
        this.#tls.off('error', reject);
        resolve((this.#tls.address() as AddressInfo).port);
      });
    });
  }

  /** Takes a raw socket accepted elsewhere (the edge, routing ALPN tunn-link/1): TLS happens here. */
  accept(socket: Socket): void {
    this.#tls.emit('connection', socket);
  }

  async close(): Promise<void> {
    const listening = this.#tls.listening;
    const closed = new Promise<void>((resolve) => this.#tls.close(() => resolve()));
    for (const s of this.#sessions) s.destroy();
    if (listening) await closed;
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // The caller gets the stream; an error nobody listens to must not end the relay.
    stream.on('error', () => {});
    const peer = stream.session ? this.#peers.get(stream.session) : undefined;
    if (!peer) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const parsed = parseForwardRequest(headers as Record<string, string | string[] | undefined>);
    if (!parsed.ok) return this.#refuse(stream, parsed.code, parsed.message, peer);
    const { host, kind, client } = parsed.request;
    const refuse = (err: unknown): void => {
      const code: LinkErrorCode = isTunnError(err, 'NOT_FOUND') ? 'NOT_HERE' : isTunnError(err, 'FORBIDDEN') ? 'FORBIDDEN' : 'UNAVAILABLE';
      // FORBIDDEN is a sentence for the user (tunn connect), passed on as it is.
      this.#refuse(stream, code, code === 'FORBIDDEN' ? errorMessage(err) : `${host}: ${errorMessage(err)}`, peer);
    };
    const accepted = (): void => {
      if (this.#o.counters) this.#o.counters.receivedAccepted++;
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 200 });
    };
    let answer;
    try {
      answer = this.#o.onForwardedStream(host, kind, client, stream, peer, parsed.request);
    } catch (err) {
      return refuse(err);
    }
    if (answer) answer.then(accepted, refuse);
    else accepted();
  }

  #refuse(stream: ServerHttp2Stream, code: LinkErrorCode, message: string, peer: LinkPeerInfo): void {
    if (this.#o.counters) this.#o.counters.receivedRefused++;
    this.#o.logger?.info({ event: 'cluster_link_refusal', code, peer: peer.nodeId, reason: message }, 'refused a stream from another relay');
    if (stream.destroyed || stream.headersSent) return;
    stream.respond({ ':status': LINK_ERRORS[code], [LINK_HEADERS.error]: code, [LINK_HEADERS.message]: headerText(message) }, { endStream: true });
  }
}
