import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { GateDecision, GateRequest } from '../auth/gate.ts';
import type { Principal } from '../auth/revocation.ts';
import type { Logger } from '../lib/logger.ts';
import { newRequestId } from '../lib/page.ts';
import { headerValue, Http1Framer, HttpParseError, keepAlive, wantsUpgrade, type MessageHead } from '../lib/http1.ts';
import { TARGET_ERROR_HEADER, type Refusal } from '../protocol/messages.ts';
import { forwardRequestHeaders, forwardTrailers, serializeTrailers } from './forward-headers.ts';
import { pages, serializeResponse, type LocalResponse } from './pages.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';
import { normalizeHost, originFormTarget } from './request-target.ts';
import { decideUpgrade } from './upgrades.ts';

// The public side of the relay for HTTP: one PublicConnection per client TCP (or TLS)
// connection. Every request head is parsed here (routing and policy are per request); the
// rewritten head and the body bytes go to the agent on ONE HTTP/2 stream per connection, and
// the agent's bytes come back and are written to the client as they are, watched by a
// response framer (to know when responses end, for 101 upgrades, and for metrics).

// Per-request access decision (identity, IP allow-list, basic auth, rate limits): the
// request and decision shapes are identity's gate (src/auth/gate.ts); access.ts builds one.
export type { GateDecision, GateRequest };

/** The relay's per-request access check on a tunnel (identity's gate behind it). */
export interface AccessCheck {
  check(req: GateRequest, tunnel: Tunnel): GateDecision | Promise<GateDecision>;
  /** True when every request to this tunnel is allowed unchanged (the gateway then skips check). */
  passes?(tunnel: Tunnel): boolean;
}

export interface GatewayOptions {
  /** Which tunnel serves a host, and over which agent sessions. */
  directory: TunnelDirectory;
  logger: Logger;
  /** Is this the relay's own host (API, login pages, metrics)? */
  isRelayHost(host: string): boolean;
  /** Takes over a connection whose first request is for the relay's own host. */
  serveRelayHost(conn: Duplex): void;
  /** Per-request policy; absent → every tunnel is open (used before identity is configured). */
  access?: AccessCheck;
  /** Answers plain-HTTP requests the relay handles itself (ACME HTTP-01, redirect to HTTPS). */
  plainHook?: (head: MessageHead, host: string) => LocalResponse | undefined;
  /** Largest request head accepted (bytes). */
  maxHeadSize: number;
  /** Close connections with no traffic either way for this long. */
  idleTimeoutMs: number;
  /** Close a connection whose request head is not complete after this long. */
  headTimeoutMs: number;
  /** Is this host a tunnel name someone holds, with its agent away (→ offline page, not 404)? */
  isKnownHost?(host: string): Promise<boolean>;
  /** Whether an Authorization value carries one of tunn's own tokens (stripped before any origin). */
  isTunnCredential?(authorization: string): boolean;
  /** A request on `tunnel` the relay answered itself (refused at the edge, target down): for the owner's request log. */
  onRefused?(tunnel: Tunnel, refusal: Refusal): void;
}

// Response bytes held for a slow client before the agent stream is paused (HTTP/2 flow control
// then holds the rest at the agent).
const MAX_CLIENT_BUFFER = 256 * 1024;
// Response pieces from this size on are gathered per event loop turn (see #onUpstreamData).
const BATCH_FROM = 4 * 1024;
/**
 * Requests forwarded on one connection whose response has not ended. At this many the relay
 * stops parsing and reading the client until a response ends: a client pipelining requests to
 * a target that never answers must not grow the relay's (and the agent's) memory without end.
 */
export const MAX_PIPELINED = 32;

/** What the relay knows of a live public connection, to cut it when its right to exist ends. */
export interface LiveConnection {
  /**
   * Every credential the connection still acts for: those of forwarded requests whose response
   * has not ended (a pipelined request must not hide an earlier one's still-streaming answer),
   * the upgrade's after a 101, and the last allowed request's while idle. Empty: none, or a
   * public tunnel. The connection loses its right when any of them does.
   */
  readonly principals: readonly Principal[];
  /** The tunnel it is bound to, once a request was forwarded. */
  readonly tunnel: Tunnel | undefined;
}

