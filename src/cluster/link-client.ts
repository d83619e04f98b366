import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import tls, { type PeerCertificate } from 'node:tls';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { ALPN_CLUSTER_LINK, forwardRequestHeaders, isLinkErrorCode, LINK_HEADERS, type ForwardRequest } from '../protocol/cluster-link.ts';
import { relaySessionOptions, SESSION_WINDOW } from '../protocol/h2-options.ts';
import { commonName, type LinkCredentials } from './credentials.ts';

// The dialling end of the inter-relay link: one HTTP/2 session per peer node, over mutual
// TLS, reused for every carried stream and opened again when it drops. `open` resolves once
// the peer accepted the stream (200), with the stream as the visitor connection's other end.
// It dials whatever URL it is given: callers take URLs only from live node rows
// (NodeRegistry.liveUrl, as ClusterForwarder does).

export interface LinkPeer {
  nodeId: string;
  /** https://host:port from the node's row. */
  url: string;
}

export interface LinkClientOptions {
  credentials: LinkCredentials;
  /** Connecting and waiting for the peer's answer: 10 s each. */
  timeoutMs?: number;
}

export class LinkClient {
  readonly #o: LinkClientOptions;
  readonly #sessions = new Map<string, Promise<ClientHttp2Session>>();

  constructor(o: LinkClientOptions) {
    this.#o = o;
  }

  /** Opens one carried stream for `req` to `peer`. Rejects NOT_FOUND when the peer does not serve the host, UNAVAILABLE otherwise. */
  async open(peer: LinkPeer, req: ForwardRequest): Promise<ClientHttp2Stream> {
    const session = await this.#session(peer);
    const timeoutMs = this.#o.timeoutMs ?? 10_000;
    const doing = `carrying a ${req.kind} connection for ${req.host} to relay node ${peer.nodeId} (${peer.url})`;
    return new Promise((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = session.request(forwardRequestHeaders(req), { endStream: false });
      } catch (err) {
        this.#drop(peer, session);
        reject(new TunnError('UNAVAILABLE', `${doing}: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      const timer = setTimeout(() => fail(new TunnError('UNAVAILABLE', `${doing}: no answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: TunnError) => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.on('error', () => {});
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(err);
      };
      const onEarlyEnd = (err?: Error) => fail(new TunnError('UNAVAILABLE', `${doing}: the stream ended before an answer${err ? ` (${errorMessage(err)})` : ''}`, { cause: err }));
      const onResponse = (headers: http2.IncomingHttpHeaders) => {
        stream.off('error', onEarlyEnd).off('close', onEarlyEnd);
        const status = Number(headers[':status']);
        if (status === 200) {
          clearTimeout(timer);
          // The caller owns the stream now; an error nobody listens to must not end the relay.
          stream.on('error', () => {});
          resolve(stream);
          return;
        }
        const code = headers[LINK_HEADERS.error];
        const why = String(headers[LINK_HEADERS.message] ?? `status ${status}`);
        // FORBIDDEN: the holder's allow-list refused a tunn connect user; its sentence is for the user.
        if (code === 'FORBIDDEN') return fail(new TunnError('FORBIDDEN', why));
        fail(new TunnError(code === 'NOT_HERE' ? 'NOT_FOUND' : 'UNAVAILABLE', `${doing}: refused (${isLinkErrorCode(code) ? code : status}): ${why}`));
      };
      stream.once('response', onResponse);
      stream.once('error', onEarlyEnd).once('close', onEarlyEnd);
    });
  }

  /** Closes every session (streams on them are cut). */
  close(): void {
    for (const p of this.#sessions.values()) void p.then((s) => s.destroy(), () => {});
    this.#sessions.clear();
  }

  #session(peer: LinkPeer): Promise<ClientHttp2Session> {
    const key = `${peer.nodeId} ${peer.url}`;
    const cached = this.#sessions.get(key);
    if (cached) return cached;
    const p = this.#connect(peer);
    this.#sessions.set(key, p);
    p.then(
      (s) => s.once('close', () => this.#sessions.get(key) === p && this.#sessions.delete(key)),
      () => this.#sessions.get(key) === p && this.#sessions.delete(key),
    );
    return p;
  }

  #drop(peer: LinkPeer, session: ClientHttp2Session): void {
    this.#sessions.delete(`${peer.nodeId} ${peer.url}`);
    session.destroy();
  }

  #connect(peer: LinkPeer): Promise<ClientHttp2Session> {
    const c = this.#o.credentials;
    const doing = `connecting to relay node ${peer.nodeId} at ${peer.url}`;
    let url: URL;
    try {
      url = new URL(peer.url);
      if (url.protocol !== 'https:') throw new Error('the node URL must be https://host:port');
    } catch (err) {
      return Promise.reject(new TunnError('UNAVAILABLE', `${doing}: ${errorMessage(err)}`));
    }
    const timeoutMs = this.#o.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      // TLS here, HTTP/2 on the verified socket (http2.connect would force ALPN h2).
      const socket = tls.connect({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || 443),
        ca: c.ca,
        cert: c.cert,
        key: c.key,
        minVersion: 'TLSv1.3',
        ALPNProtocols: [ALPN_CLUSTER_LINK],
        // The chain is checked against the cluster CA; with derived credentials the leaf must
        // also name the node we meant to reach (a stale row's address now used by another node).
        checkServerIdentity: (_host: string, cert: PeerCertificate) => {
          const cn = commonName(cert.subject as { CN?: string });
          return c.derived && cn !== peer.nodeId ? new Error(`the relay there is node ${cn ?? '(unnamed)'}, not ${peer.nodeId}`) : undefined;
        },
      });
      const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new TunnError('UNAVAILABLE', `${doing}: ${errorMessage(err)}`, { cause: err }));
      };
      const onClose = () => fail(new Error('the connection closed during the handshake'));
      socket.once('error', fail);
      socket.once('close', onClose);
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== ALPN_CLUSTER_LINK) return fail(new Error(`the peer does not speak ${ALPN_CLUSTER_LINK}`));
        clearTimeout(timer);
        socket.off('error', fail).off('close', onClose);
        const session = http2.connect(`https://${peer.nodeId}.link.invalid`, { ...relaySessionOptions, settings: { ...relaySessionOptions.settings }, createConnection: () => socket });
        // Under TLS 1.3 the client is done before the server has checked its certificate: the
        // peer accepted this relay only once its HTTP/2 SETTINGS arrive.
        const timer2 = setTimeout(() => refused(new Error(`no HTTP/2 settings within ${timeoutMs} ms`)), timeoutMs);
        const refused = (err: Error) => {
          clearTimeout(timer2);
          session.destroy();
          reject(new TunnError('UNAVAILABLE', `${doing}: ${errorMessage(err)}`, { cause: err }));
        };
        const onEarlyClose = () => refused(new Error("the relay closed the connection before accepting it: it accepts only certificates from its cluster's CA (give every relay the same cluster secret, or certificates from one --cluster-ca), or it is shutting down"));
        session.on('error', () => {});
        session.once('close', onEarlyClose);
        session.once('remoteSettings', () => {
          clearTimeout(timer2);
          session.off('close', onEarlyClose);
          session.setLocalWindowSize(SESSION_WINDOW);
          resolve(session);
        });
      });
    });
  }
}
