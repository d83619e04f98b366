import http2, { type Http2Server, type ServerHttp2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { ControlChannel } from '../protocol/control-channel.ts';
import { AGENT_SESSION_WINDOW, agentServerOptions } from '../protocol/h2-options.ts';
import { ALPN_TUNNEL } from '../protocol/messages.ts';
import { describeConnectError, permanentConnectError } from './connect-errors.ts';
import { localhostAwareLookup } from './target.ts';
import type { RelayEndpoint } from './relay-endpoints.ts';

// One of the agent's sessions to the relay: its slot (what is connected now and how many
// attempts failed in a row), the dial that opens it (TLS to the relay, then this agent as the
// HTTP/2 server on that socket), and the back-off before the next attempt. What the session
// carries (control messages, data streams) is the Agent's (agent.ts).

/** A session slot: the agent keeps `sessions` of them, each reconnecting by itself. */
export interface Slot {
  index: number;
  /** The relay of this session reads `agent-event` (its welcome's `accepts`). */
  acceptsEvents?: boolean;
  socket?: TLSSocket;
  session?: ServerHttp2Session;
  control?: ControlChannel;
  online: boolean;
  attempt: number;
  timer?: NodeJS.Timeout;
  /** A register the relay refused for a passing reason, asked again after a back-off. */
  retryTimer?: NodeJS.Timeout;
  stopPing?: () => void;
  /** The relay endpoint it dials or is connected to (relay-endpoints.ts). */
  endpoint?: string;
}

/** What a dial needs from the agent; the functions are asked when an event comes, not at dial time. */
export interface DialHooks {
  /** Extra CA certificate(s) (PEM) to trust for the relay. */
  relayCa?: string;
  stopped(): boolean;
  /** A session was welcomed once in this run: from then on every connect error is retried (networks change). */
  everOnline(): boolean;
  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void;
  /** The session is gone (or never came): `why` says what happened. Called once per dial. */
  onDown(why: string): void;
  /** A connect error that retrying will not fix, before the relay was ever reached: the agent stops. */
  onFatal(err: Error & { code?: string }): void;
  onDebug(message: string): void;
}

/** Dials relay endpoint `ep` for `slot` and serves the relay's streams on it as the HTTP/2 server. */
export function dialRelay(slot: Slot, ep: RelayEndpoint, hooks: DialHooks): void {
  const relayHost = ep.url.host;
  const { host, port } = ep;
  slot.endpoint = ep.key;
  const ca = hooks.relayCa ? [...tls.rootCertificates, hooks.relayCa] : undefined;
  const socket = tls.connect({
    host: ep.address ?? host,
    port,
    servername: net.isIP(host) ? undefined : host,
    ALPNProtocols: [ALPN_TUNNEL],
    ca,
    lookup: localhostAwareLookup,
    timeout: 10_000,
  });
  slot.socket = socket;
  socket.setNoDelay(true);
  let failed = false;
  const fail = (why: string): void => {
    if (failed) return;
    failed = true;
    hooks.onDown(why);
  };
  socket.on('timeout', () => {
    if (!slot.session) socket.destroy(new Error('timed out connecting'));
  });
  socket.on('error', (err) => {
    if (hooks.stopped()) return;
    // Before the relay was ever reached, some errors will not go away by retrying: say what to do and stop.
    const permanent = hooks.everOnline() ? undefined : permanentConnectError(err, relayHost);
    if (permanent && !failed) {
      failed = true;
      hooks.onFatal(permanent);
      return;
    }
    fail(describeConnectError(err, relayHost, host));
  });
  socket.on('close', () => fail('connection closed'));
  socket.once('secureConnect', () => {
    socket.setTimeout(0);
    if (socket.alpnProtocol !== ALPN_TUNNEL) {
      socket.destroy(Object.assign(new Error(`${relayHost} is not a tunn relay (no ${ALPN_TUNNEL} protocol)`), { code: 'NOT_A_RELAY' }));
      return;
    }
    const server: Http2Server = http2.createServer(agentServerOptions);
    server.on('session', (session: ServerHttp2Session) => {
      slot.session = session;
      const widen = (): void => {
        try {
          session.setLocalWindowSize(AGENT_SESSION_WINDOW);
        } catch {
          /* gone */
        }
      };
      session.once('remoteSettings', widen);
      session.on('error', (err) => hooks.onDebug(`session ${slot.index + 1} to ${relayHost}: ${err.message}`));
      session.on('goaway', () => socket.destroy());
      session.on('close', () => socket.destroy());
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => hooks.onStream(stream, headers));
    // The agent's window is AGENT_SESSION_WINDOW (src/protocol/h2-options.ts): bulk both ways at once never stalls.
    server.emit('connection', socket);
  });
}

/** Full jitter back-off: random in [min/2, min * 2^attempt], capped; counts the attempt. */
export function nextBackoff(slot: Slot, minMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, minMs * 2 ** slot.attempt);
  slot.attempt++;
  return Math.round(minMs / 2 + Math.random() * (cap - minMs / 2));
}
