import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { LeaseClaim, LeaseKind, LeaseTable } from './leases.ts';

// The relay's tunnel directory in a cluster: the relay's own in-memory directory (issue 10's
// TunnelRegistry) answers every lookup, synchronously, as on one relay; this wrapper mirrors
// its changes into the lease table (attach → acquire, detach → release) and applies what the
// table says back (a take-over elsewhere → "replaced" here; another account's live lease →
// the registration is refused). Phase 2 wraps the relay's registry in it; nothing else in the
// relay changes. The interfaces below are the parts of src/relay/tunnel-directory.ts it needs,
// written structurally because src/cluster does not import src/relay.

export interface LocalSession {
  readonly id: string;
  /** Tell the agent its tunnel was taken over, and stop serving it on this session. */
  replaced(tunnelId: string, message: string): void;
  /** Tell the agent it may not serve this tunnel. */
  refuse(tunnelId: string, code: 'NAME_TAKEN', message: string): void;
}

export interface LocalTunnel<S> {
  id: string;
  host: string;
  name: string;
  accountId: string;
  agentId: string;
  sessions: S[];
}

export interface LocalDirectory<T extends LocalTunnel<S>, S extends LocalSession, I> {
  readonly size: number;
  get(host: string): T | undefined;
  byName(accountId: string, nameOrHost: string): T[];
  all(): T[];
  attach(init: I, session: S, now: number): T;
  detach(session: S): T[];
  detachTunnel(session: S, tunnelId: string): T | undefined;
  pickSession(t: T): S | undefined;
}

export interface ClusterDirectoryOptions<T> {
  nodeId: string;
  leases: LeaseTable;
  clock: Clock;
  logger: Logger;
  /** The lease fields the directory does not know by itself: the tunnel's kind and public port. */
  leaseOf(t: T): { kind: LeaseKind; port: number | null };
}

export class ClusterDirectory<T extends LocalTunnel<S>, S extends LocalSession, I> implements LocalDirectory<T, S, I> {
  readonly #inner: LocalDirectory<T, S, I>;
  readonly #o: ClusterDirectoryOptions<T>;
  /** Lease writes per agent session, in order (a release never overtakes the acquire before it). */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(inner: LocalDirectory<T, S, I>, o: ClusterDirectoryOptions<T>) {
    this.#inner = inner;
    this.#o = o;
  }

  get size(): number {
    return this.#inner.size;
  }
  get(host: string): T | undefined {
    return this.#inner.get(host);
  }
  byName(accountId: string, nameOrHost: string): T[] {
    return this.#inner.byName(accountId, nameOrHost);
  }
  all(): T[] {
    return this.#inner.all();
  }
  pickSession(t: T): S | undefined {
    return this.#inner.pickSession(t);
  }

  attach(init: I, session: S, now: number): T {
    const t = this.#inner.attach(init, session, now);
    this.#enqueue(session.id, () => this.#acquire(t, session));
    return t;
  }

  detach(session: S): T[] {
    const gone = this.#inner.detach(session);
    this.#enqueue(session.id, () => this.#o.leases.release(this.#o.nodeId, session.id).catch((err) => this.#logFailure('releasing the leases of a closed agent session', err)));
    return gone;
  }

  detachTunnel(session: S, tunnelId: string): T | undefined {
    const host = this.#inner.all().find((t) => t.id === tunnelId && t.sessions.includes(session))?.host;
    const t = this.#inner.detachTunnel(session, tunnelId);
    if (host !== undefined) this.#enqueue(session.id, () => this.#o.leases.release(this.#o.nodeId, session.id, host).catch((err) => this.#logFailure(`releasing the lease of ${host}`, err)));
    return t;
  }

  /** What this node serves, one claim per (tunnel, session): the heartbeat's `held`. */
  held(): LeaseClaim[] {
    const out: LeaseClaim[] = [];
    for (const t of this.#inner.all()) for (const s of t.sessions) out.push(this.#claim(t, s));
    return out;
  }

  /** The heartbeat's `onLost`: tunnels another agent took over elsewhere stop being served here. */
  lost(claims: LeaseClaim[]): void {
    for (const c of claims) {
      const t = this.#inner.get(c.host);
      const s = t?.sessions.find((x) => x.id === c.sessionId);
      if (!t || !s) continue;
      s.replaced(t.id, `the tunnel ${t.host} was taken over by another agent on another relay`);
      this.#inner.detachTunnel(s, t.id);
    }
  }

  /**
   * Checks one host against the lease table now (a lease change was announced for it): if
   * another agent holds it, this relay's sessions for it are told "replaced".
   */
  async recheck(host: string): Promise<void> {
    const t = this.#inner.get(host);
    if (!t) return;
    const holders = await this.#o.leases.holders(host, this.#o.clock.now());
    if (holders.some((l) => l.agentId !== t.agentId)) this.lost(t.sessions.map((s) => this.#claim(t, s)));
  }

  /** What `leaseOf` says of `host` changed (its TLS now ends at the agent, or no longer): write its leases again. */
  rewrite(host: string): void {
    const t = this.#inner.get(host);
    if (!t) return;
    for (const s of t.sessions) this.#enqueue(s.id, () => this.#acquire(t, s));
  }

  /** Resolves when the lease writes queued so far for `session` are done (each failure is logged, not thrown). */
  async written(session: S): Promise<void> {
    await this.#queues.get(session.id);
  }

  async settled(): Promise<void> {
    while (this.#queues.size) await Promise.all(this.#queues.values());
  }

  #claim(t: T, s: S): LeaseClaim {
    return { host: t.host, nodeId: this.#o.nodeId, sessionId: s.id, tunnelId: t.id, name: t.name, accountId: t.accountId, agentId: t.agentId, ...this.#o.leaseOf(t) };
  }

  async #acquire(t: T, session: S): Promise<void> {
    try {
      await this.#o.leases.acquire(this.#claim(t, session), this.#o.clock.now());
    } catch (err) {
      if (isTunnError(err, 'CONFLICT')) {
        session.refuse(t.id, 'NAME_TAKEN', err.message);
        this.#inner.detachTunnel(session, t.id);
        return;
      }
      // The database is away: the tunnel serves here meanwhile, and the heartbeat acquires the lease when it is back.
      this.#logFailure(`recording ${t.host} in the cluster`, err);
    }
  }

  #enqueue(sessionId: string, write: () => Promise<void>): void {
    const p = (this.#queues.get(sessionId) ?? Promise.resolve()).then(write);
    this.#queues.set(sessionId, p);
    void p.finally(() => this.#queues.get(sessionId) === p && this.#queues.delete(sessionId));
  }

  #logFailure(doing: string, err: unknown): void {
    this.#o.logger.warn({ event: 'cluster_lease_failed', err: errorMessage(err) }, `${doing} failed: the heartbeat retries`);
  }
}
