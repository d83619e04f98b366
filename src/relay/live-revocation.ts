import { findRevoked, principalKey, type Principal } from '../auth/revocation.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Store } from '../store/store.ts';
import type { LiveConnection } from './gateway.ts';
import type { Tunnel, TunnelRegistry } from './registry.ts';

// The gate decides per request; a connection that no longer sends requests through it (a
// WebSocket or other upgrade, a long response, an idle keep-alive waiting for the next one)
// and an agent session that said hello once would outlive a revocation. The sweep re-checks
// them all on a short period against the store — so a revocation made by this relay, by the
// CLI on the database, or by another relay sharing PostgreSQL takes effect the same way — and
// cuts what lost its right:
//   - public connections whose visitor session or token was revoked, expired or deleted
//     (sign-out, `tunn token revoke`, a revoked account), or whose visitor is no longer in
//     the tunnel's allow-list;
//   - agent sessions whose token was revoked (the agent is told, and its tunnels go offline);
//   - tunnels on a custom domain that was deleted, unshared or unverified.
// The period bounds the delay: 2 s by default, so a revocation bites within 5 s (the group
// cache adds at most its own 2 s to allow-list changes made on another relay).

/** The subset of the gateway the sweep needs. */
export interface ConnectionTable {
  readonly open: Iterable<LiveConnection>;
  cut(match: (c: LiveConnection) => boolean): number;
}

/** The subset of an agent session the sweep needs. */
export interface AgentLink {
  readonly tokenJti: string | undefined;
  readonly account: { id: string; email: string } | undefined;
  /** Tells the agent why (fatal) and closes the session with its streams. */
  end(code: string, message: string): void;
}

export interface LiveRevocationOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  gateways: readonly ConnectionTable[];
  agents: () => Iterable<AgentLink>;
  registry: TunnelRegistry;
  /** Whether `email` still passes the tunnel's allow-list; absent: allow-lists are not re-checked. */
  allows?: (tunnel: Tunnel, email: string) => Promise<boolean>;
  /** Why `tunnel` may no longer be served under its domain (a sentence for its agent), or undefined. */
  domainLost?: (tunnel: Tunnel) => Promise<string | undefined>;
  /** A tunnel the sweep took offline (for metrics and the log). */
  onTunnelEnded?: (tunnel: Tunnel) => void;
  /** Sweep period; default 2000 ms. */
  intervalMs?: number;
}

export interface SweepReport {
  /** Public connections cut. */
  connections: number;
  /** Agent sessions ended. */
  agents: number;
  /** Tunnels taken offline. */
  tunnels: number;
}

export const DEFAULT_SWEEP_MS = 2000;

export const AGENT_TOKEN_REVOKED = 'the token this agent signed in with was revoked: create a new one with `tunn relay token create` (or `tunn token create`) and start the agent with it';

export class LiveRevocation {
  readonly #o: LiveRevocationOptions;
  readonly intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SweepReport> | undefined;

  constructor(opts: LiveRevocationOptions) {
    this.#o = opts;
    this.intervalMs = opts.intervalMs ?? DEFAULT_SWEEP_MS;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.#o.logger.warn({ err: errorMessage(err) }, 'revocation sweep failed; live connections are kept until the next one'));
    }, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass; a call while one runs joins it. */
  sweep(): Promise<SweepReport> {
    this.#running ??= this.#sweep().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #sweep(): Promise<SweepReport> {
    const report: SweepReport = { connections: 0, agents: 0, tunnels: 0 };
    await this.#sweepDomains(report);
    await this.#sweepCredentials(report);
    await this.#sweepAllowLists(report);
    if (report.connections || report.agents || report.tunnels) this.#o.logger.info(report, 'revocation sweep cut live connections');
    return report;
  }

  async #sweepDomains(report: SweepReport): Promise<void> {
    const lost = this.#o.domainLost;
    if (!lost) return;
    // One answer per (domain, account) per sweep, however many tunnels share it.
    const answers = new Map<string, Promise<string | undefined>>();
    for (const t of [...this.#o.registry.all()]) {
      const key = `${t.domain}\0${t.accountId}`;
      let answer = answers.get(key);
      if (!answer) answers.set(key, (answer = lost(t)));
      const why = await answer;
      if (!why || this.#o.registry.get(t.host) !== t) continue;
      for (const s of [...t.sessions]) {
        s.refuse(t.id, 'FORBIDDEN', why);
        this.#o.registry.detachTunnel(s, t.id);
      }
      report.tunnels++;
      report.connections += this.#cut((c) => c.tunnel === t);
      this.#o.logger.info({ host: t.host, reason: why }, 'tunnel taken offline: it lost its right to its domain');
      this.#o.onTunnelEnded?.(t);
    }
  }

  async #sweepCredentials(report: SweepReport): Promise<void> {
    const principals: Principal[] = [];
    const agents = [...this.#o.agents()];
    for (const a of agents) {
      if (a.tokenJti && a.account) principals.push({ via: 'token', jti: a.tokenJti, accountId: a.account.id, email: a.account.email });
    }
    for (const g of this.#o.gateways) for (const c of g.open) principals.push(...c.principals);
    if (principals.length === 0) return;
    const revoked = await findRevoked(this.#o.store, this.#o.clock, principals);
    if (revoked.size === 0) return;
    for (const a of agents) {
      if (!a.tokenJti || !revoked.has(`t:${a.tokenJti}`)) continue;
      a.end('AUTH_TOKEN_REVOKED', AGENT_TOKEN_REVOKED);
      report.agents++;
    }
    // Any one revoked credential cuts the connection (a pipelined request must not shield an earlier one).
    report.connections += this.#cut((c) => c.principals.some((p) => revoked.has(principalKey(p))));
  }

  async #sweepAllowLists(report: SweepReport): Promise<void> {
    const allows = this.#o.allows;
    if (!allows) return;
    // One policy decision per (tunnel, email), however many connections share it.
    const decisions = new Map<Tunnel, Map<string, boolean>>();
    for (const g of this.#o.gateways) {
      for (const c of g.open) {
        const t = c.tunnel;
        if (!t || c.principals.length === 0) continue;
        let m = decisions.get(t);
        if (!m) decisions.set(t, (m = new Map()));
        for (const p of c.principals) if (!m.has(p.email)) m.set(p.email, true);
      }
    }
    let denied = false;
    for (const [t, m] of decisions) {
      for (const email of m.keys()) {
        const ok = await allows(t, email);
        m.set(email, ok);
        if (!ok) denied = true;
      }
    }
    if (!denied) return;
    report.connections += this.#cut((c) => c.tunnel !== undefined && c.principals.some((p) => decisions.get(c.tunnel!)?.get(p.email) === false));
  }

  #cut(match: (c: LiveConnection) => boolean): number {
    let n = 0;
    for (const g of this.#o.gateways) n += g.cut(match);
    return n;
  }
}
