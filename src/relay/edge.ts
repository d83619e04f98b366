import type { Socket } from 'node:net';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { ALPN_ACME_TLS, ALPN_CONNECT, ALPN_TUNNEL } from '../protocol/messages.ts';
import { CLIENT_HELLO_TIMEOUT_MS } from '../protocol/timing.ts';
import { parseClientHello } from './client-hello.ts';

// The edge: every socket the relay accepts is routed by (listener, ALPN, SNI) through one
// table to a route, and each route has one handler. On the HTTPS listener the ClientHello is
// read (not consumed) first; the handler gets the socket with those bytes put back.
// Adding a route: one entry in ROUTE_TABLE (where it ranks) and one handler where the relay
// is wired (relay.ts). A route without a handler drops its sockets, saying so in the log.

/** Where an accepted socket goes. */
export type EdgeRoute =
  /** ALPN tunn/1: an agent's link (TLS ends here; the relay speaks HTTP/2 over it). */
  | 'agent-link'
  /** ALPN acme-tls/1 for a name whose TLS-ALPN-01 challenge the relay answers. */
  | 'acme-tls-alpn'
  /** ALPN acme-tls/1 for a name whose certificate an agent obtains: the raw TLS goes to that agent. */
  | 'acme-tls-alpn-to-agent'
  /** A name whose TLS ends at an agent (passthrough, agent-terminated TLS): raw TLS to that agent. */
  | 'tls-to-agent'
  /** ALPN tunn-connect/1: `tunn connect`, the identity-checked client of tcp/udp tunnels. */
  | 'connect'
  /** Anything else on the HTTPS listener: TLS ends here, then the HTTP gateway. */
  | 'terminate-tls'
  /** The plain-HTTP listener: the HTTP gateway (ACME HTTP-01, redirects to HTTPS, dev). */
  | 'plain-http';

export type EdgeListener = 'https' | 'http';

/** What the edge read of a socket before routing it. */
export interface EdgeHello {
  listener: EdgeListener;
  /** SNI, as sent (undefined: none). */
  serverName: string | undefined;
  /** Offered ALPN protocols, in the client's order (empty: none, or not TLS). */
  alpn: readonly string[];
}

/** What the routing table asks of the rest of the relay (certificates, the tunnel directory). */
export interface EdgeAnswers {
  /** A TLS-ALPN-01 challenge for `name` that the relay answers is pending. */
  relayAnswersAlpnChallenge(name: string): boolean;
  /** An agent obtains the certificate of `name` and wants its TLS-ALPN-01 validations. */
  agentAnswersAlpnChallenge?(name: string): boolean;
  /**
   * A relay of a cluster: a TLS-ALPN-01 challenge for `name` may have been presented by another
   * relay (the handler reads the shared database, and closes the connection when there is none).
   */
  relayMayAnswerAlpnChallenge?(name: string): boolean;
  /** TLS for `name` ends at an agent (a tls tunnel, or an http tunnel with TLS at the agent). */
  tlsEndsAtAgent?(name: string): boolean;
}

interface RouteEntry {
  route: EdgeRoute;
  when(h: EdgeHello, a: EdgeAnswers): boolean;
}

const offers = (h: EdgeHello, alpn: string): boolean => h.alpn.includes(alpn);

/** First match wins. */
export const ROUTE_TABLE: readonly RouteEntry[] = [
  { route: 'plain-http', when: (h) => h.listener === 'http' },
  { route: 'agent-link', when: (h) => offers(h, ALPN_TUNNEL) },
  { route: 'connect', when: (h) => offers(h, ALPN_CONNECT) },
  { route: 'acme-tls-alpn', when: (h, a) => offers(h, ALPN_ACME_TLS) && !!h.serverName && a.relayAnswersAlpnChallenge(h.serverName) },
  { route: 'acme-tls-alpn-to-agent', when: (h, a) => offers(h, ALPN_ACME_TLS) && !!h.serverName && !!a.agentAnswersAlpnChallenge?.(h.serverName) },
  // In a cluster, a challenge presented by another relay moments ago (not in this relay's last read yet).
  { route: 'acme-tls-alpn', when: (h, a) => offers(h, ALPN_ACME_TLS) && !!h.serverName && !!a.relayMayAnswerAlpnChallenge?.(h.serverName) },
  { route: 'tls-to-agent', when: (h, a) => !!h.serverName && !offers(h, ALPN_ACME_TLS) && !!a.tlsEndsAtAgent?.(h.serverName) },
  { route: 'terminate-tls', when: () => true },
];

/** The route of a socket: a pure function of what was read and what the relay answers. */
export function routeFor(h: EdgeHello, a: EdgeAnswers): EdgeRoute {
  for (const e of ROUTE_TABLE) if (e.when(h, a)) return e.route;
  return 'terminate-tls';
}

/** Serves the sockets of one route; the socket is paused, with the bytes the edge read put back. */
export type RouteHandler = (socket: Socket, hello: EdgeHello) => void;
export type RouteHandlers = { readonly [R in EdgeRoute]?: RouteHandler };

const HTTP_ON_TLS_PORT = 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 47\r\n\r\nThis port speaks HTTPS: use an https:// URL.\r\n\r\n';

export class Edge {
  readonly #handlers: RouteHandlers;
  readonly #answers: EdgeAnswers;
  readonly #logger: Logger;

  constructor(handlers: RouteHandlers, answers: EdgeAnswers, logger: Logger) {
    this.#handlers = handlers;
    this.#answers = answers;
    this.#logger = logger;
  }

  /** A socket accepted on `listener`. */
  accept(listener: EdgeListener, socket: Socket): void {
    if (listener === 'http') {
      this.#dispatch(socket, { listener, serverName: undefined, alpn: [] });
      return;
    }
    // Agent links and public TLS connections both carry small interactive messages: no Nagle.
    socket.setNoDelay(true);
    socket.on('error', (err) => {
      this.#logger.debug({ err: errorMessage(err) }, 'edge socket error (the connection is closed)');
      socket.destroy();
    });
    socket.setTimeout(CLIENT_HELLO_TIMEOUT_MS, () => socket.destroy());
    let buf: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const r = parseClientHello(buf);
      if (r.kind === 'need-more') return;
      socket.removeListener('data', onData);
      socket.pause();
      socket.setTimeout(0);
      if (r.kind === 'not-tls') {
        if (/^[A-Z]+ /.test(buf.toString('latin1', 0, 8))) socket.end(HTTP_ON_TLS_PORT);
        else socket.destroy();
        return;
      }
      socket.unshift(buf);
      this.#dispatch(socket, { listener, serverName: r.info.serverName, alpn: r.info.alpn });
    };
    socket.on('data', onData);
  }

  #dispatch(socket: Socket, hello: EdgeHello): void {
    const route = routeFor(hello, this.#answers);
    const handler = this.#handlers[route];
    if (!handler) {
      this.#logger.warn({ route, sni: hello.serverName, alpn: hello.alpn.join(',') }, 'no handler for this edge route; connection dropped');
      socket.destroy();
      return;
    }
    handler(socket, hello);
  }
}
