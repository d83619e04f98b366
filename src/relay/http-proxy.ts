import type { Duplex } from 'node:stream';
import type { GateDecision } from '../auth/gate.ts';
import type { Principal } from '../auth/revocation.ts';
import { headerValue, HttpParseError, keepAlive, wantsUpgrade, type MessageHead } from '../lib/http1.ts';
import { forwardedHead } from './forward-headers.ts';
import { Exchanges } from './exchanges.ts';
import type { GatewayOptions, LiveConnection } from './gateway.ts';
import { pages, type LocalResponse } from './pages.ts';
import type { ProxyState, PublicSocket } from './proxy-state.ts';
import { handOver, joinDuplexes } from './relay-host-handover.ts';
import { relayAnswer, reportRefusal, type AnsweredRequest } from './relay-answers.ts';
import { RequestReader } from './request-reader.ts';
import { routeRequest, type RequestRoute } from './request-routing.ts';
import type { Tunnel } from './tunnel-directory.ts';
import { TunnelResponses } from './tunnel-responses.ts';
import { TunnelStream, type TunnelStreamEvents } from './tunnel-stream.ts';
import { decideUpgrade } from './upgrades.ts';

// One public HTTP/1 connection (PublicConnection): every request head is parsed and routed
// (request-routing.ts); the rewritten head (forward-headers.ts) and the body bytes go to the
// agent on ONE HTTP/2 stream per connection (tunnel-stream.ts), and the agent's bytes come
// back and are written to the client as they are, watched by a response framer (to know when
// responses end, for 101 upgrades, and for metrics). What is read from the client, and how, is
// one state (ProxyState, proxy-state.ts). The pieces it drives, each alone in its file:
// - request-reader.ts: what was read of the client and not handled yet (parsed or not);
// - exchanges.ts: the requests forwarded whose response has not ended, in order;
// - relay-answers.ts: the bytes, log line and count of an answer the relay gives itself;
// - tunnel-responses.ts: the agent's bytes read as responses (their ends, a 101, the counts);
// - relay-host-handover.ts: the connection given to the relay's own host or another relay.

export { MAX_PIPELINED } from './exchanges.ts';
export type { ProxyState, PublicSocket } from './proxy-state.ts';

/** One public HTTP/1 connection (TCP or TLS) and its one stream to an agent. */
export class PublicConnection implements LiveConnection {
  readonly #opts: GatewayOptions;
  readonly #socket: PublicSocket;
  readonly #secure: boolean;
  readonly #clientIp: string;
  readonly #req: RequestReader;
  readonly #responses: TunnelResponses;
  /** The stream to the agent, opened by the first forwarded request (it binds the connection to its tunnel). */
  #leg: TunnelStream | undefined;
  readonly #ex = new Exchanges();
  #currentAllowed = true;
  #state: ProxyState = 'http';
  /** No request has been routed to a tunnel yet: the connection may still go to the relay's own host. */
  #mayHandOver = true;
  /** The id of the request head being handled: in the gate's pages, the relay's own and the log line. */
  #requestId: string | undefined;
  /** The request that opened the agent stream (named if the target cannot be reached). */
  #streamRequest: { method: string; path: string } | undefined;