type Segment = { k: 'head'; head: MessageHead } | { k: 'body'; data: Buffer } | { k: 'end' };

export class Gateway {
  readonly opts: GatewayOptions;
  readonly open = new Set<PublicConnection>();

  constructor(opts: GatewayOptions) {
    this.opts = opts;
  }

  /** Serves a public connection. `secure`: it arrived over TLS. */
  accept(socket: Socket, secure: boolean, remoteAddress: string): void {
    const c = new PublicConnection(this, socket, secure, remoteAddress);
    this.open.add(c);
    socket.once('close', () => this.open.delete(c));
  }

  closeAll(): void {
    for (const c of this.open) c.destroy();
  }

  /**
   * Destroys every live connection `match` picks (upgraded, mid-response or idle keep-alive
   * alike): revocation and lost domains go through here. Returns how many were cut.
   */
  cut(match: (c: LiveConnection) => boolean): number {
    let n = 0;
    for (const c of this.open) {
      if (!match(c)) continue;
      this.open.delete(c);
      c.destroy();
      n++;
    }
    return n;
  }
}

class PublicConnection implements LiveConnection {
  readonly #gw: Gateway;
  readonly #socket: Socket;
  readonly #secure: boolean;
  readonly #clientIp: string;
  readonly #req: Http1Framer;
  readonly #res: Http1Framer;
  #segments: Segment[] = [];
  #pendingChunks: Buffer[] = [];
  #busy = false;
  #stream: ClientHttp2Stream | undefined;
  #tunnel: Tunnel | undefined;
  /** Methods of forwarded requests whose final response has not started, in order. */
  #methods: string[] = [];
  /** Forwarded requests whose response has not ended (at most MAX_PIPELINED). */
  #inflight = 0;
  /** Request heads parsed and not yet handled (in #segments). */
  #queuedHeads = 0;
  /** The credential of each of those requests, in order (undefined: a public tunnel). */
  #inflightPrincipals: (Principal | undefined)[] = [];
  /** The credential of the last forwarded request (kept while the connection idles, or is upgraded). */
  #lastPrincipal: Principal | undefined;
  /** Status of the response head being read (1xx interim responses do not end an exchange). */
  #responseStatus = 0;
  /** Responses the relay writes itself, waiting for earlier forwarded responses to end. */
  #waitingForInflight: (() => void) | undefined;
  #currentAllowed = true;
  #upgradePending = false;
  #raw = false;
  #closing = false;
  #responseStarted = false;
  #headTimer: NodeJS.Timeout | undefined;
  /** Heads parsed so far, and the count when the head timer was armed (which head it times). */
  #headsParsed = 0;
  #timedHead = -1;
  #handedOver = false;
  #firstRequest = true;
  #batching = false;
  /** The id of the request head being handled: in the gate's pages, the relay's own and the log line. */
  #requestId: string | undefined;
  /** The request that opened the agent stream (named if the target cannot be reached). */
  #streamRequest: { method: string; path: string } | undefined;

