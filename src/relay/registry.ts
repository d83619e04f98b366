import type { ClientHttp2Stream } from 'node:http2';
import type { ControlMessage, StreamKind, TunnelOptions, WireErrorCode } from '../protocol/messages.ts';
import type { TunnelMetrics } from './metrics.ts';

// The live tunnels of this relay, by host. A tunnel is served by one agent (agentId) over
// one or more sessions; new public connections are spread over its sessions round robin.

/** How a data stream is opened: what its bytes are, and for which public client. */
export interface StreamOpen {
  kind: StreamKind;
  /** The public client's address (the agent logs it and may pass it on, e.g. in PROXY v2). */
  client: string;
}

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

export class TunnelRegistry {
  readonly #byHost = new Map<string, Tunnel>();

  get size(): number {
    return this.#byHost.size;
  }

  get(host: string): Tunnel | undefined {
    return this.#byHost.get(host);
  }

  all(): IterableIterator<Tunnel> {
    return this.#byHost.values();
  }

  /**
   * Adds `session` to the tunnel at `init.host`. Same agent: joins its sessions. Another agent
   * of the same account: takes the host over (the old agent is told it was replaced). The
   * caller has already checked that the account owns the name.
   */
  attach(init: Omit<Tunnel, 'sessions' | 'next' | 'since'>, session: SessionRef, now = Date.now()): Tunnel {
    const existing = this.#byHost.get(init.host);
    if (existing && existing.agentId === init.agentId && existing.accountId === init.accountId) {
      if (!existing.sessions.includes(session)) existing.sessions.push(session);
      existing.options = init.options;
      return existing;
    }
    if (existing) {
      for (const s of existing.sessions) s.replaced(existing.id, `the tunnel ${init.host} was taken over by another agent of ${init.email}`);
    }
    const t: Tunnel = { ...init, sessions: [session], next: 0, since: now };
    this.#byHost.set(init.host, t);
    return t;
  }

  /** Removes a session from every tunnel it served; tunnels left without sessions go offline (the gateway then answers from the store which names are held). */
  detach(session: SessionRef): Tunnel[] {
    const gone: Tunnel[] = [];
    for (const [host, t] of this.#byHost) {
      const i = t.sessions.indexOf(session);
      if (i < 0) continue;
      t.sessions.splice(i, 1);
      if (t.sessions.length === 0) {
        this.#byHost.delete(host);
        gone.push(t);
      }
    }
    return gone;
  }

  /** Removes one tunnel from one session (unregister). */
  detachTunnel(session: SessionRef, tunnelId: string): Tunnel | undefined {
    for (const [host, t] of this.#byHost) {
      if (t.id !== tunnelId || !t.sessions.includes(session)) continue;
      t.sessions.splice(t.sessions.indexOf(session), 1);
      if (t.sessions.length === 0) {
        this.#byHost.delete(host);
        return t;
      }
    }
    return undefined;
  }

  /** The next live session of a tunnel, round robin. */
  pickSession(t: Tunnel): SessionRef | undefined {
    const n = t.sessions.length;
    for (let k = 0; k < n; k++) {
      const s = t.sessions[(t.next + k) % n]!;
      if (s.alive) {
        t.next = (t.next + k + 1) % n;
        return s;
      }
    }
    return undefined;
  }
}
