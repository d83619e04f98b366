import { randomUUID } from 'node:crypto';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { tokenKid, type TokenService } from '../auth/tokens.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { ControlChannel } from '../protocol/control-channel.ts';
import { relaySessionOptions, SESSION_WINDOW } from '../protocol/h2-options.ts';
import { watchLiveness } from '../protocol/liveness.ts';
import { CONTROL_PATH, DATA_HEADERS, type AcmeAdvert, InvalidMessageError, MAX_STREAM_IDLE_MS, PROTOCOL_VERSION, wireCodeOf, type ControlMessage, type MessageOf, type MessageType, type RegisteredTunnel, type TunnelOptions, type WireErrorCode } from '../protocol/messages.ts';
import { HELLO_TIMEOUT_MS, RELAY_PING_INTERVAL_MS, RELAY_PING_TIMEOUT_MS } from '../protocol/timing.ts';
import { accountById, type Account } from '../store/accounts.ts';
import type { Store } from '../store/store.ts';
import type { SessionRef, StreamOpen } from './tunnel-directory.ts';

// One object per connected agent session (frp's server/control.go): it owns the HTTP/2
// client session on the agent's socket and the control stream, and handles control messages
// through a type → handler table.

export interface AgentSessionDeps {
  store: Store;
  tokens: TokenService;
  logger: Logger;
  relayDomain: string;
  /** Defaults: HELLO_TIMEOUT_MS, RELAY_PING_INTERVAL_MS (src/protocol/timing.ts). */
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Validates and serves a tunnel for the account on this session; throws TunnError. */
  register(session: AgentSession, account: Account, opts: TunnelOptions): Promise<RegisteredTunnel>;
  unregister(session: AgentSession, tunnelId: string): void;
  onClose(session: AgentSession): void;
  /** A hello with a token the relay refused (for the security events). */
  onTokenRefused?(info: { err: unknown; token: string; ip: string }): void;
  /** TLS that ends at the agent (src/relay/agent-tls-relay.ts): its questions, its state reports, the ACME CA advertised in welcome. */
  agentTls?: AgentTlsHooks;
  /** The relay's --tcp-idle and --udp-flow-idle (ms), sent on each tcp/udp stream (DATA_HEADERS.idleMs). */
  streamIdleMs?: { tcp: number; udp: number };
}

export interface AgentTlsHooks {
  readonly acme: AcmeAdvert | undefined;
  onRequest(session: AgentSession, accountId: string, m: MessageOf<'tls-request'>): Promise<void>;
  onState(session: AgentSession, m: MessageOf<'tls-state'>): void;
  onEvent(session: AgentSession, m: MessageOf<'agent-event'>): void;
  /** The session ended (its per-session state is dropped). */
  onClosed?(session: AgentSession): void;
}

type Handlers = { [K in MessageType]?: (m: MessageOf<K>) => void | Promise<void> };

const FATAL_CODES = new Set<WireErrorCode>(['AUTH_REQUIRED', 'AUTH_INVALID_TOKEN', 'AUTH_TOKEN_REVOKED', 'NAME_TAKEN', 'NAME_INVALID', 'NAME_RESERVED', 'PROTOCOL_VERSION', 'INVALID_INPUT', 'FORBIDDEN', 'NOT_FOUND', 'UNKNOWN_GROUP']);

export class AgentSession implements SessionRef {
  readonly id = randomUUID();
  agentId = '';
  account: Account | undefined;
  /** The jti of the token the agent said hello with (re-checked for revocation while it lives). */
  tokenJti: string | undefined;
  /** The key that signed that token (retiring it ends the session). */
  tokenKid: string | undefined;
  readonly h2: ClientHttp2Session;
  readonly #deps: AgentSessionDeps;
  readonly #log: Logger;
  readonly #socket: TLSSocket;
  #control: ControlChannel | undefined;
  #alive = true;
  #ending = false;
  #helloTimer: NodeJS.Timeout | undefined;
  #stopPing: (() => void) | undefined;
  readonly #handlers: Handlers;