  constructor(gw: Gateway, socket: Socket, secure: boolean, clientIp: string) {
    this.#gw = gw;
    this.#socket = socket;
    this.#secure = secure;
    this.#clientIp = clientIp;
    socket.setNoDelay(true);
    socket.setTimeout(gw.opts.idleTimeoutMs, () => this.destroy());
    this.#req = new Http1Framer(
      { kind: 'request', maxHeadSize: gw.opts.maxHeadSize },
      {
        onHead: (head) => {
          this.#headsParsed++;
          this.#queuedHeads++;
          // Bytes after a request asking for an upgrade may be the new protocol's (a WebSocket
          // client's first frame in the same packet): they are not parsed as HTTP until the
          // request is decided (refused or declined → HTTP; 101 → passed on raw).
          // While the connection may still be handed to the relay's own host, parsing stops
          // after each message too: the rest is handed over as received, pipelined heads included.
          // And it stops once MAX_PIPELINED requests are in flight or queued (see #pipelineFull).
          if (wantsUpgrade(head) || this.#firstRequest || this.#inflight + this.#queuedHeads >= MAX_PIPELINED) this.#req.pauseAfterMessage();
          this.#segments.push({ k: 'head', head });
        },
        onBody: (chunk, s, e) => this.#segments.push({ k: 'body', data: chunk.subarray(s, e) }),
        onMessageEnd: () => this.#segments.push({ k: 'end' }),
        // Trailers are rewritten like heads: no reserved field reaches the origin in them.
        onTrailers: (fields) => this.#segments.push({ k: 'body', data: serializeTrailers(forwardTrailers(fields)) }),
        // Chunk-size lines too: the origin gets the relay's canonical line (hex size, CRLF), never
        // the visitor's bytes, so an extension or spelling it reads differently cannot reframe the body.
        onChunkSize: (size) => this.#segments.push({ k: 'body', data: Buffer.from(`${size.toString(16)}\r\n`, 'latin1') }),
      },
    );
    this.#res = new Http1Framer(
      { kind: 'response', maxHeadSize: 256 * 1024, nextRequestMethod: () => this.#methods.shift(), keepFields: false },
      {
        onHead: (head) => this.#onResponseHead(head),
        onBody: () => {},
        onMessageEnd: () => this.#onResponseEnd(),
      },
    );
    socket.on('data', this.#onData);
    socket.on('end', () => this.#onClientEnd());
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.#onClientClose());
    this.#armHeadTimer();
  }

  get tunnel(): Tunnel | undefined {
    return this.#tunnel;
  }

  get principals(): Principal[] {
    const out: Principal[] = [];
    for (const p of this.#inflightPrincipals) if (p && !out.includes(p)) out.push(p);
    if (this.#lastPrincipal && !out.includes(this.#lastPrincipal)) out.push(this.#lastPrincipal);
    return out;
  }

  destroy(): void {
    if (this.#stream && !this.#stream.closed) this.#cancelStream();
    this.#socket.destroy();
  }

  // ---------- client → relay ----------

  readonly #onData = (chunk: Buffer): void => {
    if (this.#raw) {
      this.#writeUpstream(chunk);
      return;
    }
    if (this.#busy || this.#upgradePending || this.#pipelineFull || this.#pendingChunks.length > 0) {
      // Bytes read before the socket paused: kept in order behind what is already waiting.
      this.#pendingChunks.push(chunk);
      this.#socket.pause();
      if (!this.#busy && this.#segments.length === 0) this.#drainPendingChunks();
      return;
    }
    this.#feed(chunk);
  };

  /** MAX_PIPELINED requests await their response: nothing more is parsed or read until one ends. */
  get #pipelineFull(): boolean {
    return this.#inflight >= MAX_PIPELINED;
  }

  #feed(chunk: Buffer): void {
    let used: number;
    try {
      used = this.#req.execute(chunk);
    } catch (err) {
      this.#segments = [];
      this.#parseError(err);
      return;
    }
    if (used < chunk.length) this.#pendingChunks.unshift(chunk.subarray(used));
    this.#armHeadTimer();
    this.#drainSegments();
  }

  /** Processes parsed segments in order; async gate decisions pause the connection. */
  #drainSegments(): void {
    while (this.#segments.length > 0 && !this.#busy && !this.#closing) {
      if (this.#segments[0]!.k === 'head' && this.#pipelineFull) return;
      const seg = this.#segments.shift()!;
      if (seg.k === 'head') this.#queuedHeads--;
      if (seg.k === 'body') {
        if (this.#currentAllowed) this.#writeUpstream(seg.data);
        continue;
      }
      if (seg.k === 'end') {
        // The rest of the bytes wait for the upgrade's response (101 → raw, else HTTP).
        if (this.#upgradePending) return;
        // Not forwarded as an upgrade (refused, answered here, h2c sent as plain HTTP/1.1):
        // what follows is HTTP again.
        this.#req.resume();
        continue;
      }
      this.#busy = true;
      const done = this.#onRequestHead(seg.head);
      if (done instanceof Promise) {
        // Wait for the decision without reading further (pause only then: it costs a tick).
        this.#socket.pause();
        done.then(
          () => this.#resumeAfterHead(),
          (err: unknown) => {
            this.#gw.opts.logger.error({ err: String(err) }, 'request handling failed');
            this.destroy();
          },
        );
        return;
      }
      this.#busy = false;
    }
    if (!this.#busy && this.#segments.length === 0) this.#drainPendingChunks();
  }

  #resumeAfterHead(): void {
    this.#busy = false;
    this.#drainSegments();
  }

  #drainPendingChunks(): void {
    while (this.#pendingChunks.length > 0 && !this.#busy && !this.#upgradePending && !this.#closing && !this.#handedOver && !this.#pipelineFull) {
      if (this.#raw) {
        for (const c of this.#pendingChunks) this.#writeUpstream(c);
        this.#pendingChunks = [];
        break;
      }
      this.#feed(this.#pendingChunks.shift()!);
      if (this.#busy) return;
    }
    if (this.#pendingChunks.length === 0 && !this.#busy && !this.#upgradePending && !this.#closing && !this.#handedOver && !this.#pipelineFull && this.#socket.isPaused() && !this.#upstreamFull) {
      this.#socket.resume();
    }
  }

  #upstreamFull = false;

  #writeUpstream(data: Buffer): void {
    const s = this.#stream;
    if (!s || s.destroyed) return;
    if (this.#tunnel) this.#tunnel.metrics.bytesIn += data.length;
    if (!s.write(data) && !this.#upstreamFull) {
      this.#upstreamFull = true;
      this.#socket.pause();
      s.once('drain', () => {
        this.#upstreamFull = false;
        if (!this.#busy && !this.#upgradePending && !this.#pipelineFull && this.#pendingChunks.length === 0) this.#socket.resume();
      });
    }
  }

  /** Returns a promise only when it had to wait (gate, earlier responses). */
  #onRequestHead(head: MessageHead): void | Promise<void> {
    // The id is made only when something shows it (the gate's pages, the relay's own answers):
    // a request forwarded on a public tunnel costs nothing here.
    this.#requestId = undefined;
    const hostHeader = headerValue(head, 'host');
    let hostCount = 0;
    for (const n of head.names) if (n === 'host') hostCount++;
    if (hostCount > 1 || (head.versionMinor === 1 && hostCount === 0)) {
      return this.#respondLocal(pages.badRequest('The request needs exactly one Host header.'), head);
    }
    const host = normalizeHost(hostHeader ?? '');
    if (host === null) return this.#respondLocal(pages.badRequest('The Host header is malformed.'), head);
    // Origin-form only from here on (routing, the gate, the origin all see the same path).
    const target = originFormTarget(head.method, head.target, hostHeader ?? host, this.#secure);
    if (!target.ok) return this.#respondLocal(pages.badRequest(target.why), head);
    head.target = target.target;

    const opts = this.#gw.opts;
    const hook = opts.plainHook?.(head, host);
    if (hook) return this.#respondLocal(hook, head);

    if (opts.isRelayHost(host)) {
      // The relay's own server would leave a CONNECT unanswered: tunn is not a forward proxy.
      if (head.method === 'CONNECT') return this.#respondLocal(pages.methodNotAllowed(head.method), head);
      if (this.#firstRequest && !this.#stream) return this.#handOverToRelayHost(head);
      return this.#respondLocal(pages.misdirected(), head);
    }
    this.#firstRequest = false;

    const tunnel = opts.directory.get(host);
    if (!tunnel) {
      if (!opts.isKnownHost) return this.#respondLocal(pages.notFound(host), head);
      return opts.isKnownHost(host).then(
        (known) => this.#respondLocal(known ? pages.offline(host) : pages.notFound(host), head),
        () => this.#respondLocal(pages.notFound(host), head),
      );
    }
    if (this.#tunnel && this.#tunnel !== tunnel) return this.#respondLocal(pages.misdirected(), head);
    if (head.method === 'CONNECT') return this.#respondLocal(pages.methodNotAllowed(head.method), head, tunnel);

    const access = opts.access;
    if (!access || access.passes?.(tunnel)) return this.#forward(head, tunnel, undefined);
    const req: GateRequest = {
      method: head.method,
      path: head.target,
      host: (hostHeader ?? host).trim().toLowerCase(),
      secure: this.#secure,
      clientIp: this.#clientIp,
      headers: head.headers.map(([, v], i) => [head.names[i]!, v]),
      upgrade: wantsUpgrade(head),
      requestId: (this.#requestId = newRequestId()),
    };
    const decision = access.check(req, tunnel);
    if (decision instanceof Promise) return decision.then((d) => this.#applyDecision(d, head, tunnel));
    return this.#applyDecision(decision, head, tunnel);
  }

  #applyDecision(d: GateDecision, head: MessageHead, tunnel: Tunnel): void | Promise<void> {
    if (d.kind === 'respond') {
      const hasBody = head.headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k));
      if (d.refusal) this.#refused(tunnel, head.method, head.target, d.status, d.refusal);
      return this.#respondLocal({ status: d.status, headers: d.headers, body: d.body, close: hasBody }, head, tunnel);
    }
    return this.#forward(head, tunnel, d);
  }

  #handOverToRelayHost(head: MessageHead): void {
    // Give the connection, with what was read of it, to the relay's own HTTP server.
    this.#handedOver = true;
    this.#socket.removeListener('data', this.#onData);
    clearTimeout(this.#headTimer);
    // The framer stopped after this first message (see onHead): the segments are its body, and
    // #pendingChunks hold every byte after it as received (pipelined requests included).
    const rest: Buffer[] = [serializeHead(head, head.headers)];
    for (const seg of this.#segments) if (seg.k === 'body') rest.push(seg.data);
    this.#segments = [];
    rest.push(...this.#pendingChunks);
    this.#pendingChunks = [];
    this.#gw.opts.serveRelayHost(prependedDuplex(this.#socket, Buffer.concat(rest), this.#clientIp, this.#secure));
  }

  #forward(head: MessageHead, tunnel: Tunnel, d: Extract<GateDecision, { kind: 'allow' }> | undefined): void | Promise<void> {
    const up = decideUpgrade(head, tunnel.options.allowUpgrade);
    if (up.kind === 'refuse') {
      const r = pages.upgradeRefused(up.protocols);
      this.#refused(tunnel, head.method, head.target, r.status, { reason: 'upgrade', detail: `Upgrade: ${up.protocols.join(', ')} needs --allow-upgrade` });
      return this.#respondLocal(r, head, tunnel);
    }
    if (!this.#stream) {
      this.#streamRequest = { method: head.method, path: head.target };
      const ok = this.#openStream(tunnel);
      if (!ok) {
        this.#currentAllowed = false;
        this.#respondLocal(pages.offline(tunnel.host), head);
        return;
      }
    }
    const upgrade = up.kind === 'forward';
    const headers = forwardRequestHeaders(head, {
      clientIp: this.#clientIp,
      proto: this.#secure ? 'https' : 'http',
      host: headerValue(head, 'host') ?? tunnel.host,
      hostOverride: tunnel.options.hostHeader,
      upgrade: upgrade ? up.protocols : undefined,
      isTunnCredential: this.#gw.opts.isTunnCredential,
      remove: d?.removeHeaders,
      set: d?.setHeaders,
    });
    this.#currentAllowed = true;
    this.#lastPrincipal = d?.principal;
    this.#inflightPrincipals.push(d?.principal);
    this.#methods.push(head.method);
    this.#inflight++;
    if (upgrade) {
      this.#upgradePending = true;
      this.#req.pauseAfterMessage();
    }
    this.#writeUpstream(serializeHead(head, headers));
  }

  #openStream(tunnel: Tunnel): boolean {
    const reg = this.#gw.opts.directory;
    for (let attempt = 0; attempt < tunnel.sessions.length + 1; attempt++) {
      const session = reg.pickSession(tunnel);
      if (!session) {
        this.#gw.opts.logger.warn({ host: tunnel.host, sessions: tunnel.sessions.length }, 'no live agent session for the tunnel');
        return false;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session.openStream(tunnel, { kind: 'http', client: this.#clientIp });
      } catch (err) {
        this.#gw.opts.logger.warn({ host: tunnel.host, session: session.id.slice(0, 8), err: (err as Error).message }, 'cannot open a stream on an agent session');
        continue;
      }
      this.#attachStream(stream, tunnel);
      return true;
    }
    return false;
  }

  #attachStream(stream: ClientHttp2Stream, tunnel: Tunnel): void {
    this.#stream = stream;
    this.#tunnel = tunnel;
    tunnel.metrics.open++;
    stream.on('response', (headers) => {
      const status = Number(headers[':status']);
      if (status !== 200) {
        // "<code>" (older agents: "<target> <code>"); the target's address is not shown.
        const why = String(headers[TARGET_ERROR_HEADER] ?? '').trim();
        const code = why.slice(why.lastIndexOf(' ') + 1);
        const r = pages.targetDown(code);
        const first = this.#streamRequest;
        // The code is the agent's word (an errno or TLS error name): kept short.
        if (first) this.#refused(tunnel, first.method, first.path, r.status, { reason: 'target', detail: code.slice(0, 64) || undefined });
        this.#failBeforeResponse(r);
      }
    });
    stream.on('data', (chunk: Buffer) => this.#onUpstreamData(chunk));
    stream.on('end', () => {
      if (!this.#raw) this.#res.finish();
      if (!this.#responseStarted && this.#inflight > 0) {
        this.#lostBeforeResponse(tunnel);
        return;
      }
      this.#socket.end();
    });
    // A reset stream (the agent went, the target hung up) ends the client's connection in 'close' below.
    stream.on('error', (err) => this.#gw.opts.logger.debug({ host: tunnel.host, err: err.message }, 'data stream to the agent failed'));
    stream.on('close', () => {
      tunnel.metrics.open--;
      if (this.#socket.destroyed) return;
      if (!this.#responseStarted && this.#inflight > 0) {
        this.#lostBeforeResponse(tunnel);
      } else if (stream.rstCode !== undefined && stream.rstCode !== h2c.NGHTTP2_NO_ERROR) {
        this.#socket.destroy();
      } else {
        this.#socket.end();
      }
    });
    this.#socket.on('drain', () => {
      if (this.#stream?.isPaused()) this.#stream.resume();
    });
  }

  /** The stream ended before any response: the target closed without answering (or the agent went; then nobody hears the report). */
  #lostBeforeResponse(tunnel: Tunnel): void {
    if (this.#responseStarted || this.#socket.destroyed) return;
    const r = pages.tunnelLost();
    const first = this.#streamRequest;
    if (first) this.#refused(tunnel, first.method, first.path, r.status, { reason: 'target', detail: 'EMPTY_RESPONSE' });
    this.#failBeforeResponse(r);
  }

  #failBeforeResponse(r: LocalResponse): void {
    if (this.#responseStarted || this.#socket.destroyed) return;
    this.#responseStarted = true;
    this.#closing = true;
    this.#tunnel?.metrics.requests(r.status);
    const requestId = newRequestId();
    this.#logAnswer(requestId, r.status, this.#tunnel?.host, undefined);
    this.#socket.end(serializeResponse(r, { head: this.#methods[0] === 'HEAD', keepAlive: false, requestId }));
    this.#cancelStream();
  }

  // ---------- agent → client ----------

  #onUpstreamData(chunk: Buffer): void {
    this.#responseStarted = true;
    // The bytes go to the client first (responses pass through unchanged); tracking where each
    // response ends comes after, off the latency path.
    // HTTP/2 hands bulk DATA over in pieces of a TLS record or less; gathering the pieces of one
    // event loop turn into one write saves a syscall and a wake-up of the client per piece. A
    // small piece (a whole small response, as a rule) is written at once unless a batch is open.
    if (!this.#batching && chunk.length >= BATCH_FROM) {
      this.#batching = true;
      this.#socket.cork();
      setImmediate(this.#endBatch);
    }
    this.#socket.write(chunk);
    if (this.#socket.writableLength > MAX_CLIENT_BUFFER) this.#stream?.pause();
    if (this.#tunnel) this.#tunnel.metrics.bytesOut += chunk.length;
    if (!this.#raw) {
      try {
        this.#res.execute(chunk);
      } catch (err) {
        // The target answered with something that is not HTTP/1.1: pass it through as is.
        this.#gw.opts.logger.warn({ host: this.#tunnel?.host, err: (err as Error).message }, 'malformed response from target');
        this.#res.switchToRaw();
      }
    }
    this.#flushWaiting();
  }

  readonly #endBatch = (): void => {
    this.#batching = false;
    this.#socket.uncork();
  };

  #onResponseHead(head: MessageHead): void {
    this.#responseStatus = head.status;
    if (head.status >= 200 || head.status === 101) this.#tunnel?.metrics.requests(head.status);
    if (head.status === 101 && this.#upgradePending) {
      this.#res.switchToRaw();
      this.#raw = true;
      this.#upgradePending = false;
      this.#inflight = 0;
      // From here on the connection is the upgrade's (its request was the last one forwarded).
      this.#inflightPrincipals = [];
      // Bytes the client sent after the upgrade request belong to the new protocol.
      queueMicrotask(() => {
        for (const c of this.#pendingChunks) this.#writeUpstream(c);
        this.#pendingChunks = [];
        this.#socket.resume();
      });
    }
  }

  #onResponseEnd(): void {
    // 1xx interim responses (100 Continue, 103 Early Hints) are not the end of the exchange: a
    // local answer to a later request waits for the final response, and an upgrade stays pending.
    const s = this.#responseStatus;
    if (s >= 100 && s < 200 && s !== 101) return;
    const wasFull = this.#pipelineFull;
    if (this.#inflight > 0) this.#inflight--;
    this.#inflightPrincipals.shift();
    // Room for another request: go on with what waited (after this piece of response is handled).
    if (wasFull && !this.#pipelineFull && !this.#upgradePending) queueMicrotask(() => this.#drainSegments());
    if (this.#upgradePending && this.#inflight === 0 && !this.#raw) {
      // The upgrade was declined (e.g. 401): go on parsing HTTP.
      this.#upgradePending = false;
      this.#req.resume();
      queueMicrotask(() => this.#drainPendingChunks());
    }
  }

  #flushWaiting(): void {
    if (this.#inflight === 0 && this.#waitingForInflight) {
      const w = this.#waitingForInflight;
      this.#waitingForInflight = undefined;
      w();
    }
  }

  // ---------- local responses ----------

  /** Counts a request the relay answered itself on `tunnel` and tells the tunnel's owner. */
  #refused(tunnel: Tunnel, method: string, path: string, status: number, why: Pick<Refusal, 'reason' | 'who' | 'detail'>): void {
    if (why.reason !== 'target') tunnel.metrics.refuse(why.reason);
    // Fields are cut to their MAX_REFUSAL_* lengths where reports are gathered (refusal-reports.ts).
    this.#gw.opts.onRefused?.(tunnel, { at: Date.now(), method, path, status, ip: this.#clientIp, ...why });
  }

  /** `tunnel`: the tunnel the request was for, when no stream is bound yet (its metrics count the answer). */
  #respondLocal(r: LocalResponse, head: MessageHead | undefined, tunnel?: Tunnel): void | Promise<void> {
    // One id per answer, logged here and shown in the page (a timed-out or unparsable head has none yet).
    const requestId = (head && this.#requestId) || newRequestId();
    this.#logAnswer(requestId, r.status, head ? headerValue(head, 'host') : undefined, head);
    const write = (): void => {
      const keep = head ? keepAlive(head) && !r.close : false;
      const bytes = serializeResponse(r, { head: head?.method === 'HEAD', keepAlive: keep, requestId });
      (this.#tunnel ?? tunnel)?.metrics.requests(r.status);
      this.#currentAllowed = false;
      if (keep) {
        this.#socket.write(bytes);
      } else {
        this.#closing = true;
        this.#socket.end(bytes);
        if (this.#stream) this.#stream.end();
      }
    };
    if (this.#inflight === 0) {
      write();
      return;
    }
    return new Promise<void>((resolve) => {
      this.#waitingForInflight = () => {
        write();
        resolve();
      };
    });
  }

  /** The log line of a response the relay wrote itself; its reqId is the one the page shows. */
  #logAnswer(reqId: string, status: number, host: string | undefined, head: MessageHead | undefined): void {
    const line = { reqId, status, host, method: head?.method, path: head?.target.split('?')[0], client: this.#clientIp };
    if (status >= 400) this.#gw.opts.logger.info(line, 'answered by the relay');
    else this.#gw.opts.logger.debug(line, 'answered by the relay');
  }

  #parseError(err: unknown): void {
    if (!(err instanceof HttpParseError)) {
      this.destroy();
      return;
    }
    const r = err.status === 431 ? pages.headTooLarge() : err.status === 501 ? pages.notImplemented(err.message) : pages.badRequest(`The request could not be parsed: ${err.message}.`);
    void this.#respondLocal({ ...r, close: true }, undefined);
  }

  /**
   * The head timeout runs from the first byte of a head: later bytes of the same head do not
   * restart it, or a client trickling a header line now and then (slowloris) would hold the
   * connection for ever.
   */
  #armHeadTimer(): void {
    // A new connection is waiting for its first head from the start: one that never sends a
    // byte must not hold a socket until the idle timeout either.
    const waiting = !this.#raw && (this.#req.heldBytes > 0 || this.#headsParsed === 0);
    if (waiting && this.#headTimer && this.#timedHead === this.#headsParsed) return;
    clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
    if (waiting) {
      this.#timedHead = this.#headsParsed;
      this.#headTimer = setTimeout(() => {
        if (this.#req.heldBytes > 0) void this.#respondLocal(pages.timeout(), undefined);
        else if (this.#headsParsed === 0 && !this.#handedOver) this.#socket.destroy();
      }, this.#gw.opts.headTimeoutMs);
      this.#headTimer.unref();
    }
  }

  // ---------- teardown ----------

  #onClientEnd(): void {
    // The client finished sending: pass the half-close on (the response may still come).
    if (this.#handedOver) return;
    if (this.#stream && !this.#stream.destroyed) this.#stream.end();
    else if (!this.#stream) this.#socket.end();
  }

  #onClientClose(): void {
    clearTimeout(this.#headTimer);
    if (this.#handedOver) return;
    if (this.#stream && !this.#stream.closed) this.#cancelStream();
  }

  /** Resets the stream only if it is unfinished (resetting finished streams trips nghttp2's rapid-reset limiter). */
  #cancelStream(): void {
    const s = this.#stream;
    if (!s || s.closed || s.destroyed) return;
    s.close(h2c.NGHTTP2_CANCEL);
  }
}

export function serializeHead(head: MessageHead, headers: [string, string][]): Buffer {
  let s = `${head.method} ${head.target} HTTP/1.${head.versionMinor}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  s += '\r\n';
  return Buffer.from(s, 'latin1');
}

/**
 * A Duplex over `socket` that first yields `prefix` (bytes already read from it). Used to
 * hand a connection to node:http after the gateway parsed its first request head.
 */
function prependedDuplex(socket: Socket, prefix: Buffer, remoteAddress: string, encrypted: boolean): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
      if (socket.write(chunk)) cb();
      else socket.once('drain', () => cb());
    },
    final(cb: (err?: Error | null) => void) {
      socket.end(cb);
    },
    destroy(err: Error | null, cb: (err?: Error | null) => void) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  Object.defineProperty(d, 'remoteAddress', { value: remoteAddress });
  Object.defineProperty(d, 'encrypted', { value: encrypted });
  // node:http calls these socket methods on the connection it serves.
  Object.assign(d, {
    setTimeout: (ms: number, cb?: () => void) => {
      socket.setTimeout(ms, cb);
      return d;
    },
    setNoDelay: () => d,
    setKeepAlive: () => d,
  });
  if (prefix.length) d.push(prefix);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('error', (e) => d.destroy(e));
  socket.on('close', () => d.destroy());
  socket.resume();
  return d;
}

