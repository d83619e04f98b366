import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ServerHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { ControlChannel } from '../protocol/control-channel.ts';
import { watchLiveness } from '../protocol/liveness.ts';
import { TunnError } from '../lib/errors.ts';
import { WindowCounts } from '../lib/window-counts.ts';
import { CONTROL_PATH, PROTOCOL_VERSION, AGENT_EVENT_WINDOW_MS, AGENT_EVENTS_PER_WINDOW, type AcmeAdvert, agentEventSchema, type AgentEventReport, type AgentTlsRequest, type MessageOf, type TlsStateReport, type ControlMessage, type Refusal, type RegisteredTunnel, type TunnelOptions } from '../protocol/messages.ts';
import { ControlRequests } from './control-requests.ts';
import { DataStreams } from './data-streams.ts';
import type { RequestLogEntry, StreamWatch } from './forward.ts';
import type { StreamHandlers } from './stream-handlers.ts';
import type { Target } from './target.ts';
import { parseRelayList, pickEndpoint, resolveEndpoints, type RelayEndpoint } from './relay-endpoints.ts';
import { dialRelay, nextBackoff, type Slot } from './relay-session.ts';

// The agent: keeps `sessions` TLS connections to the relay (more than one, so one session
// tripping a limit or dying does not take the tunnel down), serves the relay's streams as
// the HTTP/2 server on them, and reconnects each one by itself with exponential back-off and
// jitter. A session can die without an event (DESIGN.md, decision 3), so the agent watches
// the raw socket and pings.

export const AGENT_VERSION = '0.1.0';

export interface AgentTunnel extends Omit<TunnelOptions, 'id'> {
  target: Target;
  /**
   * Local only, never sent: TLS ends here with --client-ca, so a stream the relay terminated
   * (`http`, or `tcp` for tls --backend tcp) is refused: it never asked for a client certificate.
   */
  clientCertRequired?: boolean;
}

export interface AgentConfig {
  relayUrl: string;
  token: string;
  /** Extra CA certificate(s) (PEM) to trust for the relay, e.g. its dev CA. */
  relayCa?: string;
  tunnels: AgentTunnel[];
  sessions: number;
  verifyTargetTls: boolean;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  logRequests: boolean;
  /** Handlers for stream kinds besides http (TLS that ends here: `tls`, `acme-tls-alpn`). */
  streamHandlers?: StreamHandlers<AgentTunnelRef>;
  /** The inspector's capture, when it is on: a watch per forwarded connection of tunnel `index`. */
  inspect?: (index: number, tunnel: () => string, clientIp: string, onRequest?: (e: RequestLogEntry) => void) => StreamWatch;
}

/** A local tunnel as stream handlers see it: its id (t0, t1, …) and, once registered, where it is served. */
export interface AgentTunnelRef {
  readonly id: string;
  readonly ready?: RegisteredLocalTunnel;
}

/** A tunnel the relay serves (its `registered` message), with the target it forwards to. */
export interface RegisteredLocalTunnel extends RegisteredTunnel {
  target: Target;
}

interface LocalTunnel extends AgentTunnel {
  id: string;
  /** The name the relay picked when none was asked for; asked for again on every session. */
  assignedName?: string;
  /** The session that asked the relay to pick a name: the others wait for it (else each would get its own). */
  namingSlot?: Slot;
  /** Sessions that wait for the picked name before registering. */
  waiting: Slot[];
  ready?: RegisteredLocalTunnel;
}

export type AgentState = 'connecting' | 'online' | 'reconnecting' | 'stopped';

interface AgentEvents {
  state: [state: AgentState, detail: string];
  ready: [RegisteredLocalTunnel];
  request: [RequestLogEntry & { tunnel: string }];
  /** A request the relay answered itself for a tunnel (refused at the edge, target down). */
  refused: [Refusal & { tunnel: string; target: string }];
  /** Requests the relay answered itself in one second beyond those sent one by one, counted by status and reason. */
  refusedMore: [{ tunnel: string; count: number; more: Extract<ControlMessage, { type: 'refused' }>['more'] }];
  notice: [string];
  /** The relay's ACME CA (welcome), the default of --acme-*. */
  acme: [AcmeAdvert];
  /** Something that went wrong and was handled (a stream reset, a session error): what was being done, and why. */
  debug: [string];
  fatal: [Error & { code?: string }];
}

