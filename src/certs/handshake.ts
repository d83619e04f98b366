import type { SecureContext } from 'node:tls';
import type { Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { CertDecision, DecisionFunc } from './decision.ts';
import type { Obtainer } from './obtain.ts';

// The TLS handshake's side (certmagic's handshake.go): SNI → the certificate to serve, issuing
// on demand only when the decision function approves the name. A failure never takes a
// working certificate away: the last good one is served until it expires.

/** Handshakes refused for want of a certificate are logged at most this often per name. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

export interface HandshakeDeps {
  decide: DecisionFunc;
  obtainer: Obtainer;
  clock: Clock;
  logger?: Logger;
}

export class Handshake {
  readonly #d: HandshakeDeps;
  readonly #refusalLoggedAt = new Map<string, number>();

  constructor(deps: HandshakeDeps) {
    this.#d = deps;
  }

  /**
   * The context to serve `servername` with, or undefined to fail the handshake. Names the
   * decision function refuses never reach storage or the CA. May wait for an issuance
   * (on-demand); concurrent calls for one certificate share one order.
   */
  async secureContext(servername: string): Promise<SecureContext | undefined> {
    const { obtainer, clock, logger } = this.#d;
    let d: CertDecision | undefined;
    try {
      d = await this.#d.decide(servername);
    } catch (err) {
      logger?.warn({ servername, err: errorMessage(err) }, 'certificate decision failed; refusing the handshake');
      return undefined;
    }
    if (!d) return undefined;
    const now = clock.now();
    const entry = await obtainer.current(d.name);
    if (entry && entry.cert.notAfter > now) {
      if (now >= obtainer.renewAt(entry.cert)) void obtainer.renewQuietly(d, 'renewal');
      return entry.ctx;
    }
    if (!(await obtainer.mayOrder(d, now))) {
      void this.#logRefusal(d, servername);
      return undefined;
    }
    try {
      return (await obtainer.obtainShared(d, entry ? 'renewal' : 'on-demand')).ctx;
    } catch {
      void this.#logRefusal(d, servername); // also recorded as a failure with a scheduled retry
      return undefined;
    }
  }

  /** A certificate for `name` arrived: the next refusal (if any) is news again. */
  obtained(name: string): void {
    this.#refusalLoggedAt.delete(name);
  }

  /** Says (at most once a minute per certificate) why a handshake for `servername` gets no certificate. */
  async #logRefusal(d: CertDecision, servername: string): Promise<void> {
    const now = this.#d.clock.now();
    const last = this.#refusalLoggedAt.get(d.name);
    if (last !== undefined && now - last >= 0 && now - last < REFUSAL_LOG_INTERVAL_MS) return;
    this.#refusalLoggedAt.set(d.name, now);
    const s = await this.#d.obtainer.retryState(d).catch(() => undefined);
    const next = s?.nextAt ? `next attempt at ${nowIso(s.nextAt)}` : s?.policy === 'manual' ? 'automatic retries are off (manual policy): run `tunn domain verify`' : 'next attempt on the next handshake';
    this.#d.logger?.warn(
      { servername, certificate: d.name, failures: s?.failures ?? 0, lastError: s?.lastError ?? null, nextRetryAt: s?.nextAt ? nowIso(s.nextAt) : null },
      `refusing TLS for ${servername}: no certificate for it yet (${s?.lastError ? `last attempt failed: ${s.lastError}` : 'not issued yet'}; ${next})`,
    );
  }
}
