import type { ClientHttp2Stream } from 'node:http2';
import type { ControlMessage, StreamKind, TunnelOptions, WireErrorCode } from '../protocol/messages.ts';
import type { TunnelMetrics } from './metrics.ts';

// The tunnel directory: which tunnels are live, where, and over which agent sessions. The
// gateway (host → tunnel), identity (is this a host we serve?), certificates (is this a live
// tunnel?), revocation and `tunn status`/`tunn stop` all ask it; nothing else keeps a map of
// tunnels. One relay keeps it in memory (registry.ts); a cluster keeps a lease row per
// (tunnel, relay) in PostgreSQL behind the same interface (DESIGN.md decision 15).

/** How a data stream is opened: what its bytes are, and for which public client. */
export interface StreamOpen {
  kind: StreamKind;
  /** The public client's address (the agent logs it and may pass it on, e.g. in PROXY v2). */
  client: string;
  /** The public client's port (tcp/udp/tls streams: PROXY v2 carries it). */
  clientPort?: number;
  /** `tunn connect` streams: the verified email of the user (never set from anything a client sent). */
  email?: string;
  /** `tunn connect` streams to a --proxy-protocol tunnel: the relay-signed assertion for the PROXY v2 TLV 0xE1. */
  assertion?: string;
  /** tcp/udp streams, and `tls` streams of a tls --backend tcp tunnel: the relay's idle limit for the connection or flow (DATA_HEADERS.idleMs); the agent follows it. */
  idleMs?: number;
}

/** One agent session as the directory sees it (AgentSession on this relay). */
export interface SessionRef {
  readonly id: string;
  readonly agentId: string;
  readonly alive: boolean;
  /**
   * Opens a data stream to the agent for one public connection of `tunnel`. Throws when the
   * session cannot open one (closing, gone): the caller tries another session.
   */
  openStream(tunnel: { id: string; host: string }, o: StreamOpen): ClientHttp2Stream;
  /** Tell the agent its tunnel was taken over, and stop serving it on this session. */
  replaced(tunnelId: string, message: string): void;
  /** Tell the agent it may no longer serve this tunnel (fatal: it must not register it again as is). */
  refuse(tunnelId: string, code: WireErrorCode, message: string): void;
  /** Sends a control message to the agent on this session. */
  send(m: ControlMessage): void;
}

export interface Tunnel {
  /** Agent-side tunnel id. */
  id: string;
  /** `name.domain`, normalised (src/lib/host.ts). */
  host: string;
  name: string;
  domain: string;
  accountId: string;
  email: string;
  agentId: string;
  options: TunnelOptions;
  sessions: SessionRef[];
  metrics: TunnelMetrics;
  /** When it came online on this relay (ms since the epoch; kept while its agent's sessions join). */
  since: number;
  /** Round-robin cursor. */
  next: number;
}

/** What a registration brings (the directory adds sessions, cursor and time). */
export type TunnelInit = Omit<Tunnel, 'sessions' | 'next' | 'since'>;

/**
 * The live tunnels. Contract for implementations:
 *
 * - Lookups (`get`, `byName`, `all`, `pickSession`) are synchronous and never fail: they sit
 *   on the path of every request. A clustered directory answers them from its local view,
 *   kept current by notifications, and says "not here" for a tunnel another relay holds
 *   (forwarding to that relay is the caller's business, through a separate lookup).
 * - Hosts are compared normalised (`normalizeHost` of src/lib/host.ts): callers pass them so.
 * - Calls come from one event loop; an implementation whose state is shared between
 *   processes (a lease table) MUST make `attach` atomic per host across them: two agents
 *   attaching the same host at once end with exactly one holder, the other told `replaced`.
 * - Take-over: attaching a host held by the same agent (same account and agentId) adds the
 *   session to it (several sessions per agent); held by another agent of the same account,
 *   the old agent's sessions are told `replaced` and the host moves, with a fresh `since`.
 *   Whether the account may hold the name at all was decided before (the names table).
 * - A tunnel stays listed while it has at least one session; the last `detach` removes it
 *   and returns it, so the caller can say it went offline exactly once.
 */
export interface TunnelDirectory {
  readonly size: number;
  /** The live tunnel at `host`, if any. */
  get(host: string): Tunnel | undefined;
  /** The account's live tunnels called `nameOrHost` (a name on any of its domains, or a host). */
  byName(accountId: string, nameOrHost: string): Tunnel[];
  /** Every live tunnel (a snapshot is safe to keep while the directory changes). */
  all(): Tunnel[];
  /** Adds `session` to the tunnel at `init.host`, taking it over if another agent holds it. */
  attach(init: TunnelInit, session: SessionRef, now: number): Tunnel;
  /** Removes a session from every tunnel it served; returns the tunnels left without sessions. */
  detach(session: SessionRef): Tunnel[];
  /** Removes one tunnel from one session (unregister, stop, revocation); returns it if it went offline. */
  detachTunnel(session: SessionRef, tunnelId: string): Tunnel | undefined;
  /** The next live session of a tunnel (round robin), or undefined when none is alive. */
  pickSession(t: Tunnel): SessionRef | undefined;
  /**
   * Resolves once what `attach`/`detach` did for `session` is visible to the other relays of a
   * cluster (its lease written); absent for a single relay, where it is at once.
   */
  written?(session: SessionRef): Promise<void>;
  // Room for the tcp/udp kinds: `byPort(port)` for a public port a tunnel holds, with the
  // same rules as `get`.
}
