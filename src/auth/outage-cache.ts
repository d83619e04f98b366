import { createHash } from 'node:crypto';
import type { Clock } from '../lib/clock.ts';

// While the relay's database is away (PostgreSQL restarting or unreachable), the gate cannot
// look up sessions, tokens, revocations or groups. For a short window it answers each
// credential as it last did when the database answered (an allow, or a refusal such as a
// revoked token: a revocation seen before the outage still applies); after the window, or for
// a credential never seen, it fails closed (503). Decisions are kept only per credential and
// host, never widened: a cached answer is the exact answer the database gave.

/** Default window: identity decisions from cache for at most 30 s of a database outage. */
export const IDENTITY_OUTAGE_WINDOW_MS = 30_000;
/** Entries kept at most (oldest dropped first); a decision for a credential not kept is a 503 during an outage. */
const MAX_ENTRIES = 10_000;

export interface OutageCacheOptions {
  clock: Clock;
  /** How long into an outage cached decisions are used; default IDENTITY_OUTAGE_WINDOW_MS. */
  windowMs?: number;
}

export class IdentityOutageCache<D> {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #last = new Map<string, D>();
  /** When the current outage began (the first failure after a success), or undefined when the database answers. */
  #outageSince: number | undefined;

  constructor(o: OutageCacheOptions) {
    this.#clock = o.clock;
    this.#windowMs = o.windowMs ?? IDENTITY_OUTAGE_WINDOW_MS;
  }

  /** The cache key for a credential (session cookie or bearer token, hashed) on a host and tunnel. */
  static key(credential: string, host: string, tunnelId: string): string {
    return createHash('sha256').update(`${credential}\0${host}\0${tunnelId}`).digest('base64url');
  }

  /** The database answered: keep `decision` as this credential's last answer, and end any outage. */
  answered(key: string, decision: D): void {
    this.#outageSince = undefined;
    this.#last.delete(key);
    this.#last.set(key, decision);
    if (this.#last.size > MAX_ENTRIES) this.#last.delete(this.#last.keys().next().value as string);
  }

  /** The database did not answer: the last answer for `key` while within the window, else undefined (fail closed). */
  unavailable(key: string | undefined): D | undefined {
    const now = this.#clock.now();
    this.#outageSince ??= now;
    if (key === undefined || now - this.#outageSince > this.#windowMs) return undefined;
    return this.#last.get(key);
  }

  /** Drops every cached answer for which `pred` holds (a revocation seen here). */
  forget(pred: (decision: D) => boolean): void {
    for (const [k, d] of this.#last) if (pred(d)) this.#last.delete(k);
  }

  /** Every answer kept (newest last). */
  values(): D[] {
    return [...this.#last.values()];
  }

  /** Milliseconds into the current outage (undefined when the database answers). */
  outageMs(): number | undefined {
    return this.#outageSince === undefined ? undefined : this.#clock.now() - this.#outageSince;
  }
}
