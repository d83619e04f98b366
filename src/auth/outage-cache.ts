import { createHash } from 'node:crypto';
import type { Clock } from '../lib/clock.ts';

// While the relay's database is away (PostgreSQL restarting or unreachable), the gate cannot
// look up sessions, tokens, revocations or groups. For a short window it answers each
// credential as it last did when the database answered (an allow, or a refusal such as a
// revoked token: a revocation seen before the outage still applies) if that answer is at most
// the window (30 s) old; after that, or for a credential never seen, it fails closed (503). So
// no answer older than 30 s is ever reused (an expired session, a group edit made a minute
// before the outage), and no one is let in later than 30 s into an outage. Decisions are kept
// only per credential, host and tunnel, never widened: a cached answer is the exact answer the
// database gave.

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
  /** Insertion order is answer order (an answer moves its key to the end): the oldest come first. */
  readonly #last = new Map<string, { d: D; at: number }>();
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
    const now = this.#clock.now();
    this.#outageSince = undefined;
    this.#last.delete(key);
    this.#last.set(key, { d: decision, at: now });
    // Answers past the window can never be reused: drop them (and the oldest beyond the cap).
    for (const [k, e] of this.#last) {
      if (now - e.at <= this.#windowMs && this.#last.size <= MAX_ENTRIES) break;
      this.#last.delete(k);
    }
  }

  /** The database did not answer: the last answer for `key` if at most the window old, else undefined (fail closed). */
  unavailable(key: string | undefined): D | undefined {
    const now = this.#clock.now();
    this.#outageSince ??= now;
    const e = key === undefined ? undefined : this.#last.get(key);
    return e && now - e.at <= this.#windowMs ? e.d : undefined;
  }

  /** Drops every cached answer for which `pred` holds (a revocation seen here). */
  forget(pred: (decision: D) => boolean): void {
    for (const [k, e] of this.#last) if (pred(e.d)) this.#last.delete(k);
  }

  /** Every answer kept with when the database gave it (newest last). */
  entries(): { decision: D; at: number }[] {
    return [...this.#last.values()].map((e) => ({ decision: e.d, at: e.at }));
  }

  /** Every answer kept (newest last). */
  values(): D[] {
    return [...this.#last.values()].map((e) => e.d);
  }

  /** Milliseconds into the current outage (undefined when the database answers). */
  outageMs(): number | undefined {
    return this.#outageSince === undefined ? undefined : this.#clock.now() - this.#outageSince;
  }
}