  constructor(socket: TLSSocket, deps: AgentSessionDeps) {
    this.#deps = deps;
    this.#socket = socket;
    this.#log = deps.logger.child({ session: this.id.slice(0, 8), remote: socket.remoteAddress });
    this.#handlers = {
      hello: (m) => this.#onHello(m),
      register: (m) => this.#onRegister(m),
      unregister: (m) => this.#deps.unregister(this, m.id),
      'tls-request': (m) => this.#deps.agentTls?.onRequest(this, this.account!.id, m) ?? this.send({ type: 'tls-reply', rid: m.rid, error: { code: 'UNAVAILABLE', message: 'this relay does not serve TLS that ends at agents' } }),
      'tls-state': (m) => this.#deps.agentTls?.onState(this, m),
      'agent-event': (m) => this.#deps.agentTls?.onEvent(this, m),
    };
    this.h2 = http2.connect('https://agent.invalid', { ...relaySessionOptions, createConnection: () => socket });
    this.h2.once('remoteSettings', () => {
      try {
        this.h2.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        /* session already gone */
      }
    });
    this.h2.on('error', (err) => this.#log.debug({ err: errorMessage(err) }, 'agent session error'));
    this.h2.on('goaway', () => this.close());
    this.h2.on('close', () => this.#onClosed());
    socket.on('close', () => this.#onClosed());
    this.#openControl();
  }

  get alive(): boolean {
    return this.#alive && !this.#ending && !this.h2.destroyed && !this.h2.closed;
  }

  get authenticated(): boolean {
    return this.account !== undefined;
  }

  send(m: ControlMessage): void {
    this.#control?.send(m);
  }

  openStream(tunnel: { id: string; host: string }, o: StreamOpen): ClientHttp2Stream {
    // The relay's idle limits travel with each tcp/udp stream: the agent ends a connection or flow when the relay would.
    const idleMs = o.idleMs ?? (o.kind === 'tcp' || o.kind === 'udp' ? this.#deps.streamIdleMs?.[o.kind] : undefined);
    return openDataStream(this.h2, tunnel, idleMs === undefined ? o : { ...o, idleMs });
  }

  replaced(tunnelId: string, message: string): void {
    this.send({ type: 'replaced', id: tunnelId, message });
  }

  refuse(tunnelId: string, code: WireErrorCode, message: string): void {
    this.send({ type: 'error', code, message, fatal: true, id: tunnelId });
  }

  close(): void {
    if (!this.#alive) return;
    this.#onClosed();
    this.h2.close();
    setTimeout(() => this.#socket.destroy(), 2000).unref();
  }

  /**
   * Ends the session for a reason the agent must not retry through (its token was revoked):
   * tells the agent with a fatal error, then closes. The HTTP/2 session is destroyed, not
   * drained, so the public connections it carries end too.
   */
  end(code: WireErrorCode, message: string): void {
    if (!this.#alive || this.#ending) return;
    this.#ending = true; // no new public connections on it from now on
    this.#log.info({ code }, message);
    this.send({ type: 'error', code, message, fatal: true });
    // A moment for the error to reach the agent (closing destroys the socket and what it holds).
    setTimeout(() => {
      this.close();
      this.h2.destroy();
    }, 200).unref();
  }

  #openControl(): void {
    const stream = this.h2.request({ ':method': 'POST', ':path': CONTROL_PATH }, { endStream: false });
    stream.on('error', (err) => this.#log.debug({ err: errorMessage(err) }, 'control stream error (the session closes with it)'));
    const ch = new ControlChannel(stream);
    this.#control = ch;
    ch.on('message', (m) => this.#dispatch(m));
    ch.on('invalid', (err) => {
      this.#log.warn({ err: err.message }, 'invalid control message');
      // A register the relay cannot read is refused for good (the agent would send it again as is).
      if (err instanceof InvalidMessageError && err.messageType === 'register') this.#fail(new TunnError('INVALID_INPUT', `malformed register message: ${err.message}`), err.tunnelId);
      else this.#fail(new TunnError('PROTOCOL_ERROR', err.message));
    });
    ch.on('close', () => this.close());
    this.#helloTimer = setTimeout(() => {
      this.#log.info('no hello from agent in time; closing');
      this.close();
    }, this.#deps.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
  }

  #dispatch(m: ControlMessage): void {
    if (m.type !== 'hello' && !this.authenticated) {
      this.#fail(new TunnError('AUTH_REQUIRED', 'the first message must be hello with a token'));
      return;
    }
    const h = this.#handlers[m.type] as ((m: ControlMessage) => void | Promise<void>) | undefined;
    if (!h) {
      this.#log.warn({ type: m.type }, 'unexpected control message');
      return;
    }
    Promise.resolve()
      .then(() => h(m))
      .catch((err: unknown) => this.#fail(err, tunnelIdOf(m)));
  }

  async #onHello(m: MessageOf<'hello'>): Promise<void> {
    clearTimeout(this.#helloTimer);
    if (this.authenticated) throw new TunnError('PROTOCOL_ERROR', 'hello sent twice');
    if (m.version !== PROTOCOL_VERSION) {
      throw new TunnError('PROTOCOL_VERSION', `this relay speaks tunn protocol ${PROTOCOL_VERSION}, the agent ${m.version}: upgrade the older side`);
    }
    if (typeof m.token !== 'string' || !m.token) throw new TunnError('AUTH_REQUIRED', 'no token: pass --token-file FILE or set TUNN_TOKEN (create one with `tunn relay token create`)');
    let claims;
    try {
      claims = await this.#deps.tokens.verify(m.token, ['agent', 'pat']);
    } catch (err) {
      this.#deps.onTokenRefused?.({ err, token: m.token, ip: this.#socket.remoteAddress ?? '' });
      throw err;
    }
    const account = await accountById(this.#deps.store, claims.sub);
    if (!account) throw new TunnError('AUTH_TOKEN_REVOKED', 'the token’s account no longer exists');
    void this.#deps.tokens.touch(claims.jti).catch((err: unknown) => this.#log.warn({ err: errorMessage(err) }, 'recording when the agent token was last used failed'));
    this.account = account;
    this.tokenJti = claims.jti;
    this.tokenKid = tokenKid(m.token);
    this.agentId = String(m.agentId).slice(0, 64);
    this.#log.info({ email: account.email, agent: this.agentId.slice(0, 8) }, 'agent connected');
    const acme = this.#deps.agentTls?.acme;
    this.send({ type: 'welcome', accountId: account.id, email: account.email, relayDomain: this.#deps.relayDomain, sessionId: this.id, ...(acme ? { acme } : {}), ...(this.#deps.agentTls ? { accepts: ['agent-event'] } : {}) });
    this.#startPing();
  }

  async #onRegister(m: MessageOf<'register'>): Promise<void> {
    const t = await this.#deps.register(this, this.account!, m.tunnel);
    this.send({ type: 'registered', ...t });
  }

  #fail(err: unknown, tunnelId?: string): void {
    const code = wireCodeOf(err);
    const message = err instanceof TunnError ? err.message : 'the relay could not handle the request; see the relay log';
    if (!(err instanceof TunnError)) this.#log.error({ err: errorMessage(err) }, 'control message failed');
    // The operator needs to see these too (a database away, a full disk), not only the agent.
    else if (err.code === 'UNAVAILABLE') this.#log.warn({ err: err.message }, 'control message failed');
    const fatal = FATAL_CODES.has(code);
    this.send({ type: 'error', code, message, fatal, ...(tunnelId ? { id: tunnelId } : {}) });
    if (!this.authenticated) setTimeout(() => this.close(), 100).unref();
  }

  #startPing(): void {
    this.#stopPing = watchLiveness({
      session: this.h2,
      socket: this.#socket,
      intervalMs: this.#deps.pingIntervalMs ?? RELAY_PING_INTERVAL_MS,
      timeoutMs: this.#deps.pingIntervalMs ?? RELAY_PING_TIMEOUT_MS,
      onDead: (reason) => {
        this.#log.info({ reason }, 'agent link dead; closing session');
        this.#onClosed();
      },
    });
  }

  #onClosed(): void {
    if (!this.#alive) return;
    this.#alive = false;
    clearTimeout(this.#helloTimer);
    this.#stopPing?.();
    if (!this.#socket.destroyed) this.#socket.destroy();
    this.#deps.agentTls?.onClosed?.(this);
    this.#deps.onClose(this);
  }
}

/**
 * Opens one data stream to the agent for a public connection of `tunnel`: the one place that
 * writes DATA_HEADERS. Throws when the session cannot open a stream (closing, gone).
 */
export function openDataStream(h2: ClientHttp2Session, tunnel: { id: string; host: string }, o: StreamOpen): ClientHttp2Stream {
  return h2.request(
    {
      ':method': 'CONNECT',
      ':authority': tunnel.host,
      [DATA_HEADERS.tunnel]: tunnel.id,
      [DATA_HEADERS.client]: o.client,
      [DATA_HEADERS.kind]: o.kind,
      ...(o.clientPort !== undefined ? { [DATA_HEADERS.clientPort]: String(o.clientPort) } : {}),
      ...(o.email !== undefined ? { [DATA_HEADERS.email]: o.email } : {}),
      ...(o.assertion !== undefined ? { [DATA_HEADERS.assertion]: o.assertion } : {}),
      ...(o.idleMs !== undefined ? { [DATA_HEADERS.idleMs]: String(Math.min(MAX_STREAM_IDLE_MS, Math.max(1, Math.round(o.idleMs)))) } : {}),
    },
    { endStream: false },
  );
}

/** The tunnel a control message is about (a register carries it inside), for error replies. */
function tunnelIdOf(m: ControlMessage): string | undefined {
  const id = m.type === 'register' ? m.tunnel.id : 'id' in m ? m.id : undefined;
  return id || undefined;
}
