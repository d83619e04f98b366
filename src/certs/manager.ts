import type { SecureContext } from 'node:tls';
import { systemClock, type Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { AlertHook } from './alerts.ts';
import type { CertDecision, DecisionFunc } from './decision.ts';
import { Handshake } from './handshake.ts';
import { firstAnswer, type CertLifecycle, type CertStatus } from './hooks.ts';
import type { Issuer } from './issuer.ts';
import { DEFAULT_EXPIRY_ALERT_MS, Maintainer } from './maintain.ts';
import { ManagedNames, type ManagedCertificate } from './managed.ts';
import { MemoryLocker } from './memory-locker.ts';
import { Obtainer } from './obtain.ts';
import type { OrderBudget } from './retry.ts';
import type { CertStorage, Locker, StoredCertificate } from './storage.ts';

// The certificate manager, as certmagic splits it: handshake.ts serves certificates to the TLS
// edge by SNI (issuing on demand when the decision function approves a name), obtain.ts issues
// under a lock and saves to storage, maintain.ts renews in the background (2/3 of the lifetime,
// or inside the CA's ARI window) and alerts. Names the server itself must have (the relay's
// own) are managed (managed.ts): obtained in the background and retried until they come.
// The manager writes nothing but certificates: every lifecycle change goes to the lifecycle
// parties (hooks.ts), which keep custom domains' rows and the event log.

export interface CertManagerOptions {
  storage: CertStorage;
  /** Serialises orders across processes sharing the storage (default: within this process). */
  locker?: Locker;
  issuer: Issuer;
  decide: DecisionFunc;
  /** Told of every change, asked about subjects, in order (custom domains, the event log). */
  lifecycle?: CertLifecycle[];
  clock?: Clock;
  logger?: Logger;
  /** Fraction of the lifetime after which to renew (default 2/3). */
  renewFraction?: number;
  /** Alert (and report `expiring`) when a served certificate has less than this left (default 14 days). */
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
  status: CertStatus;
  notBefore: string;
  notAfter: string;
  renewAt: string;
  lastError: string | null;
  nextRetryAt: string | null;
  certificateRef: string;
}

export class CertManager {
  readonly storage: CertStorage;
  readonly #o: CertManagerOptions;
  readonly #clock: Clock;
  readonly #lifecycle: readonly CertLifecycle[];
  readonly #obtainer: Obtainer;
  readonly #handshake: Handshake;
  readonly #maintainer: Maintainer;
  readonly #managed: ManagedNames;

  constructor(opts: CertManagerOptions) {
    this.#o = opts;
    this.storage = opts.storage;
    this.#clock = opts.clock ?? systemClock;
    this.#lifecycle = opts.lifecycle ?? [];
    const clock = this.#clock;
    this.#obtainer = new Obtainer({
      storage: opts.storage,
      locker: opts.locker ?? new MemoryLocker(),
      issuer: opts.issuer,
      clock,
      logger: opts.logger,
      lifecycle: this.#lifecycle,
      onAlert: opts.onAlert,
      renewFraction: opts.renewFraction,
      retrySchedule: opts.retrySchedule,
      orderBudget: opts.orderBudget,
      onObtained: (name) => {
        this.#handshake.obtained(name);
        this.#managed.wake();
      },
    });
    const obtainer = this.#obtainer;
    this.#handshake = new Handshake({ decide: opts.decide, obtainer, clock, logger: opts.logger });
    this.#managed = new ManagedNames({
      valid: async (name) => {
        const e = await obtainer.current(name);
        return e && e.cert.notAfter > clock.now() ? e.cert : undefined;
      },
      tryObtain: async (d) => ((await obtainer.mayOrder(d, clock.now())) ? this.obtain(d) : undefined),
      waitMs: async (d) => {
        const s = await obtainer.retryState(d);
        // No failure on record (recording it failed): the schedule's first step, never a spin.
        if (s.failures === 0) return obtainer.firstRetryDelay();
        return s.nextAt === null ? undefined : s.nextAt - clock.now();
      },
    });
    this.#maintainer = new Maintainer({
      storage: opts.storage,
      issuer: opts.issuer,
      obtainer,
      managed: this.#managed,
      lifecycle: this.#lifecycle,
      clock,
      logger: opts.logger,
      expiryAlertMs: opts.expiryAlertMs,
      ariRefreshMs: opts.ariRefreshMs,
      intervalMs: opts.maintainIntervalMs,
    });
  }

  /** For the relay's SNICallback (handshake.ts): the context to serve `servername` with, or undefined to fail the handshake. */
  getSecureContext(servername: string): Promise<SecureContext | undefined> {
    return this.#handshake.secureContext(servername);
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
    return (await this.#obtainer.obtainShared(d, (await this.#obtainer.current(d.name)) ? 'renewal' : 'on-demand')).cert;
  }

  /** When the certificate is due for renewal: inside the CA's ARI window, else at renewFraction of its lifetime. */
  renewAt(cert: Pick<StoredCertificate, 'id' | 'notBefore' | 'notAfter' | 'renewalWindow'>): number {
    return this.#obtainer.renewAt(cert);
  }

  /** One maintenance pass (maintain.ts). */
  maintain(): Promise<void> {
    return this.#maintainer.maintain();
  }

  start(): void {
    this.#obtainer.start();
    this.#managed.start();
    this.#maintainer.start();
  }

  /** Stops renewal and the managed names' loops; orders waiting for a lock give up (orders already placed finish). */
  stop(): void {
    this.#maintainer.stop();
    this.#managed.stop();
    this.#obtainer.stop();
  }

  /** Clears a subject's back-off so the next handshake or maintain() tries at once (`tunn domain verify`, cert retry). */
  async retryNow(domainOrName: string): Promise<void> {
    this.#obtainer.clearRetry(domainOrName);
    await this.#obtainer.emit({ kind: 'retry_reset', subject: domainOrName, at: this.#clock.now() });
    this.#managed.wake();
  }

  /** Drops a certificate from memory and storage (a deleted domain). */
  forget(name: string): Promise<void> {
    return this.#obtainer.forget(name);
  }

  /** Every stored certificate with its lifecycle state, for `tunn cert list`. */
  async list(): Promise<CertListEntry[]> {
    const out: CertListEntry[] = [];
    for (const c of await this.storage.list()) {
      const view = await firstAnswer(this.#lifecycle, (p) => p.describe?.(c.name));
      const mem = this.#obtainer.memoryRetry(c.name);
      const expiring = this.#clock.now() >= c.notAfter - (this.#o.expiryAlertMs ?? DEFAULT_EXPIRY_ALERT_MS);
      out.push({
        name: c.name,
        names: c.names,
        domain: view?.subject,
        issuer: c.issuer,
        status: view?.status ?? (mem?.failures ? 'tls_error' : expiring ? 'expiring' : 'issued'),
        notBefore: nowIso(c.notBefore),
        notAfter: nowIso(c.notAfter),
        renewAt: nowIso(this.renewAt(c)),
        lastError: view?.lastError ?? mem?.lastError ?? null,
        nextRetryAt: view?.nextRetryAt ?? (mem?.nextAt ? nowIso(mem.nextAt) : null),
        certificateRef: c.id,
      });
    }
    return out;
  }
}
