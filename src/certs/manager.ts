import { createHash } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { systemClock, type Clock } from '../lib/clock.ts';
import { TunnError, errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { TlsStatus } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { AlertHook, CertAlert } from './alerts.ts';
import { customDomainDecision, type CertDecision, type DecisionFunc } from './decision.ts';
import { domainByName, listDomains, updateDomainTls } from './domains.ts';
import { recordCertEvent, type CertEventKind } from './events.ts';
import type { Issuer } from './issuer.ts';
import { ManagedNames, type ManagedCertificate } from './managed.ts';
import { OrderBudget, retryDelay, RETRY_SCHEDULE_MS, type CertFailurePolicy } from './retry.ts';
import { CertStorage, secureContextFor, type StoredCertificate } from './storage.ts';

// The certificate manager: serves certificates to the TLS edge by SNI, issues on demand when
// the decision function approves a name, renews in the background (2/3 of the lifetime, or
// inside the CA's ARI window), and keeps the lifecycle columns, event log and alerts current.
// A failure never takes a working certificate away: the last good one is served until expiry.
// Names the server itself must have (the relay's own) are managed (managed.ts): obtained in
// the background and retried on the back-off schedule until they come.

export interface CertManagerOptions {
  store: Store;
  box: SecretBox;
  issuer: Issuer;
  decide: DecisionFunc;
  clock?: Clock;
  logger?: Logger;
  /** Fraction of the lifetime after which to renew (default 2/3). */
  renewFraction?: number;
  /** Alert (and mark `expiring`) when a served certificate has less than this left (default 14 days). */
  expiryAlertMs?: number;
  onAlert?: AlertHook;
  /** Back-off after failures (default: retry.ts RETRY_SCHEDULE_MS). */
  retrySchedule?: readonly number[];
  /** New-order budget (default 300 per 3 hours, Let's Encrypt's per-account limit). */
  orderBudget?: OrderBudget;
  /** How often start() runs maintain() (default 10 minutes). */
  maintainIntervalMs?: number;
  /** How often to ask the CA for renewal information per certificate (default 6 hours). */
  ariRefreshMs?: number;
}

export interface CertListEntry {
  name: string;
  names: string[];
  domain?: string;
  issuer: string;
  status: TlsStatus;
  notBefore: string;
  notAfter: string;
  renewAt: string;
  lastError: string | null;
  nextRetryAt: string | null;
  certificateRef: string;
}

/** Handshakes refused for want of a certificate are logged at most this often per name. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

interface Entry {
  cert: StoredCertificate;
  ctx: SecureContext;
}

interface RetryState {
  failures: number;
  nextAt: number | null;
  policy: CertFailurePolicy;
  lastError: string | null;
}

export class CertManager {
  readonly storage: CertStorage;
  readonly #o: CertManagerOptions;
  readonly #clock: Clock;
  readonly #budget: OrderBudget;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();
  /** Retry state of names without a domains row (the relay's own names). */
  readonly #retry = new Map<string, RetryState>();
  readonly #alerted = new Set<string>();
  readonly #refusalLoggedAt = new Map<string, number>();
  readonly #managed = new ManagedNames({
    valid: async (name) => {
      const e = await this.#current(name);
      return e && e.cert.notAfter > this.#clock.now() ? e.cert : undefined;
    },
    tryObtain: async (d) => ((await this.#mayOrder(d, this.#clock.now())) ? this.obtain(d) : undefined),
    waitMs: async (d) => {
      const s = await this.#retryState(d);
      // No failure on record (recording it failed): the schedule's first step, never a spin.
      if (s.failures === 0) return retryDelay(1, this.#o.retrySchedule ?? RETRY_SCHEDULE_MS);
      return s.nextAt === null ? undefined : s.nextAt - this.#clock.now();
    },
  });
  #timer?: NodeJS.Timeout;
  #maintaining?: Promise<void>;
  #maintainNext?: Promise<void>;

  constructor(opts: CertManagerOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#budget = opts.orderBudget ?? new OrderBudget();
    this.storage = new CertStorage(opts.store, opts.box);
  }

  /**
   * For the relay's SNICallback: the context to serve `servername` with, or undefined to fail
   * the handshake. Names the decision function refuses never reach storage or the CA. May
   * wait for an issuance (on-demand); concurrent calls for one certificate share one order.
   */
  async getSecureContext(servername: string): Promise<SecureContext | undefined> {
    let d: CertDecision | undefined;
    try {
      d = await this.#o.decide(servername);
    } catch (err) {
      this.#o.logger?.warn({ servername, err: errorMessage(err) }, 'certificate decision failed; refusing the handshake');
      return undefined;
    }
    if (!d) return undefined;
    const now = this.#clock.now();
    const entry = await this.#current(d.name);
    if (entry && entry.cert.notAfter > now) {
      if (now >= this.renewAt(entry.cert)) void this.#renewQuietly(d, 'renewal');
      return entry.ctx;
    }
    if (!(await this.#mayOrder(d, now))) {
      void this.#logRefusal(d, servername);
      return undefined;
    }
    try {
      return (await this.#obtainShared(d, entry ? 'renewal' : 'on-demand')).ctx;
    } catch {
      void this.#logRefusal(d, servername); // also recorded as tls_error with a scheduled retry
      return undefined;
    }
  }

  /**
   * Keeps a certificate for `servername` from now on (the server's own names). Answers at once,
   * from memory or storage, whether one is there; when none is, obtains it in the background and
   * retries on the back-off schedule (and at each maintain()) until one comes. Renewal is then
   * maintain()'s, as for every stored certificate.
   */
  async manage(servername: string): Promise<ManagedCertificate> {
    const d = await this.#o.decide(servername);
    if (!d) throw new TunnError('CONFIG_INVALID', `no certificate may be issued for ${servername}: the certificate decision refuses the name`);
    return this.#managed.add(d);
  }

  /** Issues (or renews) the certificate for `d` now, sharing an order already in flight. */
  async obtain(d: CertDecision): Promise<StoredCertificate> {
    return (await this.#obtainShared(d, (await this.#current(d.name)) ? 'renewal' : 'on-demand')).cert;
  }

  /** When the certificate is due for renewal: inside the CA's ARI window, else at renewFraction of its lifetime. */
  renewAt(cert: Pick<StoredCertificate, 'id' | 'notBefore' | 'notAfter' | 'renewalWindow'>): number {
    const w = cert.renewalWindow;
    if (w) {
      // A stable point in the window per certificate, so a fleet does not renew all at once (RFC 9773 4.2).
      const frac = createHash('sha256').update(cert.id).digest().readUInt32BE(0) / 2 ** 32;
      return Math.floor(w.start + (w.end - w.start) * frac);
    }
    return cert.notBefore + Math.floor((cert.notAfter - cert.notBefore) * (this.#o.renewFraction ?? 2 / 3));
  }

  /**
   * One maintenance pass (certmagic's maintain.go): renews certificates that are due, refreshes
   * ARI windows, alerts on certificates close to expiry, and retries verified custom domains
   * that have no certificate yet once their retry time has come. A call during a pass gets a
   * fresh pass after it (what is due may have changed since the running pass looked); calls
   * while that one waits share it.
   */
  async maintain(): Promise<void> {
    if (this.#maintaining) {
      this.#maintainNext ??= this.#maintaining
        .catch(() => {})
        .then(() => {
          this.#maintainNext = undefined;
          return this.maintain();
        });
      return this.#maintainNext;
    }
    this.#maintaining = this.#maintainOnce().finally(() => (this.#maintaining = undefined));
    return this.#maintaining;
  }

  start(): void {
    this.#managed.start();
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.maintain().catch((err) => this.#o.logger?.error({ err: errorMessage(err) }, 'certificate maintenance failed')), this.#o.maintainIntervalMs ?? 600_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#managed.stop();
  }

  /** Clears a domain's back-off so the next handshake or maintain() tries at once (`tunn domain verify`, cert retry). */
  async retryNow(domainOrName: string): Promise<void> {
    this.#retry.delete(domainOrName);
    await updateDomainTls(this.#o.store, domainOrName, { cert_next_retry_at: null, cert_failure_count: 0 });
    this.#managed.wake();
  }

  /** Drops a certificate from memory and storage (a deleted domain). */
  async forget(name: string): Promise<void> {
    this.#cache.delete(name);
    await this.storage.delete(name);
  }

  /** Every stored certificate with its lifecycle state, for `tunn cert list`. */
  async list(): Promise<CertListEntry[]> {
    const out: CertListEntry[] = [];
    for (const c of await this.storage.list()) {
      const row = c.name.startsWith('*.') ? await domainByName(this.#o.store, c.name.slice(2)) : undefined;
      const mem = this.#retry.get(c.name);
      out.push({
        name: c.name,
        names: c.names,
        domain: row?.domain,
        issuer: c.issuer,
        status: row?.tlsStatus ?? (mem?.failures ? 'tls_error' : this.#clock.now() >= c.notAfter - (this.#o.expiryAlertMs ?? 14 * 86_400_000) ? 'expiring' : 'issued'),
        notBefore: nowIso(c.notBefore),
        notAfter: nowIso(c.notAfter),
        renewAt: nowIso(this.renewAt(c)),
        lastError: row?.tlsLastError ?? mem?.lastError ?? null,
        nextRetryAt: row?.certNextRetryAt ?? (mem?.nextAt ? nowIso(mem.nextAt) : null),
        certificateRef: c.id,
      });
    }
    return out;
  }

  async #current(name: string): Promise<Entry | undefined> {
    const cached = this.#cache.get(name);
    if (cached) return cached;
    const cert = await this.storage.load(name);
    if (!cert) return undefined;
    const entry = { cert, ctx: secureContextFor(cert) };
    this.#cache.set(name, entry);
    return entry;
  }

  async #retryState(d: CertDecision): Promise<RetryState> {
    if (d.domain) {
      const row = await domainByName(this.#o.store, d.domain);
      if (row) {
        return { failures: row.certFailureCount, nextAt: row.certNextRetryAt ? Date.parse(row.certNextRetryAt) : null, policy: row.certFailurePolicy, lastError: row.tlsLastError };
      }
    }
    return this.#retry.get(d.name) ?? { failures: 0, nextAt: null, policy: 'backoff', lastError: null };
  }

  /** False while a failed name waits for its retry time (or for a person, under the manual policy). */
  async #mayOrder(d: CertDecision, now: number): Promise<boolean> {
    if (this.#inflight.has(d.name)) return true;
    const s = await this.#retryState(d);
    if (s.failures === 0) return true;
    if (s.policy === 'manual') return false;
    return s.nextAt === null || s.nextAt <= now;
  }

  /** Says (at most once a minute per certificate) why a handshake for `servername` gets no certificate. */
  async #logRefusal(d: CertDecision, servername: string): Promise<void> {
    const now = this.#clock.now();
    const last = this.#refusalLoggedAt.get(d.name);
    if (last !== undefined && now - last >= 0 && now - last < REFUSAL_LOG_INTERVAL_MS) return;
    this.#refusalLoggedAt.set(d.name, now);
    const s = await this.#retryState(d).catch(() => undefined);
    const next = s?.nextAt ? `next attempt at ${nowIso(s.nextAt)}` : s?.policy === 'manual' ? 'automatic retries are off (manual policy): run `tunn domain verify`' : 'next attempt on the next handshake';
    this.#o.logger?.warn(
      { servername, certificate: d.name, failures: s?.failures ?? 0, lastError: s?.lastError ?? null, nextRetryAt: s?.nextAt ? nowIso(s.nextAt) : null },
      `refusing TLS for ${servername}: no certificate for it yet (${s?.lastError ? `last attempt failed: ${s.lastError}` : 'not issued yet'}; ${next})`,
    );
  }

  async #renewQuietly(d: CertDecision, reason: 'renewal' | 'retry'): Promise<void> {
    if (this.#inflight.has(d.name) || !(await this.#mayOrder(d, this.#clock.now()))) return;
    await this.#obtainShared(d, reason).catch(() => {});
  }

  #obtainShared(d: CertDecision, reason: 'on-demand' | 'renewal' | 'retry'): Promise<Entry> {
    let p = this.#inflight.get(d.name);
    if (!p) {
      p = this.#obtain(d, reason).finally(() => this.#inflight.delete(d.name));
      this.#inflight.set(d.name, p);
    }
    return p;
  }

  async #obtain(d: CertDecision, reason: 'on-demand' | 'renewal' | 'retry'): Promise<Entry> {
    const { store, issuer, logger } = this.#o;
    const label = d.domain ?? d.name;
    const previous = this.#cache.get(d.name);
    const started = this.#clock.now();
    if (d.domain && !previous) await updateDomainTls(store, d.domain, { tls_status: 'pending_issue' });
    try {
      if (!this.#budget.take(started)) {
        throw new TunnError('UNAVAILABLE', `the relay's ACME order budget is spent (rate limit); next order possible at ${nowIso(this.#budget.nextFreeAt(started))}`);
      }
      logger?.info({ names: d.names, reason }, `requesting a certificate for ${d.names.join(', ')}`);
      const issued = await issuer.issue(d.names);
      const now = this.#clock.now();
      const cert = await this.storage.save(d.name, issued, now);
      const hint = await issuer.renewalHint?.(cert.chainPem);
      if (issuer.renewalHint) {
        await this.storage.setRenewalWindow(cert.id, hint, now);
        cert.renewalWindow = hint && { start: hint.start, end: hint.end };
        cert.ariCheckedAt = now;
      }
      const entry = { cert, ctx: secureContextFor(cert) };
      this.#cache.set(d.name, entry);
      this.#retry.delete(d.name);
      this.#refusalLoggedAt.delete(d.name);
      this.#managed.wake();
      if (d.domain) {
        await updateDomainTls(store, d.domain, {
          tls_status: 'issued',
          certificate_ref: cert.id,
          tls_not_after: nowIso(cert.notAfter),
          tls_last_error: null,
          cert_failure_count: 0,
          cert_next_retry_at: null,
        });
      }
      const kind: CertEventKind = previous ? 'renewed' : 'issued';
      await recordCertEvent(store, { domain: label, kind, message: `certificate for ${d.names.join(', ')} ${kind} by ${cert.issuer}, valid until ${nowIso(cert.notAfter)}`, detail: { certificate_ref: cert.id, not_after: nowIso(cert.notAfter), reason } }, now);
      return entry;
    } catch (err) {
      await this.#recordFailure(d, err).catch((e) => logger?.error({ err: errorMessage(e) }, 'recording a certificate failure failed'));
      throw err;
    }
  }

  async #recordFailure(d: CertDecision, err: unknown): Promise<void> {
    const { store, logger } = this.#o;
    const now = this.#clock.now();
    const label = d.domain ?? d.name;
    const message = errorMessage(err);
    const prev = await this.#retryState(d);
    const failures = prev.failures + 1;
    const nextAt = prev.policy === 'manual' ? null : now + retryDelay(failures, this.#o.retrySchedule ?? RETRY_SCHEDULE_MS);
    this.#retry.set(d.name, { failures, nextAt, policy: prev.policy, lastError: message });
    if (d.domain) {
      await updateDomainTls(store, d.domain, { tls_status: 'tls_error', tls_last_error: message, cert_failure_count: failures, cert_next_retry_at: nextAt === null ? null : nowIso(nextAt) });
    }
    const serving = this.#cache.get(d.name);
    logger?.warn({ names: d.names, failures, nextRetryAt: nextAt && nowIso(nextAt) }, `certificate for ${d.names.join(', ')} failed: ${message}`);
    await recordCertEvent(store, { domain: label, kind: 'failed', message, detail: { failures, still_serving: serving?.cert.id ?? null } }, now);
    await recordCertEvent(
      store,
      { domain: label, kind: 'retry_scheduled', message: nextAt === null ? 'automatic retries are off for this domain (manual policy); run `tunn domain verify` to retry' : `next attempt at ${nowIso(nextAt)}`, detail: { next_retry_at: nextAt && nowIso(nextAt) } },
      now,
    );
    await this.#alert({ kind: 'issue_failed', domain: label, message: `certificate for ${d.names.join(', ')} failed (attempt ${failures}): ${message}`, notAfter: serving && nowIso(serving.cert.notAfter), at: nowIso(now) });
  }

  async #alert(a: CertAlert): Promise<void> {
    try {
      await this.#o.onAlert?.(a);
    } catch (err) {
      this.#o.logger?.warn({ err: errorMessage(err) }, 'certificate alert hook failed');
    }
  }

  async #maintainOnce(): Promise<void> {
    const { store, issuer } = this.#o;
    for (const c of await this.storage.list()) {
      const d = await this.#decisionForStored(c.name, c.names);
      if (!d) continue;
      let now = this.#clock.now();
      if (issuer.renewalHint && (c.ariCheckedAt === undefined || now - c.ariCheckedAt >= (this.#o.ariRefreshMs ?? 6 * 3600_000))) {
        const full = await this.storage.load(c.name);
        if (full) {
          const hint = await issuer.renewalHint(full.chainPem);
          await this.storage.setRenewalWindow(c.id, hint, now);
          c.renewalWindow = hint && { start: hint.start, end: hint.end };
          const cached = this.#cache.get(c.name);
          if (cached?.cert.id === c.id) cached.cert.renewalWindow = c.renewalWindow;
        }
      }
      // Judge by the certificate served now: a handshake may have renewed it since list() ran.
      const live = this.#cache.get(c.name)?.cert;
      if (now >= this.renewAt(live && live.id !== c.id ? live : c)) await this.#renewQuietly(d, 'renewal');
      const cur = (await this.#current(c.name))?.cert;
      if (!cur) continue;
      now = this.#clock.now();
      const left = cur.notAfter - now;
      if (left <= 0) {
        await this.#alertOnce(`expired:${cur.id}`, { kind: 'expired', domain: d.domain ?? d.name, message: `the certificate for ${cur.names.join(', ')} expired at ${nowIso(cur.notAfter)}`, notAfter: nowIso(cur.notAfter), at: nowIso(now) });
      } else if (left < (this.#o.expiryAlertMs ?? 14 * 86_400_000)) {
        if (d.domain) {
          const row = await domainByName(store, d.domain);
          if (row?.tlsStatus === 'issued') await updateDomainTls(store, d.domain, { tls_status: 'expiring' });
        }
        if (await this.#alertOnce(`expiring:${cur.id}`, { kind: 'expiring', domain: d.domain ?? d.name, message: `the certificate for ${cur.names.join(', ')} expires at ${nowIso(cur.notAfter)} and has not been renewed`, notAfter: nowIso(cur.notAfter), at: nowIso(now) })) {
          await recordCertEvent(store, { domain: d.domain ?? d.name, kind: 'expiring', message: `expires at ${nowIso(cur.notAfter)}`, detail: { certificate_ref: cur.id } }, now);
        }
      }
    }
    // Managed names still without a certificate (a CA down at start): retry when their time has come.
    for (const d of await this.#managed.missing()) await this.#renewQuietly(d, 'retry');
    // Verified custom domains still without a certificate: retry when their time has come.
    for (const row of await listDomains(store)) {
      if (!row.verifiedAt || row.tlsMode !== 'terminate' || row.certificateRef) continue;
      if (row.tlsStatus !== 'tls_error' && row.tlsStatus !== 'pending_issue') continue;
      await this.#renewQuietly(customDomainDecision(row.domain), 'retry');
    }
  }

  async #alertOnce(key: string, a: CertAlert): Promise<boolean> {
    if (this.#alerted.has(key)) return false;
    this.#alerted.add(key);
    await this.#alert(a);
    return true;
  }

  /** What to renew a stored certificate as; undefined when its custom domain is gone or unverified. */
  async #decisionForStored(name: string, names: string[]): Promise<CertDecision | undefined> {
    if (name.startsWith('*.')) {
      const row = await domainByName(this.#o.store, name.slice(2));
      if (row) return row.verifiedAt && row.tlsMode === 'terminate' ? { name, names, domain: row.domain } : undefined;
    }
    return { name, names };
  }
}
