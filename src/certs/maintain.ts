import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { CertAlert } from './alerts.ts';
import type { CertDecision } from './decision.ts';
import { firstAnswer, type CertLifecycle } from './hooks.ts';
import type { Issuer } from './issuer.ts';
import type { ManagedNames } from './managed.ts';
import { summaryOf, type Obtainer } from './obtain.ts';
import type { CertStorage } from './storage.ts';

// Maintenance (certmagic's maintain.go): a pass over every stored certificate renews those
// that are due, refreshes ARI windows, alerts on certificates close to expiry, and retries
// names still waiting for a first certificate once their back-off allows. Passes run on a
// timer and on demand; they never overlap.

export interface MaintainDeps {
  storage: CertStorage;
  issuer: Issuer;
  obtainer: Obtainer;
  managed: ManagedNames;
  lifecycle: readonly CertLifecycle[];
  clock: Clock;
  logger?: Logger;
  /** Alert (and report `expiring`) when a served certificate has less than this left (default 14 days). */
  expiryAlertMs?: number;
  /** How often to ask the CA for renewal information per certificate (default 6 hours). */
  ariRefreshMs?: number;
  /** How often start() runs a pass (default 10 minutes). */
  intervalMs?: number;
}

export const DEFAULT_EXPIRY_ALERT_MS = 14 * 86_400_000;

export class Maintainer {
  readonly #d: MaintainDeps;
  readonly #alerted = new Set<string>();
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;
  #next?: Promise<void>;

  constructor(deps: MaintainDeps) {
    this.#d = deps;
  }

  /**
   * One pass. A call during a pass gets a fresh pass after it (what is due may have changed
   * since the running pass looked); calls while that one waits share it.
   */
  maintain(): Promise<void> {
    if (this.#running) {
      this.#next ??= this.#running
        .catch(() => {})
        .then(() => {
          this.#next = undefined;
          return this.maintain();
        });
      return this.#next;
    }
    this.#running = this.#once().finally(() => (this.#running = undefined));
    return this.#running;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.maintain().catch((err) => this.#d.logger?.error({ err: errorMessage(err) }, 'certificate maintenance failed')), this.#d.intervalMs ?? 600_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #once(): Promise<void> {
    const { storage, issuer, obtainer, clock } = this.#d;
    for (const c of await storage.list()) {
      const d = await this.#decisionForStored(c.name, c.names);
      if (!d) continue;
      let now = clock.now();
      if (issuer.renewalHint && (c.ariCheckedAt === undefined || now - c.ariCheckedAt >= (this.#d.ariRefreshMs ?? 6 * 3600_000))) {
        const full = await storage.load(c.name);
        if (full) {
          const hint = await issuer.renewalHint(full.chainPem);
          await storage.setRenewalWindow(c.name, c.id, hint, now);
          c.renewalWindow = hint && { start: hint.start, end: hint.end };
          const cached = obtainer.cached(c.name);
          if (cached?.cert.id === c.id) cached.cert.renewalWindow = c.renewalWindow;
        }
      }
      // Judge by the certificate served now: a handshake may have renewed it since list() ran.
      const live = obtainer.cached(c.name)?.cert;
      if (now >= obtainer.renewAt(live && live.id !== c.id ? live : c)) await obtainer.renewQuietly(d, 'renewal');
      const cur = (await obtainer.current(c.name))?.cert;
      if (!cur) continue;
      now = clock.now();
      const left = cur.notAfter - now;
      const label = d.domain ?? d.name;
      if (left <= 0) {
        await this.#alertOnce(`expired:${cur.id}`, { kind: 'expired', domain: label, message: `the certificate for ${cur.names.join(', ')} expired at ${nowIso(cur.notAfter)}`, notAfter: nowIso(cur.notAfter), at: nowIso(now) });
      } else if (left < (this.#d.expiryAlertMs ?? DEFAULT_EXPIRY_ALERT_MS)) {
        const firstNotice = await this.#alertOnce(`expiring:${cur.id}`, {
          kind: 'expiring',
          domain: label,
          message: `the certificate for ${cur.names.join(', ')} expires at ${nowIso(cur.notAfter)} and has not been renewed`,
          notAfter: nowIso(cur.notAfter),
          at: nowIso(now),
        });
        await obtainer.emit({ kind: 'expiring', decision: d, cert: summaryOf(cur), firstNotice, at: now });
      }
    }
    // Managed names still without a certificate (a CA down at start): retry when their time has come.
    for (const d of await this.#d.managed.missing()) await obtainer.renewQuietly(d, 'retry');
    // Subjects still waiting for a first certificate (verified custom domains): likewise.
    for (const p of this.#d.lifecycle) for (const d of (await p.waiting?.()) ?? []) await obtainer.renewQuietly(d, 'retry');
  }

  async #alertOnce(key: string, a: CertAlert): Promise<boolean> {
    if (this.#alerted.has(key)) return false;
    this.#alerted.add(key);
    await this.#d.obtainer.alert(a);
    return true;
  }

  /** What to renew a stored certificate as; undefined when its subject is gone or no longer wants it. */
  async #decisionForStored(name: string, names: string[]): Promise<CertDecision | undefined> {
    const r = await firstAnswer(this.#d.lifecycle, (p) => p.forStored?.(name, names));
    if (r === null) return undefined;
    return r ?? { name, names };
  }
}
