import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { forwardStream, type RequestLogEntry, type StreamWatch } from './forward.ts';
import { kindStreamHandlers } from './kind-handlers.ts';
import { readDataStream, refuseStream, type DataStreamRequest, type StreamHandlers } from './stream-handlers.ts';
import type { Target } from './target.ts';

// The relay's data streams at the agent: each one names its tunnel and kind (DESIGN.md decision
// 12), and is served by that kind's handler or refused with a typed code — never guessed at.
// HTTP is forwarded here (the relay rewrote the request heads; bytes are piped to the target);
// the other kinds by kind-handlers.ts, and TLS that ends here by the handlers the caller adds.

/** What serving a stream needs of a local tunnel. */
export interface ServedTunnel {
  readonly id: string;
  readonly target: Target;
  /** --client-ca: TLS ends here, so a stream whose TLS the relay ended is refused. */
  readonly clientCertRequired?: boolean;
  readonly ready?: { readonly host: string };
}

export interface DataStreamOptions<T extends ServedTunnel> {
  tunnel(id: string): T | undefined;
  verifyTargetTls: boolean;
  /** Called per forwarded HTTP request when request logging is on. */
  onRequest?: (e: RequestLogEntry & { tunnel: string }) => void;
  /** The inspector's capture, when it is on: a watch per forwarded connection of tunnel `index`. */
  inspect?: (index: number, tunnel: () => string, clientIp: string, onRequest?: (e: RequestLogEntry) => void) => StreamWatch;
  /** Handlers for kinds besides http, tcp and udp (TLS that ends here). */
  extra?: StreamHandlers<T>;
  notice(message: string): void;
  debug(message: string): void;
}

export class DataStreams<T extends ServedTunnel> {
  readonly #o: DataStreamOptions<T>;
  readonly #handlers: StreamHandlers<T>;
  /** When each tunnel last reported an unreachable target (reports are throttled). */
  readonly #targetErrorAt = new Map<string, number>();

  constructor(o: DataStreamOptions<T>) {
    this.#o = o;
    this.#handlers = {
      http: (stream, t, req) => this.#forwardHttp(stream, t, req),
      ...kindStreamHandlers<T>({ onTargetError: (host, message) => o.notice(`${host}: ${message}`) }),
    };
  }

  /** Serves one stream the relay opened on session `session` (1-based, for messages) other than the control stream. */
  serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, session: number): void {
    // A public client that hung up resets its stream: worth a debug line, not more.
    stream.on('error', (err) => this.#o.debug(`data stream ${stream.id ?? ''} on session ${session}: ${err.message}`));
    if (headers[':method'] !== 'CONNECT') {
      stream.respond({ ':status': 400 }, { endStream: true });
      return;
    }
    const req = readDataStream(headers);
    const t = this.#o.tunnel(req.tunnelId);
    if (!t) {
      stream.respond({ ':status': 404 }, { endStream: true });
      return;
    }
    // --client-ca: the relay ended TLS without asking for a client certificate (a relay that falls
    // back anyway, an older one): the visitor never reaches the target.
    if (t.clientCertRequired && (req.kind === 'http' || req.kind === 'tcp')) {
      this.#o.notice(`${t.ready?.host ?? t.id}: refused a connection whose TLS the relay ended (--client-ca: only connections whose TLS ends here, with a client certificate, reach the target)`);
      refuseStream(stream, 403, 'FORBIDDEN');
      return;
    }
    const handler = req.kind && (this.#handlers[req.kind] ?? this.#o.extra?.[req.kind]);
    if (!handler) {
      this.#o.debug(`refused a data stream of kind ${String(headers['tunn-kind']).slice(0, 32)} for ${t.ready?.host ?? t.id}: this agent does not serve it`);
      refuseStream(stream, 501, 'STREAM_KIND');
      return;
    }
    handler(stream, t, req);
  }

  #forwardHttp(stream: ServerHttp2Stream, t: T, req: DataStreamRequest): void {
    const log = this.#o.onRequest;
    const onRequest = log ? (e: RequestLogEntry) => log({ ...e, tunnel: t.ready?.host ?? t.id }) : undefined;
    const watch = this.#o.inspect?.(Number(t.id.slice(1)), () => t.ready?.host ?? t.id, req.clientIp, onRequest);
    forwardStream(stream, {
      target: t.target,
      verifyTargetTls: this.#o.verifyTargetTls,
      onRequest,
      watch,
      onTargetError: (err) => {
        // Visitors see only "not answering"; the address is for the owner, once per burst.
        const now = Date.now();
        if (now - (this.#targetErrorAt.get(t.id) ?? -Infinity) < 10_000) return;
        this.#targetErrorAt.set(t.id, now);
        this.#o.notice(`cannot reach ${t.target.display} for ${t.ready?.host ?? t.id}: ${err.code ?? err.message}; visitors get a 502 "not answering" page`);
      },
    });
  }
}
