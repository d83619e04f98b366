import type { Duplex } from 'node:stream';
import type { GateDecision, GateRequest } from '../auth/gate.ts';
import type { Principal } from '../auth/revocation.ts';
import type { Logger } from '../lib/logger.ts';
import type { MessageHead } from '../lib/http1.ts';
import type { Refusal } from '../protocol/messages.ts';
import { PublicConnection, type PublicSocket } from './http-proxy.ts';
import type { LocalResponse } from './pages.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// The public side of the relay for HTTP: the gateway keeps the live public connections (one
// PublicConnection each, http-proxy.ts) so revocation and `tunn stop` can cut them. Every
// request head is parsed there (routing and policy are per request, request-routing.ts); the
// rewritten head and the body bytes go to the agent on ONE HTTP/2 stream per connection.

export { MAX_PIPELINED, type ProxyState } from './http-proxy.ts';

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
  plainHook?: (head: MessageHead, host: string) => LocalResponse | undefined | Promise<LocalResponse | undefined>;
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
  /**
   * A cluster: a connection to another relay holding the tunnel at `host` (none here), for a
   * connection's first request; undefined when no other relay holds it.
   */
  heldElsewhere?(host: string, client: string): Promise<Duplex | undefined>;
  /** A request on `tunnel` the relay answered itself (refused at the edge, target down): for the owner's request log. */
  onRefused?(tunnel: Tunnel, refusal: Refusal): void;
}

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

export class Gateway {
  readonly opts: GatewayOptions;
  readonly open = new Set<PublicConnection>();

  constructor(opts: GatewayOptions) {
    this.opts = opts;
  }

  /** Serves a public connection. `secure`: it arrived over TLS. */
  accept(socket: PublicSocket, secure: boolean, remoteAddress: string): void {
    const c = new PublicConnection(this.opts, socket, secure, remoteAddress);
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
