import { createHash } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type { Clock } from '../lib/clock.ts';
import { TunnError, errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { AlertHook, CertAlert } from './alerts.ts';
import type { CertDecision } from './decision.ts';
import { firstAnswer, type CertLifecycle, type CertStateChange, type ObtainReason, type RetryState } from './hooks.ts';
import type { Issuer } from './issuer.ts';
import { OrderBudget, retryDelay, RETRY_SCHEDULE_MS } from './retry.ts';
import { secureContextFor, type CertificateSummary, type CertStorage, type Locker, type StoredCertificate } from './storage.ts';

// Obtaining certificates (certmagic's obtain path): one order per certificate at a time in
// this process (shared by every caller) and across processes sharing the storage (the
// Locker); the result saved to storage and served from memory; failures counted with a
// back-off (retry.ts) and reported. The certificates served now live here too (the cache).

export interface ObtainDeps {
  storage: CertStorage;
  locker: Locker;
  issuer: Issuer;
  clock: Clock;
  logger?: Logger;
  lifecycle: readonly CertLifecycle[];
  onAlert?: AlertHook;
  /** Fraction of the lifetime after which to renew (default 2/3). */
  renewFraction?: number;
  retrySchedule?: readonly number[];
  orderBudget?: OrderBudget;
  /** Called after a certificate for the key name was obtained (waiting loops look again). */
  onObtained?: (name: string) => void;
}

export interface Entry {
  cert: StoredCertificate;
  ctx: SecureContext;
}

export class Obtainer {
  readonly #d: ObtainDeps;
  readonly #budget: OrderBudget;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();
  /** Retry state of names whose subject keeps none (the relay's own names). */
  readonly #retry = new Map<string, RetryState>();
  /** Aborted by stop(): orders still waiting for their lock give up (a stopping relay must not wait on another's order). */
  #stopping = new AbortController();

  constructor(deps: ObtainDeps) {
    this.#d = deps;
    this.#budget = deps.orderBudget ?? new OrderBudget();
  }

  /** The certificate served under `name` now (memory, else storage), valid or not. */
  async current(name: string): Promise<Entry | undefined> {
    const cached = this.#cache.get(name);
    if (cached) return cached;
    const cert = await this.#d.storage.load(name);
    if (!cert) return undefined;
    const entry = { cert, ctx: secureContextFor(cert) };
    this.#cache.set(name, entry);
    return entry;
  }

  /** The certificate in memory only (no storage read). */
  cached(name: string): Entry | undefined {
    return this.#cache.get(name);
  }

  /** When the certificate is due for renewal: inside the CA's ARI window, else at renewFraction of its lifetime. */
  renewAt(cert: Pick<StoredCertificate, 'id' | 'notBefore' | 'notAfter' | 'renewalWindow'>): number {
    const w = cert.renewalWindow;
    if (w) {
      // A stable point in the window per certificate, so a fleet does not renew all at once (RFC 9773 4.2).
      const frac = createHash('sha256').update(cert.id).digest().readUInt32BE(0) / 2 ** 32;
      return Math.floor(w.start + (w.end - w.start) * frac);
    }
    return cert.notBefore + Math.floor((cert.notAfter - cert.notBefore) * (this.#d.renewFraction ?? 2 / 3));
  }

  /** The subject's persisted back-off when it keeps one, else this process's. */
  async retryState(d: CertDecision): Promise<RetryState> {
    return (await firstAnswer(this.#d.lifecycle, (p) => p.retryState?.(d))) ?? this.#retry.get(d.name) ?? { failures: 0, nextAt: null, policy: 'backoff', lastError: null };
  }

  /** This process's retry state of a name (for `tunn cert list`). */
  memoryRetry(name: string): RetryState | undefined {
    return this.#retry.get(name);
  }

  clearRetry(name: string): void {
    this.#retry.delete(name);
  }

  /** The first back-off step: how long a name waits when its failure could not be recorded. */
  firstRetryDelay(): number {
    return retryDelay(1, this.#d.retrySchedule ?? RETRY_SCHEDULE_MS);
  }

  /** False while a failed name waits for its retry time (or for a person, under the manual policy). */
  async mayOrder(d: CertDecision, now: number): Promise<boolean> {
    if (this.#inflight.has(d.name)) return true;
    const s = await this.retryState(d);
    if (s.failures === 0) return true;
    if (s.policy === 'manual') return false;
    return s.nextAt === null || s.nextAt <= now;
  }

  /** Orders for `d` unless one is in flight (then joins it); failures are recorded and rethrown. */
  obtainShared(d: CertDecision, reason: ObtainReason): Promise<Entry> {
    let p = this.#inflight.get(d.name);
    if (!p) {
      p = this.#obtain(d, reason).finally(() => this.#inflight.delete(d.name));
      this.#inflight.set(d.name, p);
    }
    return p;
  }

  /** Renews or retries in the background when allowed; the outcome is recorded, not thrown. */
  async renewQuietly(d: CertDecision, reason: 'renewal' | 'retry'): Promise<void> {
    if (this.#inflight.has(d.name) || !(await this.mayOrder(d, this.#d.clock.now()))) return;
    await this.obtainShared(d, reason).catch(() => {});
  }

  /** Drops a certificate from memory and storage (a deleted domain). */
  async forget(name: string): Promise<void> {
    this.#cache.delete(name);
    await this.#d.storage.delete(name);
  }

  /** Orders waiting for a lock give up, unrecorded; orders already running finish. */
  stop(): void {
    this.#stopping.abort(new Error('the certificate manager stopped'));
  }

  start(): void {
    if (this.#stopping.signal.aborted) this.#stopping = new AbortController();
  }

  /** Tells every lifecycle party, in order; a party that fails is logged, never fatal. */
  async emit(change: CertStateChange): Promise<void> {
    for (const p of this.#d.lifecycle) {
      try {
        await p.onStateChange?.(change);
      } catch (err) {
        this.#d.logger?.error({ err: errorMessage(err), change: change.kind }, `recording the certificate change "${change.kind}" failed: ${errorMessage(err)}`);
      }
    }
  }

  async alert(a: CertAlert): Promise<void> {
    try {
      await this.#d.onAlert?.(a);
    } catch (err) {
      this.#d.logger?.warn({ err: errorMessage(err) }, 'certificate alert hook failed');
    }
  }

  async #obtain(d: CertDecision, reason: ObtainReason): Promise<Entry> {
    const { storage, issuer, logger, clock } = this.#d;
    const previous = this.#cache.get(d.name);
    if (!previous) await this.emit({ kind: 'obtaining', decision: d, reason, at: clock.now() });
    const stopping = this.#stopping.signal;
    try {
      const unlock = await this.#d.locker.lock(`certificate:${d.name}`, { signal: stopping });
      try {
        // Another process sharing the storage may have obtained it while this one waited.
        const theirs = await this.#fromElsewhere(d, previous);
        if (theirs) return theirs;
        const started = clock.now();
        if (!this.#budget.take(started)) {
          throw new TunnError('UNAVAILABLE', `the relay's ACME order budget is spent (rate limit); next order possible at ${nowIso(this.#budget.nextFreeAt(started))}`);
        }
        logger?.info({ names: d.names, reason }, `requesting a certificate for ${d.names.join(', ')}`);
        // ARI: a renewal of a certificate the CA gave a window for names it in the order (`replaces`).
        const prev = previous?.cert;
        const replaces = prev?.renewalWindow && prev.issuer === issuer.id ? await ariIdOf(prev.chainPem) : undefined;
        const issued = await (replaces ? issuer.issue(d.names, { replaces }) : issuer.issue(d.names));
        const now = clock.now();
        const cert = await storage.save(d.name, issued, now);
        if (issuer.renewalHint) {
          const hint = await issuer.renewalHint(cert.chainPem);
          await storage.setRenewalWindow(cert.name, cert.id, hint, now);
          cert.renewalWindow = hint && { start: hint.start, end: hint.end };
          cert.ariCheckedAt = now;
        }
        const entry = this.#serve(cert);
        await this.emit({ kind: 'issued', decision: d, reason, renewed: previous !== undefined, cert: summaryOf(cert), at: now });
        return entry;
      } finally {
        await unlock();
      }
    } catch (err) {
      if (stopping.aborted) throw err; // given up by stop(): not the CA's failure
      await this.#recordFailure(d, err).catch((e) => logger?.error({ err: errorMessage(e) }, 'recording a certificate failure failed'));
      throw err;
    }
  }

  /** A valid, not yet due certificate that someone else saved since `previous` was served. */
  async #fromElsewhere(d: CertDecision, previous: Entry | undefined): Promise<Entry | undefined> {
    const stored = await this.#d.storage.load(d.name);
    const now = this.#d.clock.now();
    if (!stored || stored.id === previous?.cert.id || stored.notAfter <= now || now >= this.renewAt(stored)) return undefined;
    this.#d.logger?.info({ names: d.names, certificate: stored.id }, `using the certificate for ${d.names.join(', ')} obtained meanwhile by another process sharing the storage`);
    return this.#serve(stored);
  }

  #serve(cert: StoredCertificate): Entry {
    const entry = { cert, ctx: secureContextFor(cert) };
    this.#cache.set(cert.name, entry);
    this.#retry.delete(cert.name);
    this.#d.onObtained?.(cert.name);
    return entry;
  }

  async #recordFailure(d: CertDecision, err: unknown): Promise<void> {
    const { logger, clock } = this.#d;
    const now = clock.now();
    const message = errorMessage(err);
    const prev = await this.retryState(d);
    const failures = prev.failures + 1;
    const nextAt = prev.policy === 'manual' ? null : now + retryDelay(failures, this.#d.retrySchedule ?? RETRY_SCHEDULE_MS);
    this.#retry.set(d.name, { failures, nextAt, policy: prev.policy, lastError: message });
    const serving = this.#cache.get(d.name);
    await this.emit({ kind: 'failed', decision: d, error: message, failures, nextRetryAt: nextAt, stillServing: serving && summaryOf(serving.cert), at: now });
    logger?.warn({ names: d.names, failures, nextRetryAt: nextAt && nowIso(nextAt) }, `certificate for ${d.names.join(', ')} failed: ${message}`);
    await this.alert({ kind: 'issue_failed', domain: d.domain ?? d.name, message: `certificate for ${d.names.join(', ')} failed (attempt ${failures}): ${message}`, notAfter: serving && nowIso(serving.cert.notAfter), at: nowIso(now) });
  }
}

export function summaryOf(c: StoredCertificate | CertificateSummary): CertificateSummary {
  return { id: c.id, name: c.name, names: c.names, issuer: c.issuer, notBefore: c.notBefore, notAfter: c.notAfter, renewalWindow: c.renewalWindow, ariCheckedAt: c.ariCheckedAt };
}

/**
 * The RFC 9773 id of a stored certificate's leaf, or undefined when it has none (no AKI, unreadable).
 * ari.ts is imported here, when a renewal with a CA's window happens, not at load: it brings
 * acme-client and an X.509 library, which a relay without ACME (--dev, static files) never loads.
 */
async function ariIdOf(chainPem: string): Promise<string | undefined> {
  try {
    const { ariCertId } = await import('../acme/ari.ts');
    return ariCertId(chainPem);
  } catch {
    return undefined;
  }
}
