// Back-off after a failed issuance, within the CA's rate limits (seed 002, Let's Encrypt):
// "failed validations per hostname per hour: 5". The schedule below makes at most 4 attempts
// in the first hour (t = 0, 1, 6, 21 min), then hourly, then every 6 hours, so one broken
// domain never exhausts the hostname limit nor noticeably eats into the account's 300 new
// orders per 3 hours.

export const RETRY_SCHEDULE_MS = [60_000, 5 * 60_000, 15 * 60_000, 60 * 60_000, 3 * 3600_000, 6 * 3600_000] as const;

export type CertFailurePolicy = 'backoff' | 'manual';

/** Delay before the next attempt after `failures` consecutive failures (1 = the first). */
export function retryDelay(failures: number, schedule: readonly number[] = RETRY_SCHEDULE_MS): number {
  return schedule[Math.min(Math.max(failures, 1), schedule.length) - 1]!;
}

/**
 * A sliding-window budget for new orders (Let's Encrypt: 300 per account per 3 hours); the
 * manager refuses to start an order beyond it and tries again when the window frees up.
 */
export class OrderBudget {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #starts: number[] = [];

  constructor(max = 300, windowMs = 3 * 3600_000) {
    this.#max = max;
    this.#windowMs = windowMs;
  }

  /** Takes one order slot at `now`; returns false (and takes nothing) when the budget is spent. */
  take(now: number): boolean {
    while (this.#starts.length && this.#starts[0]! <= now - this.#windowMs) this.#starts.shift();
    if (this.#starts.length >= this.#max) return false;
    this.#starts.push(now);
    return true;
  }

  /** When the next slot frees up. */
  nextFreeAt(now: number): number {
    return this.#starts.length < this.#max ? now : this.#starts[0]! + this.#windowMs;
  }
}
