import { findRevoked, principalKey, type Principal } from '../auth/revocation.ts';
import { IDENTITY_OUTAGE_WINDOW_MS } from '../auth/outage-cache.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Store } from '../store/store.ts';
import type { LiveConnection } from './gateway.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

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
//
// The sweep must not stop because the store does: a query that never answers (a half-open
// PostgreSQL connection) would otherwise hold the one running sweep forever and turn live
// revocation off until restart. Each sweep is time-boxed to twice the period. While sweeps
// fail (the database is away), a live signed-in connection follows the gate's outage rule
// (auth/outage-cache.ts): it is kept while each of its credentials' last answer is at most the
// identity outage window old (30 s), and cut once one is older (fail closed): nothing can tell
// whether that credential was revoked since. A credential's last answer is the last sweep that
// checked it, or the gate's cached answer (a connection let in during the outage), whichever is
// newer; one neither saw dates from the last good sweep. Public connections stay, and new
// requests need the store (or the gate's cache) anyway.

/** The subset of the gateway the sweep needs. */
export interface ConnectionTable {
  readonly open: Iterable<LiveConnection>;
  cut(match: (c: LiveConnection) => boolean): number;
}

/** The subset of an agent session the sweep needs. */
export interface AgentLink {
  readonly tokenJti: string | undefined;
  /** The key that signed that token, when known: retiring the key ends the session. */
  readonly tokenKid?: string | undefined;
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
  directory: TunnelDirectory;
  /** Whether the visitor still passes the tunnel's allow-list (grants, IdP groups); absent: allow-lists are not re-checked. */
  allows?: (tunnel: Tunnel, who: Principal) => Promise<boolean>;
  /** Why `tunnel` may no longer be served under its domain (a sentence for its agent), or undefined. */
  domainLost?: (tunnel: Tunnel) => Promise<string | undefined>;
  /** A tunnel the sweep took offline (for metrics and the log). */
  onTunnelEnded?: (tunnel: Tunnel) => void;
  /**
   * Credentials kept without a live connection (the gate's outage cache, auth/outage-cache.ts):
   * checked on every sweep, and `forget` is told which were revoked, so a revocation made
   * anywhere before a database outage is not answered from cache during it.
   */
  cached?: { principals(): Iterable<Principal>; forget(revoked: ReadonlySet<string>): void; answeredAt?(): ReadonlyMap<string, number> };
  /** How long a credential's last answer is trusted while the store fails (the gate's identity outage window); default 30 s. */
  outageWindowMs?: number;
  /** Told the retired keys among those that signed a live credential, on each sweep that found some (the relay reloads its keys if it did not know). */
  onRetiredKeys?: (kids: ReadonlySet<string>) => void;
  /** Sweep period; default 2000 ms. A sweep taking longer than twice this fails. */
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

export const AGENT_KEY_RETIRED = 'the signing key of the token this agent signed in with was retired (`tunn relay keys retire`): create a new token with `tunn relay token create` (or `tunn token create`) and start the agent with it';

export const AGENT_TOKEN_REVOKED = 'the token this agent signed in with was revoked: create a new one with `tunn relay token create` (or `tunn token create`) and start the agent with it';

export class LiveRevocation {
  readonly #o: LiveRevocationOptions;
  readonly intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SweepReport> | undefined;
  #failures = 0;
  /** Principal key → when a sweep last read its revocation state (the store answered). */
  #answered = new Map<string, number>();
  /** When the last good sweep started (construction time before the first). */
  #lastGood: number;
  readonly #windowMs: number;

  constructor(opts: LiveRevocationOptions) {
    this.#o = opts;
    this.intervalMs = opts.intervalMs ?? DEFAULT_SWEEP_MS;
    this.#windowMs = opts.outageWindowMs ?? IDENTITY_OUTAGE_WINDOW_MS;
    this.#lastGood = opts.clock.now();
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#running) return; // still running (its own time box ends it): one log line per failure
      this.sweep().catch((err: unknown) => this.#o.logger.warn({ err: errorMessage(err), failures: this.#failures }, `revocation sweep failed; a signed-in live connection is cut once its credential's last answer is over ${this.#windowMs} ms old`));
    }, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Failed sweeps in a row (0 after a good one). */
  get failures(): number {
    return this.#failures;
  }

  /**
   * A pass that starts after any running one ends: for a change just made (NOTIFY), which a
   * pass already under way may have read too early to see.
   */
  async sweepAfresh(): Promise<SweepReport> {
    await this.#running?.catch(() => {});
    return this.sweep();
  }

  /** One pass; a call while one runs joins it. It fails when the pass takes over twice the period. */
  sweep(): Promise<SweepReport> {
    this.#running ??= this.#timeBoxed().then(
      (report) => {
        this.#running = undefined;
        this.#failures = 0;
        return report;
      },
      (err: unknown) => {
        this.#running = undefined;
        this.#failed(err);
        throw err;
      },
    );
    return this.#running;
  }