export class Agent extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig;
  readonly agentId = randomUUID();
  /** The first relay of `--relay` (named in messages); `#relays`: all of them. */
  readonly #relay: URL;
  readonly #relays: URL[];
  readonly #tunnels: Map<string, LocalTunnel>;
  readonly #slots: Slot[] = [];
  #state: AgentState = 'connecting';
  #stopped = false;
  /** A session was welcomed once in this run: from then on every connect error is retried (networks change). */
  #everOnline = false;
  readonly #requests = new ControlRequests();
  /** Every stream the relay opens besides the control stream. */
  readonly #streams: DataStreams<LocalTunnel>;
  /** The last TLS state of each (tunnel, name), re-sent on every session that registers the tunnel. */
  readonly #tlsStates = new Map<string, MessageOf<'tls-state'>>();
  /** What the relay advertised in its last welcome. */
  relayAcme: AcmeAdvert | undefined;
  /** agent-event messages sent in the current window (reportEvent). */
  readonly #eventWindow = new WindowCounts({ limit: AGENT_EVENTS_PER_WINDOW, windowMs: AGENT_EVENT_WINDOW_MS });

  constructor(config: AgentConfig) {
    super();
    this.config = config;
    this.#relays = parseRelayList(config.relayUrl);
    if (!this.#relays.length) throw new TypeError('AgentConfig.relayUrl names no relay');
    this.#relay = this.#relays[0]!;
    this.#tunnels = new Map(config.tunnels.map((t, i) => [`t${i}`, { ...t, id: `t${i}`, waiting: [] }]));
    this.#streams = new DataStreams<LocalTunnel>({
      tunnel: (id) => this.#tunnels.get(id),
      verifyTargetTls: config.verifyTargetTls,
      onRequest: config.logRequests ? (e) => this.emit('request', e) : undefined,
      inspect: config.inspect,
      extra: config.streamHandlers,
      notice: (message) => this.emit('notice', message),
      debug: (message) => this.emit('debug', message),
    });
  }

  get state(): AgentState {
    return this.#state;
  }

  start(): void {
    this.#setState('connecting', `connecting to ${this.#relay.host}`);
    for (let i = 0; i < Math.max(1, this.config.sessions); i++) {
      const slot: Slot = { index: i, online: false, attempt: 0 };
      this.#slots.push(slot);
      this.#connect(slot);
    }
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const s of this.#slots) {
      clearTimeout(s.timer);
      clearTimeout(s.retryTimer);
      s.stopPing?.();
      s.session?.close();
      s.socket?.destroy();
    }
    this.#setState('stopped', 'stopped');
  }

  /** Asks the relay a question about TLS that ends here (on any online session); rejects with the relay's answer when it refuses. */
  ask(request: AgentTlsRequest, timeoutMs?: number): Promise<unknown> {
    const slot = this.#slots.find((s) => s.online && s.control);
    if (!slot) return Promise.reject(new TunnError('UNAVAILABLE', `no session to the relay is online to ask about ${request.op}`));
    const control = slot.control!;
    return this.#requests.ask((m) => control.send(m), slot.index, request, timeoutMs);
  }

  /** Tells the relay where TLS of tunnel `tunnelId`'s name ends now (and every session that registers it later). */
  reportTls(tunnelId: string, state: TlsStateReport): void {
    const m: MessageOf<'tls-state'> = { type: 'tls-state', id: tunnelId, state };
    this.#tlsStates.set(`${tunnelId}\0${state.name}`, m);
    for (const s of this.#slots) if (s.online) s.control?.send(m);
  }

  /**
   * Reports a refusal the agent's gate made for tunnel `tunnelId`'s host (TLS ends here) to the
   * relay's security events, on one online session whose relay reads them (an older relay
   * would end the session over an unknown message). Best effort: none such, it is dropped;
   * one the relay would not parse (an address that is no IP) is dropped here, as the relay ends
   * a session that sends a malformed message.
   */
  reportEvent(tunnelId: string, event: AgentEventReport): void {
    if (!agentEventSchema.safeParse(event).success) return;
    // No more than the relay records (a flood of refused requests is not a flood of control messages).
    if (!this.#eventWindow.take(['agent'], Date.now()).ok) return;
    this.#slots.find((s) => s.online && s.control && s.acceptsEvents)?.control!.send({ type: 'agent-event', id: tunnelId, event });
  }

  #setState(state: AgentState, detail: string): void {
    if (this.#state === state && state !== 'reconnecting') return;
    this.#state = state;
    this.emit('state', state, detail);
  }

  #connect(slot: Slot): void {
    if (this.#stopped) return;
    // Resolved at every connect: the relays' addresses may have changed since.
    void resolveEndpoints(this.#relays).then((endpoints) => {
      if (this.#stopped) return;
      const inUse = this.#slots.filter((s) => s !== slot && s.socket && s.endpoint).map((s) => s.endpoint!);
      this.#dial(slot, pickEndpoint(endpoints, slot.index, slot.attempt, inUse));
    });
  }

  #dial(slot: Slot, ep: RelayEndpoint): void {
    dialRelay(slot, ep, {
      relayCa: this.config.relayCa,
      stopped: () => this.#stopped,
      everOnline: () => this.#everOnline,
      onStream: (stream, headers) => this.#onStream(slot, stream, headers),
      onDown: (why) => this.#slotDown(slot, why),
      onFatal: (err) => {
        this.emit('fatal', err);
        this.stop();
      },
      onDebug: (message) => this.emit('debug', message),
    });
  }

  #onStream(slot: Slot, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    if (headers[':method'] === 'POST' && headers[':path'] === CONTROL_PATH) {
      stream.on('error', (err) => this.emit('debug', `control stream of session ${slot.index + 1}: ${err.message}`));
      stream.respond({ ':status': 200 });
      this.#onControl(slot, new ControlChannel(stream));
      return;
    }
    this.#streams.serve(stream, headers, slot.index + 1);
  }

  #onControl(slot: Slot, ch: ControlChannel): void {
    slot.control = ch;
    ch.send({ type: 'hello', version: PROTOCOL_VERSION, token: this.config.token, agentId: this.agentId, agentVersion: AGENT_VERSION });
    ch.on('message', (m) => this.#onMessage(slot, m));
    // A message this agent cannot read (a newer relay, a bug): said, and the session goes on.
    ch.on('invalid', (err) => this.emit('notice', `ignored a control message from the relay: ${err.message}`));
    ch.on('close', () => slot.socket?.destroy());
  }

  #onMessage(slot: Slot, m: ControlMessage): void {
    switch (m.type) {
      case 'welcome':
        this.#everOnline = true;
        slot.acceptsEvents = m.accepts?.includes('agent-event') ?? false;
        if (m.acme) {
          this.relayAcme = m.acme;
          this.emit('acme', m.acme);
        }
        for (const t of this.#tunnels.values()) {
          if (!t.name && !t.assignedName) {
            if (t.namingSlot) {
              t.waiting.push(slot);
              continue;
            }
            t.namingSlot = slot;
          }
          this.#register(slot, t);
        }
        this.#startPing(slot);
        return;
      case 'registered': {
        const t = this.#tunnels.get(m.id);
        if (!t) return;
        t.assignedName = m.name;
        t.namingSlot = undefined;
        for (const waiting of t.waiting.splice(0)) if (waiting.control) this.#register(waiting, t);
        slot.attempt = 0;
        const wasOnline = slot.online;
        slot.online = true;
        const changed = !t.ready || t.ready.url !== m.url;
        t.ready = { id: m.id, name: m.name, host: m.host, url: m.url, urls: m.urls, target: t.target, ...(m.port !== undefined ? { port: m.port } : {}) };
        if (changed) this.emit('ready', t.ready);
        for (const st of this.#tlsStates.values()) if (st.id === m.id) slot.control?.send(st);
        if (!wasOnline) {
          const detail = `online (${this.#slots.filter((s) => s.online).length}/${this.#slots.length} sessions)`;
          // The agent-wide state does not change when one of several sessions comes back: say so.
          if (this.#state === 'online') this.emit('notice', `session ${slot.index + 1} ${detail}`);
          this.#setState('online', detail);
        }
        return;
      }
      case 'error': {
        const err = Object.assign(new Error(m.message), { code: m.code });
        if (m.fatal) {
          this.emit('fatal', err);
          this.stop();
          return;
        }
        // Not fatal: the relay could not serve the tunnel right now (its database away or
        // full). The session stays; the tunnel is asked for again after a back-off.
        const t = m.id ? this.#tunnels.get(m.id) : undefined;
        if (t && slot.control) {
          const delay = this.#backoff(slot);
          const control = slot.control;
          clearTimeout(slot.retryTimer);
          slot.retryTimer = setTimeout(() => {
            if (!this.#stopped && slot.control === control) this.#register(slot, t);
          }, delay);
          this.emit('notice', `relay: ${m.message} (asking again in ${(delay / 1000).toFixed(1)}s)`);
        } else {
          this.emit('notice', `relay: ${m.message}`);
        }
        return;
      }
      case 'tls-reply':
        this.#requests.answer(m);
        return;
      case 'replaced':
        this.emit('fatal', Object.assign(new Error(m.message), { code: 'REPLACED' }));
        this.stop();
        return;
      case 'notice':
        this.emit('notice', m.message);
        return;
      case 'refused': {
        if (!this.config.logRequests) return;
        const t = this.#tunnels.get(m.id);
        const tunnel = t?.ready?.host ?? m.id;
        for (const r of m.refusals) this.emit('refused', { ...r, tunnel, target: t?.target.display ?? '' });
        const count = m.more.reduce((n, x) => n + x.count, 0);
        if (count > 0) this.emit('refusedMore', { tunnel, count, more: m.more });
        return;
      }
      default:
        return;
    }
  }

  #register(slot: Slot, t: LocalTunnel): void {
    const { target: _target, ready: _ready, assignedName, namingSlot: _namingSlot, waiting: _waiting, clientCertRequired: _clientCertRequired, ...opts } = t;
    slot.control?.send({ type: 'register', tunnel: { ...opts, name: opts.name ?? assignedName } });
  }

  #startPing(slot: Slot): void {
    slot.stopPing?.();
    const { session, socket } = slot;
    if (!session || !socket) return;
    slot.stopPing = watchLiveness({ session, socket, intervalMs: this.config.pingIntervalMs, timeoutMs: this.config.pingTimeoutMs, onDead: (reason) => this.emit('notice', `relay link dead (${reason}); reconnecting`) });
  }

  #slotDown(slot: Slot, why: string): void {
    const wasOnline = slot.online;
    for (const t of this.#tunnels.values()) {
      t.waiting = t.waiting.filter((w) => w !== slot);
      if (t.namingSlot === slot) {
        // The session that asked for a name is gone before the answer: the next one asks.
        t.namingSlot = t.waiting.shift();
        if (t.namingSlot) this.#register(t.namingSlot, t);
      }
    }
    slot.stopPing?.();
    clearTimeout(slot.retryTimer);
    this.#requests.sessionDown(slot.index);
    slot.session = undefined;
    slot.control = undefined;
    slot.socket = undefined;
    slot.online = false;
    if (this.#stopped) return;
    const delay = this.#backoff(slot);
    const anyOnline = this.#slots.some((s) => s.online);
    if (!anyOnline) this.#setState('reconnecting', `${why}; reconnecting in ${(delay / 1000).toFixed(1)}s`);
    else if (wasOnline) this.emit('notice', `session ${slot.index + 1} lost (${why}); reconnecting in ${(delay / 1000).toFixed(1)}s, ${this.#slots.filter((s) => s.online).length}/${this.#slots.length} sessions up`);
    slot.timer = setTimeout(() => this.#connect(slot), delay);
  }

  #backoff(slot: Slot): number {
    return nextBackoff(slot, this.config.backoffMinMs, this.config.backoffMaxMs);
  }
}