  constructor(opts: GatewayOptions, socket: PublicSocket, secure: boolean, clientIp: string) {
    this.#opts = opts;
    this.#socket = socket;
    this.#secure = secure;
    this.#clientIp = clientIp;
    socket.setNoDelay?.(true);
    socket.setTimeout(opts.idleTimeoutMs, () => this.destroy());
    this.#req = new RequestReader({
      maxHeadSize: opts.maxHeadSize,
      headTimeoutMs: opts.headTimeoutMs,
      onHead: (head) => {
        // Bytes after a request asking for an upgrade may be the new protocol's (a WebSocket
        // client's first frame in the same packet): they are not parsed as HTTP until the
        // request is decided (refused or declined → HTTP; 101 → passed on raw).
        // While the connection may still be handed to the relay's own host, parsing stops
        // after each message too: the rest is handed over as received, pipelined heads included.
        // And it stops once MAX_PIPELINED requests are in flight or queued (see Exchanges.full).
        return wantsUpgrade(head) || this.#mayHandOver || this.#ex.fillsWith(this.#req.queuedHeads);
      },
      onHeadTimeout: (partial) => {
        if (partial) void this.#answer(pages.timeout(), undefined);
        else if (this.#state !== 'handed-over') this.#socket.destroy();
      },
    });
    this.#responses = new TunnelResponses(this.#ex, opts.logger, () => this.#leg?.tunnel, {
      upgrading: () => this.#state === 'upgrading',
      upgraded: () => this.#upgraded(),
      ended: (wasFull) => this.#responseEnded(wasFull),
    });
    socket.on('data', this.#onData);
    socket.on('end', () => this.#onClientEnd());
    socket.on('error', (err) => {
      opts.logger.debug({ client: clientIp, err: err.message }, 'public connection failed');
      this.destroy();
    });
    socket.on('close', () => this.#onClientClose());
    this.#req.watchHead(this.#state !== 'raw');
  }

  get tunnel(): Tunnel | undefined {
    return this.#leg?.tunnel;
  }

  get principals(): Principal[] {
    return this.#ex.principals();
  }

  destroy(): void {
    this.#leg?.cancel();
    this.#socket.destroy();
  }

  // ---------- client → relay ----------

  readonly #onData = (chunk: Buffer): void => {
    const state = this.#state;
    // The relay answered with Connection: close: what the client still sends (the rest of a
    // refused upload) is read and dropped. Kept, it would grow the relay's memory without end.
    if (state === 'closing') return;
    if (state === 'raw') {
      this.#writeUpstream(chunk);
      return;
    }
    if (state === 'deciding' || state === 'upgrading' || this.#ex.full || this.#req.holding) {
      // Bytes read before the socket paused: kept in order behind what is already waiting.
      this.#req.hold(chunk);
      this.#socket.pause();
      if (state !== 'deciding' && !this.#req.parsed) this.#drainHeld();
      return;
    }
    this.#feed(chunk);
  };

  #feed(chunk: Buffer): void {
    try {
      this.#req.parse(chunk);
    } catch (err) {
      this.#parseError(err);
      return;
    }
    this.#req.watchHead(this.#state !== 'raw');
    this.#drainSegments();
  }

  /** Processes parsed segments in order; async gate decisions pause the connection. */
  #drainSegments(): void {
    while (this.#req.parsed && this.#state !== 'deciding' && this.#state !== 'closing') {
      if (this.#req.peek()!.k === 'head' && this.#ex.full) return;
      const seg = this.#req.next()!;
      if (seg.k === 'body') {
        if (this.#currentAllowed) this.#writeUpstream(seg.data);
        continue;
      }
      if (seg.k === 'end') {
        // The rest of the bytes wait for the upgrade's response (101 → raw, else HTTP).
        if (this.#state === 'upgrading') return;
        // Not forwarded as an upgrade (refused, answered here, h2c sent as plain HTTP/1.1):
        // what follows is HTTP again.
        this.#req.resume();
        continue;
      }
      this.#state = 'deciding';
      const done = this.#onRequestHead(seg.head);
      if (done instanceof Promise) {
        // Wait for the decision without reading further (pause only then: it costs a tick).
        this.#socket.pause();
        done.then(
          () => this.#resumeAfterHead(),
          (err: unknown) => {
            this.#opts.logger.error({ err: String(err) }, 'request handling failed');
            this.destroy();
          },
        );
        return;
      }
      this.#decided();
    }
    if (this.#state !== 'deciding' && !this.#req.parsed) this.#drainHeld();
  }

  /** The request being decided was handled (forwarded, answered, handed over). */
  #decided(): void {
    if (this.#state === 'deciding') this.#state = 'http';
  }

  #resumeAfterHead(): void {
    this.#decided();
    this.#drainSegments();
  }

  /** Reading and parsing the client may go on (nothing waits for a decision, an upgrade, the relay's host or the end). */
  get #reading(): boolean {
    return (this.#state === 'http' || this.#state === 'raw') && !this.#ex.full;
  }

  /** Handles the bytes held while parsing waited, then reads the client again. */
  #drainHeld(): void {
    while (this.#req.holding && this.#reading) {
      if (this.#state === 'raw') {
        for (const c of this.#req.takeHeld()) this.#writeUpstream(c);
        break;
      }
      this.#feed(this.#req.nextHeld()!);
      if (this.#state === 'deciding') return;
    }
    if (!this.#req.holding && this.#reading && this.#socket.isPaused() && !this.#leg?.full) {
      this.#socket.resume();
    }
  }

  #writeUpstream(data: Buffer): void {
    this.#leg?.write(data);
  }

  /** Returns a promise only when it had to wait (gate, earlier responses). */
  #onRequestHead(head: MessageHead): void | Promise<void> {
    this.#requestId = undefined;
    const route = routeRequest(head, { secure: this.#secure, clientIp: this.#clientIp, mayHandOver: this.#mayHandOver && !this.#leg, bound: this.#leg?.tunnel }, this.#opts);
    if (route instanceof Promise) {
      // Only a request for a tunnel waits (a lookup, its access check): past the relay's own host.
      this.#mayHandOver = false;
      return route.then((r) => this.#take(head, r));
    }
    return this.#take(head, route);
  }

  #take(head: MessageHead, r: RequestRoute): void | Promise<void> {
    // The connection began closing while this request waited for its decision (its head timed
    // out behind it): the request is dropped, never forwarded after the relay's closing answer.
    if (this.#state === 'closing') return;
    // The relay's own host serves the connection (node:http), or another relay of the cluster
    // holds the tunnel: the connection is carried there whole and served by that relay's
    // gateway (identity, policy, limits).
    if (r.kind === 'own-host') return this.#handOver(head, this.#opts.serveRelayHost);
    if (r.kind === 'elsewhere') return this.#handOver(head, (handed) => joinDuplexes(handed, r.conn));
    if (r.kind === 'forward') {
      this.#mayHandOver = false;
      return this.#forward(head, r.tunnel, r.allowed);
    }
    if (!r.early) this.#mayHandOver = false;
    if (r.requestId) this.#requestId = r.requestId;
    if (r.refusal && r.tunnel) reportRefusal(this.#opts, this.#clientIp, r.tunnel, head.method, head.target, r.response.status, r.refusal);
    return this.#answer(r.response, head, r.tunnel);
  }

  /** Gives the connection, with what was read of it, to `to`; this proxy handles nothing more of it. */
  #handOver(head: MessageHead, to: (conn: Duplex) => void): void {
    this.#state = 'handed-over';
    this.#mayHandOver = false;
    this.#socket.removeListener('data', this.#onData);
    this.#req.stopWatching();
    to(handOver(this.#socket, head, this.#req.takeRest(), this.#clientIp, this.#secure));
  }

  #forward(head: MessageHead, tunnel: Tunnel, d: Extract<GateDecision, { kind: 'allow' }> | undefined): void | Promise<void> {
    const up = decideUpgrade(head, tunnel.options.allowUpgrade);
    if (up.kind === 'refuse') {
      const r = pages.upgradeRefused(up.protocols);
      reportRefusal(this.#opts, this.#clientIp, tunnel, head.method, head.target, r.status, { reason: 'upgrade', detail: `Upgrade: ${up.protocols.join(', ')} needs --allow-upgrade` });
      return this.#answer(r, head, tunnel);
    }
    if (!this.#leg) {
      this.#streamRequest = { method: head.method, path: head.target };
      this.#leg = TunnelStream.open(this.#opts.directory, tunnel, { kind: 'http', client: this.#clientIp }, this.#socket, this.#opts.logger, this.#legEvents(tunnel));
      if (!this.#leg) return this.#answer(pages.offline(tunnel.host), head, tunnel);
    }
    const upgrade = up.kind === 'forward' ? up.protocols : undefined;
    const bytes = forwardedHead(head, tunnel, { clientIp: this.#clientIp, secure: this.#secure, isTunnCredential: this.#opts.isTunnCredential }, upgrade, d);
    this.#currentAllowed = true;
    this.#ex.forwarded(head.method, d?.principal);
    if (upgrade) {
      this.#state = 'upgrading';
      this.#req.pauseAfterMessage();
    }
    this.#writeUpstream(bytes);
  }

  /** What the connection does with its agent stream's events. */
  #legEvents(tunnel: Tunnel): TunnelStreamEvents {
    return {
      data: (chunk) => this.#responses.data(chunk),
      // The code is the agent's word (an errno or TLS error name): kept short.
      targetDown: (code) => this.#answerInstead(tunnel, pages.targetDown(code), code.slice(0, 64) || undefined),
      end: () => {
        this.#responses.finish();
        if (this.#mayAnswerInstead) this.#answerInstead(tunnel, pages.tunnelLost(), 'EMPTY_RESPONSE');
        else this.#socket.end();
      },
      close: (reset) => {
        if (this.#socket.destroyed) return;
        if (this.#mayAnswerInstead) this.#answerInstead(tunnel, pages.tunnelLost(), 'EMPTY_RESPONSE');
        else if (reset) this.#socket.destroy();
        else this.#socket.end();
      },
      drained: () => {
        if (this.#state !== 'deciding' && this.#state !== 'upgrading' && !this.#ex.full && !this.#req.holding) this.#socket.resume();
      },
    };
  }

  // ---------- agent → client ----------

  /** A 101 answered the upgrade request (tunnel-responses.ts): the bytes pass both ways unparsed. */
  #upgraded(): void {
    this.#state = 'raw';
    // Bytes the client sent after the upgrade request belong to the new protocol.
    queueMicrotask(() => {
      for (const c of this.#req.takeHeld()) this.#writeUpstream(c);
      this.#socket.resume();
    });
  }

  #responseEnded(wasFull: boolean): void {
    // Room for another request: go on with what waited (after this piece of response is handled).
    if (wasFull && !this.#ex.full && this.#state !== 'upgrading') queueMicrotask(() => this.#drainSegments());
    if (this.#state === 'upgrading' && this.#ex.inflight === 0) {
      // The upgrade was declined (e.g. 401): go on parsing HTTP.
      this.#state = 'http';
      this.#req.resume();
      queueMicrotask(() => this.#drainHeld());
    }
  }

  // ---------- the relay's own answers ----------

  /**
   * Answers a request the relay decided itself (refused, not found, offline, …; `head`
   * undefined: a head that timed out or could not be parsed). It goes out after the responses
   * to the requests before it. `tunnel`: the one the request was for, when no stream is bound
   * yet (its metrics count the answer).
   */
  #answer(r: LocalResponse, head: MessageHead | undefined, tunnel?: Tunnel): void | Promise<void> {
    // After a closing answer nothing more is answered (a head timing out behind it, say).
    if (this.#state === 'closing') return;
    const a: AnsweredRequest = {
      method: head?.method,
      path: head?.target,
      host: head ? headerValue(head, 'host') : undefined,
      keepAlive: head ? keepAlive(head) : false,
      requestId: (head && this.#requestId) || undefined,
      tunnel: this.#leg?.tunnel ?? tunnel,
    };
    // The body of the answered request is not forwarded; if the answer closes the connection,
    // nothing read after the request is handled from now on, while the answer waits its turn.
    this.#currentAllowed = false;
    if (r.close || !a.keepAlive) this.#closing();
    return this.#ex.afterInflight(() => this.#write(r, a));
  }

  /**
   * Answers in place of the tunnel's response to the oldest request, when nothing of a response
   * was written yet (the agent could not reach the target; the stream ended before any answer).
   * Once a response was written, a failure ends the connection as the target did: a client
   * retries a request on a reused connection that closes, not one that got a 502.
   */
  #answerInstead(tunnel: Tunnel, r: LocalResponse, detail: string | undefined): void {
    const first = this.#streamRequest;
    if (!first || !this.#mayAnswerInstead || this.#socket.destroyed) return;
    reportRefusal(this.#opts, this.#clientIp, tunnel, first.method, first.path, r.status, { reason: 'target', detail });
    // Nothing of a response was written: the oldest request in flight is the one that opened the stream.
    this.#write({ ...r, close: true }, { method: first.method, path: first.path, host: tunnel.host, keepAlive: false, tunnel });
  }

  /** A request awaits the tunnel's response and nothing was written in its place yet (by the target or the relay). */
  get #mayAnswerInstead(): boolean {
    return !this.#responses.started && this.#ex.inflight > 0 && !this.#socket.writableEnded;
  }

  /** Writes an answer of the relay (the one place that does), logged and counted once. */
  #write(r: LocalResponse, a: AnsweredRequest): void {
    if (this.#socket.writableEnded || this.#socket.destroyed) return;
    const { bytes, close } = relayAnswer(this.#opts.logger, this.#clientIp, r, a);
    if (!close) {
      this.#socket.write(bytes);
      return;
    }
    this.#closing();
    this.#socket.end(bytes);
    // Responses the tunnel still owes are abandoned: the stream is reset so that none of them
    // follows the answer; else it is half-closed, like the client's side.
    if (this.#ex.inflight > 0) this.#leg?.cancel();
    else this.#leg?.end();
  }

  #parseError(err: unknown): void {
    if (!(err instanceof HttpParseError)) {
      this.destroy();
      return;
    }
    void this.#answer({ ...pages.unparsable(err), close: true }, undefined);
  }

  // ---------- teardown ----------

  /** Nothing more is handled: what was read and not handled is dropped, and the client is read only to drop it. */
  #closing(): void {
    this.#state = 'closing';
    this.#req.drop();
    this.#socket.resume();
  }

  #onClientEnd(): void {
    // The client finished sending: pass the half-close on (the response may still come).
    if (this.#state === 'handed-over') return;
    if (!this.#leg) this.#socket.end();
    else if (!this.#leg.destroyed) this.#leg.end();
  }

  #onClientClose(): void {
    this.#req.stopWatching();
    if (this.#state === 'handed-over') return;
    this.#leg?.cancel();
  }
}