  #timeBoxed(): Promise<SweepReport> {
    const limit = 2 * this.intervalMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the revocation sweep took over ${limit} ms (the store did not answer); it is abandoned and the next one starts afresh`)), limit);
      timer.unref();
    });
    return Promise.race([this.#sweep(), late]).finally(() => clearTimeout(timer));
  }

  #failed(err: unknown): void {
    this.#failures++;
    const now = this.#o.clock.now();
    const cachedAt = this.#o.cached?.answeredAt?.();
    const stale = (p: Principal): boolean => {
      const k = principalKey(p);
      const seen = this.#answered.get(k);
      const cached = cachedAt?.get(k);
      const last = seen === undefined && cached === undefined ? this.#lastGood : Math.max(seen ?? -Infinity, cached ?? -Infinity);
      return now - last > this.#windowMs;
    };
    const n = this.#cut((c) => c.principals.some(stale));
    if (n === 0) return;
    this.#o.logger.warn(
      { event: 'live_connections_failed_closed', err: errorMessage(err), failures: this.#failures, connections: n, windowMs: this.#windowMs },
      `revocation cannot be checked (the store is not answering): signed-in live connections whose credential was last checked over ${this.#windowMs} ms ago are cut`,
    );
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
    for (const t of this.#o.directory.all()) {
      const key = `${t.domain}\0${t.accountId}`;
      let answer = answers.get(key);
      if (!answer) answers.set(key, (answer = lost(t)));
      const why = await answer;
      if (!why || this.#o.directory.get(t.host) !== t) continue;
      for (const s of [...t.sessions]) {
        s.refuse(t.id, 'FORBIDDEN', why);
        this.#o.directory.detachTunnel(s, t.id);
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
    if (this.#o.cached) principals.push(...this.#o.cached.principals());
    const at = this.#o.clock.now();
    if (principals.length === 0) {
      this.#answered.clear();
      this.#lastGood = at;
      return;
    }
    const revoked = await findRevoked(this.#o.store, this.#o.clock, principals);
    // A retired signing key revokes every token it signed.
    const retired = await this.#retiredKeys(agents, principals);
    // The store answered for every one of them now: their last answer (kept only for those still live).
    this.#answered = new Map(principals.map((p) => [principalKey(p), at]));
    this.#lastGood = at;
    if (retired.size) {
      for (const p of principals) if (p.via === 'token' && p.kid && retired.has(p.kid)) revoked.add(principalKey(p));
    }
    // An agent session whose key was retired ends even when no other credential was revoked.
    if (revoked.size === 0 && retired.size === 0) return;
    this.#o.cached?.forget(revoked);
    let byKey = 0;
    for (const a of agents) {
      if (a.tokenKid && retired.has(a.tokenKid)) {
        a.end('AUTH_TOKEN_REVOKED', AGENT_KEY_RETIRED);
        report.agents++;
        byKey++;
        continue;
      }
      if (!a.tokenJti || !revoked.has(`t:${a.tokenJti}`)) continue;
      a.end('AUTH_TOKEN_REVOKED', AGENT_TOKEN_REVOKED);
      report.agents++;
    }
    // Any one revoked credential cuts the connection (a pipelined request must not shield an earlier one).
    const cut = this.#cut((c) => c.principals.some((p) => revoked.has(principalKey(p))));
    report.connections += cut;
    if (retired.size && byKey + cut > 0) {
      this.#o.logger.warn(
        { event: 'signing_key_retired_cut', kids: [...retired], agents: byKey, connections: cut },
        `signing key${retired.size > 1 ? 's' : ''} ${[...retired].join(', ')} retired: the agent sessions and connections whose tokens it signed are cut`,
      );
    }
  }

  /** The retired keys among those that signed a live agent's token or a live credential (one small query; none when no key is known). */
  async #retiredKeys(agents: readonly AgentLink[], principals: readonly Principal[]): Promise<Set<string>> {
    const kids = new Set<string>();
    for (const a of agents) if (a.tokenKid) kids.add(a.tokenKid);
    for (const p of principals) if (p.via === 'token' && p.kid) kids.add(p.kid);
    if (kids.size === 0) return kids;
    const rows = await this.#o.store.db.selectFrom('signing_keys').select('kid').where('kid', 'in', [...kids]).where('retired_at', 'is not', null).execute();
    const retired = new Set(rows.map((r) => r.kid));
    if (retired.size) this.#o.onRetiredKeys?.(retired);
    return retired;
  }

  async #sweepAllowLists(report: SweepReport): Promise<void> {
    const allows = this.#o.allows;
    if (!allows) return;
    // One policy decision per (tunnel, credential), however many connections share it (IdP
    // groups belong to the sign-in, so two sessions of one email may differ).
    const decisions = new Map<Tunnel, Map<string, { who: Principal; ok: boolean }>>();
    for (const g of this.#o.gateways) {
      for (const c of g.open) {
        const t = c.tunnel;
        if (!t || c.principals.length === 0) continue;
        let m = decisions.get(t);
        if (!m) decisions.set(t, (m = new Map()));
        for (const p of c.principals) {
          const k = principalKey(p);
          if (!m.has(k)) m.set(k, { who: p, ok: true });
        }
      }
    }
    let denied = false;
    for (const [t, m] of decisions) {
      for (const d of m.values()) {
        d.ok = await allows(t, d.who);
        if (!d.ok) denied = true;
      }
    }
    if (!denied) return;
    report.connections += this.#cut((c) => c.tunnel !== undefined && c.principals.some((p) => decisions.get(c.tunnel!)?.get(principalKey(p))?.ok === false));
  }

  #cut(match: (c: LiveConnection) => boolean): number {
    let n = 0;
    for (const g of this.#o.gateways) n += g.cut(match);
    return n;
  }
}
