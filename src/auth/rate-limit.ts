import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';

// Token buckets keyed by client IP or tunnel. A limit of N means N requests per minute with a
// burst of N: the bucket holds N tokens and refills at N/60 per second. Time comes from the
// injected clock. Idle buckets that have refilled are dropped during occasional sweeps, so a
// flood of distinct IPs cannot grow memory without bound.

export type RateResult = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
  perMinute: number;
}

/** Parses a limit (requests per minute, an integer ≥ 1); throws INVALID_INPUT naming it. */
export function parseRateLimit(raw: string | number, flag = '--rate-limit'): number {
  const n = typeof raw === 'number' ? raw : /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new TunnError('INVALID_INPUT', `${flag} "${raw}": expected a whole number of requests per minute between 1 and 1000000`);
  }
  return n;
}

export class RateLimiter {
  readonly #clock: Clock;
  #buckets = new Map<string, Bucket>();
  #calls = 0;

  constructor(opts: { clock: Clock }) {
    this.#clock = opts.clock;
  }

  /** Takes one token from `key`'s bucket (created full), or says how long to wait. */
  take(key: string, perMinute: number): RateResult {
    const now = this.#clock.now();
    if (++this.#calls % 1024 === 0) this.#sweep(now);
    let b = this.#buckets.get(key);
    if (!b || b.perMinute !== perMinute) {
      b = { tokens: perMinute, at: now, perMinute };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(perMinute, b.tokens + ((now - b.at) * perMinute) / 60_000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    const waitMs = ((1 - b.tokens) * 60_000) / perMinute;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  get size(): number {
    return this.#buckets.size;
  }

  #sweep(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * b.perMinute) / 60_000 >= b.perMinute) this.#buckets.delete(k);
    }
  }
}
